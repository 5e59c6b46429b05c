package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRun: the README's run command invokes every sample successfully and
// shows the mini-program red packet's jsapi parameters, the query answer
// with the ledger's record, and the ledger answering a repeat of a billno
// (replayed, the same send_listid, no request to WeChat) and refusing the
// same billno with another amount (BILLNO_CONFLICT, nothing sent); then
// an unknown send (WeChat paid it and answered PROCESSING) settled by one
// pass of the reconciler, on the simulator's clock running an hour a
// second.
func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"run", "-events", filepath.Join("..", "..", "events")}, &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	text := out.String()
	for _, want := range []string{
		"Ledger                in memory, shared by the four functions",
		"sendmini (sendminiprogramhb)", `"paySign"`, "query (gethbinfo)",
		"repeat of MINI20261123000007: answered from the ledger",
		`direct.json              OK: "replayed": true, same send_listid, no request to WeChat`,
		"same billno, other amount (total_amount 200, not 100): refused",
		"direct.json              refused: BILLNO_CONFLICT, no request to WeChat",
		", 0 not as expected",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "NOT AS EXPECTED") || strings.Contains(text, "WXPAY_LEDGER_TABLE") {
		t.Errorf("output has a failed check or runs without a ledger:\n%s", text)
	}
	if strings.Contains(text, "BEGIN") || strings.Contains(text, "PRIVATE KEY") {
		t.Errorf("output shows key material")
	}

	// The answers as printed.
	first := printedAfter(t, text, "── sendmini (sendminiprogramhb) ──")
	replay := printedAfter(t, text, "repeat of MINI20261123000007: answered from the ledger")
	conflict := printedAfter(t, text, "same billno, other amount")
	query := printedAfter(t, text, "── query (gethbinfo) ──")
	if first["send_listid"] == nil || first["replayed"] != nil {
		t.Errorf("first answer %v", first)
	}
	if replay["replayed"] != true || replay["send_listid"] != first["send_listid"] || fmt.Sprint(replay["jsapi"]) != fmt.Sprint(first["jsapi"]) {
		t.Errorf("repeat answered %v, want the first answer %v with \"replayed\": true", replay, first)
	}
	if e, _ := conflict["error"].(map[string]any); e["code"] != "BILLNO_CONFLICT" || e["outcome"] != "failed" || conflict["mch_billno"] != "MINI20261123000007" {
		t.Errorf("conflict answered %v, want BILLNO_CONFLICT", conflict)
	}
	if rec, _ := query["ledger"].(map[string]any); query["status"] != "SENT" || rec["state"] != "SENT" || rec["attempts"] != float64(1) || rec["recorded_at"] == nil {
		t.Errorf("query answer %v, want the record SENT with the ledger's record", query)
	}
	// The repeats sent nothing: as many requests reached WeChat as the
	// samples make, and WeChat recorded one red packet per billno sent.
	if !strings.Contains(text, "24 invocations, 0 not as expected; the simulator recorded 21 red packets (25 requests,") {
		t.Errorf("summary line: want 24 invocations, 21 red packets and 25 requests (the repeats add none):\n%s", text)
	}

	// The reconciler's section.
	for _, want := range []string{
		"── reconciler (an unknown send settled by one pass, the simulator's clock 3600 times as fast) ──",
		"send direct.json as LOCALRECON0001; WeChat pays it and answers PROCESSING (injected)",
		"direct.json              unknown: PROCESSING; the ledger holds it UNKNOWN, WeChat shows it SENDING (paid)",
		"11 minutes later on the simulator's clock (",
		"the first check is due, WeChat shows SENT",
		"one pass                 UNKNOWN -> SENT: checked 1, settled 1; WeChat paid it once",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	unknown := printedAfter(t, text, "send direct.json as LOCALRECON0001")
	if e, _ := unknown["error"].(map[string]any); e["code"] != "PROCESSING" || e["outcome"] != "unknown" || unknown["mch_billno"] != "LOCALRECON0001" {
		t.Errorf("the unknown send answered %v, want PROCESSING, outcome unknown", unknown)
	}
	pass := printedAfter(t, text, "one pass ")
	if tr, _ := pass["transitions"].(map[string]any); pass["checked"] != float64(1) || pass["settled"] != float64(1) || tr["UNKNOWN->SENT"] != float64(1) || len(tr) != 1 {
		t.Errorf("the pass's summary %v, want 1 checked, 1 settled, UNKNOWN->SENT", pass)
	}
	if _, after, _ := strings.Cut(text, "── reconciler"); strings.Contains(after, "NOT AS EXPECTED") || !strings.HasSuffix(strings.TrimSpace(after), "}") {
		t.Errorf("the reconciler's section is not as expected:\n%s", after)
	}
}

