package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRun: the README's run command invokes every sample successfully and
// shows the mini-program red packet's jsapi parameters.
func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"run", "-events", filepath.Join("..", "..", "events")}, &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	text := out.String()
	for _, want := range []string{"sendmini (sendminiprogramhb)", `"paySign"`, "query (gethbinfo)", ", 0 not successful"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "BEGIN") || strings.Contains(text, "PRIVATE KEY") {
		t.Errorf("output shows key material")
	}
}

// TestRunFailsOnBadSample: a sample that does not succeed fails the run.
func TestRunFailsOnBadSample(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sendmini"), 0o755)
	os.WriteFile(filepath.Join(dir, "sendmini", "direct.json"), []byte(`{"mch_billno":"X1","mch_id":"1"}`), 0o644)
	var out strings.Builder
	err := run(t.Context(), []string{"run", "-events", dir, "-function", "sendmini"}, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "INVALID_REQUEST") {
		t.Errorf("run = %v, want a failure showing INVALID_REQUEST:\n%s", err, &out)
	}
}

// TestServe: the serve mode answers the API routes like API Gateway.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0"}, pw, io.Discard); pw.Close() }()
	lines := bufio.NewScanner(pr)
	var base string
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "Serving on "); ok {
			base = strings.Fields(rest)[0]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatalf("serve printed no address: %v", <-done)
	}
	body, _ := os.ReadFile(filepath.Join("..", "..", "events", "sendmini", "direct.json"))
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(base+"/redpacks/mini", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	json.NewDecoder(resp.Body).Decode(&sent)
	resp.Body.Close()
	if resp.StatusCode != 200 || sent["jsapi"] == nil {
		t.Fatalf("POST /redpacks/mini: %d %v", resp.StatusCode, sent)
	}
	resp, err = client.Get(base + "/redpacks/" + sent["mch_billno"].(string) + "?appid=wx8888888888888888")
	if err != nil {
		t.Fatal(err)
	}
	var record map[string]any
	json.NewDecoder(resp.Body).Decode(&record)
	resp.Body.Close()
	if resp.StatusCode != 200 || record["status"] != "SENT" {
		t.Errorf("GET the record: %d %v", resp.StatusCode, record)
	}
	resp, err = client.Post(base+"/redpacks", "application/json", strings.NewReader(`{"mch_billno":"X"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("invalid request: %d, want 400", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
