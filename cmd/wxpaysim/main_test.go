package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine to write and
// the test to read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startRun runs the command in the background until the returned stop is
// called, and waits for its instructions.
func startRun(t *testing.T, args ...string) (out string, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	buf := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, buf) }()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(buf.String(), "Serving until interrupted.") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("run returned early: %v\n%s", err, buf.String())
		case <-deadline:
			cancel()
			t.Fatalf("no instructions printed:\n%s", buf.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopped := false
	stop = func() string {
		if stopped {
			return buf.String()
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("run did not return after cancellation")
		}
		return buf.String()
	}
	t.Cleanup(func() { stop() })
	return buf.String(), stop
}

// exported returns the value of "export NAME=value" in out.
func exported(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "export "+name+"="); ok {
			return v
		}
	}
	t.Fatalf("no export of %s in:\n%s", name, out)
	return ""
}

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	out, stop := startRun(t, "-addr", "127.0.0.1:0", "-backup-addr", "127.0.0.1:0", "-dir", dir,
		"-mch-id", "1234567890", "-balance", "5000", "-rps", "100", "-secrets-addr", "127.0.0.1:0", "-secret-id", "wxpay/test")
	abs, _ := filepath.Abs(dir)

	base := exported(t, out, "WXPAY_BASE_URL")
	backup := exported(t, out, "WXPAY_BACKUP_BASE_URL")
	caFile := exported(t, out, "SSL_CERT_FILE")
	if !strings.HasPrefix(base, "https://127.0.0.1:") || !strings.HasPrefix(backup, "https://127.0.0.1:") || base == backup {
		t.Errorf("base %q backup %q", base, backup)
	}
	if caFile != filepath.Join(abs, "ca.pem") {
		t.Errorf("SSL_CERT_FILE=%s", caFile)
	}
	secretPath := filepath.Join(abs, "secret.json")
	for _, want := range []string{
		"mch_id 1234567890, balance 5000 fen",
		"aws secretsmanager create-secret --name wxpay/test --secret-string file://" + secretPath + "\n",
		"export WXPAY_SECRET_ID=wxpay/test\n",
		"(new credentials",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The files work as the functions use them: the secret parsed by the
	// project's own parser, the CA as SSL_CERT_FILE would add it.
	secret, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credstore.ParseSecret(secret, time.Now())
	if err != nil {
		t.Fatalf("ParseSecret(secret.json): %v", err)
	}
	p12Secret, err := os.ReadFile(filepath.Join(abs, "secret_p12.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := credstore.ParseSecret(p12Secret, time.Now()); err != nil {
		t.Errorf("ParseSecret(secret_p12.json): %v", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	c, err := wxpay.NewClient(wxpay.Config{Credentials: creds, BaseURL: base, BackupURL: backup, RootCAs: roots,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	req := &wxpay.SendRequest{MchBillno: "SIM1", WxAppID: "wx8888888888888888", SendName: "测试", ReOpenID: "openid",
		TotalAmount: 4000, TotalNum: 1, Wishing: "w", ClientIP: "127.0.0.1", ActName: "a", Remark: "r"}
	if _, err := c.SendRedpack(ctx, req); err != nil {
		t.Fatalf("send: %v", err)
	}
	req.MchBillno, req.ReOpenID = "SIM2", "openid2"
	_, err = c.SendRedpack(ctx, req)
	var e *wxpay.Error
	if !errors.As(err, &e) || e.Code != "NOTENOUGH" {
		t.Errorf("second send with 1000 fen left: %v", err)
	}

	// The fake Secrets Manager holds the same secret.
	smURL := exported(t, out, "AWS_ENDPOINT_URL_SECRETS_MANAGER")
	hreq, _ := http.NewRequest(http.MethodPost, smURL+"/", strings.NewReader(`{"SecretId":"wxpay/test"}`))
	hreq.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	hreq.Header.Set("Content-Type", "application/x-amz-json-1.1")
	hreq.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(creds.APIKey)) {
		t.Errorf("GetSecretValue: %d %s", resp.StatusCode, body)
	}

	final := stop()
	if !strings.Contains(final, "stopping after 2 requests, 1 red packets paid") {
		t.Errorf("final output:\n%s", final)
	}

	// A restart keeps the CA and the merchant: the old client still works.
	out2, _ := startRun(t, "-addr", strings.TrimPrefix(base, "https://"), "-dir", dir, "-mch-id", "1234567890")
	if !strings.Contains(out2, "(reused credentials") {
		t.Errorf("restart did not reuse:\n%s", out2)
	}
	if caPEM2, _ := os.ReadFile(caFile); !bytes.Equal(caPEM, caPEM2) {
		t.Error("restart changed ca.pem")
	}
	req.MchBillno = "SIM3"
	if _, err := c.SendRedpack(ctx, req); err != nil {
		t.Errorf("send after restart: %v", err)
	}
}

func TestRunFresh(t *testing.T) {
	dir := t.TempDir()
	_, stop := startRun(t, "-addr", "127.0.0.1:0", "-dir", dir)
	stop()
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	out, _ := startRun(t, "-addr", "127.0.0.1:0", "-dir", dir, "-fresh")
	ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if bytes.Equal(ca1, ca2) || !strings.Contains(out, "(new credentials") {
		t.Errorf("-fresh kept the CA:\n%s", out)
	}
	if strings.Contains(out, "AWS_ENDPOINT_URL_SECRETS_MANAGER") {
		t.Error("Secrets Manager advertised without -secrets-addr")
	}
	// Another mch_id does not reuse the directory.
	out, _ = startRun(t, "-addr", "127.0.0.1:0", "-dir", dir, "-mch-id", "1900000999")
	if !strings.Contains(out, "mch_id 1900000999") || !strings.Contains(out, "(new credentials") {
		t.Errorf("other mch_id:\n%s", out)
	}
}

// TestRunCallerIPs: with -caller-ips, a client from another address is
// refused NO_AUTH with WeChat's text and nothing is paid; the functions'
// clients connect from 127.0.0.1.
func TestRunCallerIPs(t *testing.T) {
	dir := t.TempDir()
	out, stop := startRun(t, "-addr", "127.0.0.1:0", "-dir", dir, "-caller-ips", "127.0.0.2, 203.0.113.7")
	if !strings.Contains(out, "callers   127.0.0.2, 203.0.113.7 (") {
		t.Errorf("output does not show the allowlist:\n%s", out)
	}
	secret, err := os.ReadFile(filepath.Join(dir, "secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credstore.ParseSecret(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(exported(t, out, "SSL_CERT_FILE"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := wxpay.NewClient(wxpay.Config{Credentials: creds, BaseURL: exported(t, out, "WXPAY_BASE_URL"), RootCAs: roots,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	req := &wxpay.SendRequest{MchBillno: "SIMIP1", WxAppID: "wx8888888888888888", SendName: "测试", ReOpenID: "openid",
		TotalAmount: 100, TotalNum: 1, Wishing: "w", ClientIP: "127.0.0.1", ActName: "a", Remark: "r"}
	_, err = c.SendRedpack(context.Background(), req)
	var e *wxpay.Error
	if !errors.As(err, &e) || e.Code != "NO_AUTH" || e.Message != "IP地址非你在商户平台设置的可用IP地址" {
		t.Errorf("send from 127.0.0.1: %v, want NO_AUTH with WeChat's text", err)
	}
	if final := stop(); !strings.Contains(final, "stopping after 1 requests, 0 red packets paid") {
		t.Errorf("final output:\n%s", final)
	}
}

func TestRunBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"-balance", "-1"},
		{"extra"},
		{"-caller-ips", "not-an-address"},
		{"-caller-ips", "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8,10.0.0.9,10.0.0.10,10.0.0.11"},
	} {
		if err := run(context.Background(), args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := run(context.Background(), []string{"-addr", "256.1.1.1:1", "-dir", t.TempDir()}, io.Discard); err == nil || errors.Is(err, errUsage) {
		t.Errorf("bad address: %v", err)
	}
}

// TestRunSpeed: with -speed the simulator's clock runs ahead of the wall
// clock, so WeChat's day passes in a moment: an unclaimed red packet is
// refunded (RFUND_ING 24 h after its send, REFUND an hour later) within a
// second at 100000 times real time, and with -claim-after one is claimed
// instead.
func TestRunSpeed(t *testing.T) {
	for _, tc := range []struct {
		name, claim, status string
		output              []string
	}{
		{name: "unclaimed", status: wxpay.StatusRefund,
			output: []string{"clock     100000 times real time: 24 h pass in 864ms (now "}},
		{name: "claimed", claim: "30m", status: wxpay.StatusReceived,
			output: []string{"clock     100000 times real time", "claims    every red packet, 30m0s after it became SENT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-addr", "127.0.0.1:0", "-dir", dir, "-speed", "100000"}
			if tc.claim != "" {
				args = append(args, "-claim-after", tc.claim)
			}
			out, stop := startRun(t, args...)
			for _, want := range tc.output {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			c := simClient(t, out, dir)
			ctx := context.Background()
			req := &wxpay.SendRequest{MchBillno: "SPEED1", WxAppID: "wx8888888888888888", SendName: "测试", ReOpenID: "openid",
				TotalAmount: 300, TotalNum: 1, Wishing: "w", ClientIP: "127.0.0.1", ActName: "a", Remark: "r"}
			if _, err := c.SendRedpack(ctx, req); err != nil {
				t.Fatal(err)
			}
			var res *wxpay.QueryResult
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var err error
				res, err = c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: "SPEED1", AppID: "wx8888888888888888"})
				if err != nil {
					t.Fatal(err)
				}
				if res.Status == tc.status || time.Now().After(deadline) {
					break
				}
			}
			switch {
			case res.Status != tc.status:
				t.Errorf("status %s after 30 s, want %s", res.Status, tc.status)
			case tc.status == wxpay.StatusRefund && (res.RefundAmount != 300 || res.RefundTime == ""):
				t.Errorf("refund %d at %q, want 300", res.RefundAmount, res.RefundTime)
			case tc.status == wxpay.StatusReceived && (len(res.Receivers) != 1 || res.Receivers[0].Amount != 300):
				t.Errorf("receivers %+v", res.Receivers)
			}
			stop()
		})
	}
	if err := run(context.Background(), []string{"-speed", "0.5"}, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("-speed 0.5: %v", err)
	}
	if err := run(context.Background(), []string{"-claim-after", "-1h"}, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("-claim-after -1h: %v", err)
	}
}

// simClient is a client of the simulator run printed out and wrote its
// files to dir.
func simClient(t *testing.T, out, dir string) *wxpay.Client {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(dir, "secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credstore.ParseSecret(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(exported(t, out, "SSL_CERT_FILE"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := wxpay.NewClient(wxpay.Config{Credentials: creds, BaseURL: exported(t, out, "WXPAY_BASE_URL"), RootCAs: roots,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}