// TestRunChecksTheLedger: the run's checks of the repeats fail when the
// functions have no ledger (WeChat sees the repeats and nothing is
// replayed), so its "OK" lines mean what they say.
func TestRunChecksTheLedger(t *testing.T) {
	env, err := startEnvironment(io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	defer env.close()
	handlers, err := newHandlers(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err = invokeSamples(t.Context(), filepath.Join("..", "..", "events"), "sendmini", handlers, env, &out)
	text := out.String()
	for _, want := range []string{`NOT AS EXPECTED: no "replayed": true; WeChat saw 1 new request(s)`, "not BILLNO_CONFLICT; WeChat saw 1 new request(s)", ", 2 not as expected"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if err == nil {
		t.Errorf("run without a ledger succeeded")
	}
}

// printedAfter decodes the first JSON answer printed after the line
// containing marker.
func printedAfter(t *testing.T, text, marker string) map[string]any {
	t.Helper()
	_, rest, ok := strings.Cut(text, marker)
	if !ok {
		t.Fatalf("output lacks %q", marker)
	}
	start := strings.Index(rest, "\n      {\n")
	end := strings.Index(rest, "\n      }\n")
	if start < 0 || end < start {
		t.Fatalf("no answer printed after %q", marker)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(rest[start:end+len("\n      }")]), &v); err != nil {
		t.Fatalf("answer after %q: %v", marker, err)
	}
	return v
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
	if resp.StatusCode != 200 || sent["jsapi"] == nil || sent["replayed"] != nil {
		t.Fatalf("POST /redpacks/mini: %d %v", resp.StatusCode, sent)
	}
	// The same body again: the shared memory ledger replays the answer.
	resp, err = client.Post(base+"/redpacks/mini", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var again map[string]any
	json.NewDecoder(resp.Body).Decode(&again)
	resp.Body.Close()
	if resp.StatusCode != 200 || again["replayed"] != true || again["send_listid"] != sent["send_listid"] {
		t.Errorf("repeated POST /redpacks/mini: %d %v, want the first answer replayed", resp.StatusCode, again)
	}
	// The same billno with another amount: refused.
	resp, err = client.Post(base+"/redpacks/mini", "application/json", strings.NewReader(strings.Replace(string(body), `"total_amount": 100`, `"total_amount": 200`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	var conflict struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&conflict)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || conflict.Error.Code != "BILLNO_CONFLICT" {
		t.Errorf("POST with another amount: %d %+v, want 409 BILLNO_CONFLICT", resp.StatusCode, conflict)
	}
	resp, err = client.Get(base + "/redpacks/" + sent["mch_billno"].(string) + "?appid=wx8888888888888888")
	if err != nil {
		t.Fatal(err)
	}
	var record map[string]any
	json.NewDecoder(resp.Body).Decode(&record)
	resp.Body.Close()
	if rec, _ := record["ledger"].(map[string]any); resp.StatusCode != 200 || record["status"] != "SENT" || rec["state"] != "SENT" || rec["attempts"] != float64(1) {
		t.Errorf("GET the record: %d %v, want SENT with the ledger's record", resp.StatusCode, record)
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
