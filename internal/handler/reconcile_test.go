package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// rcWorld is the simulator, Secrets Manager with the merchant's secret, a
// memory ledger, the send function's handler and the reconciler's, whose
// clock runs ahead of the real one by rcWorld.ahead.
type rcWorld struct {
	sim    *wxpaytest.Server
	ledger *ledger.Memory
	send   *handler.Handler
	rec    *handler.ReconcileHandler
	logs   *rcLogs

	mu    sync.Mutex
	ahead time.Duration
}

func newRCWorld(t *testing.T) *rcWorld {
	t.Helper()
	sim := wxpaytest.NewServer()
	t.Cleanup(sim.Close)
	sm := smtest.NewServer()
	t.Cleanup(sm.Close)
	sm.Put("wxpay/reconcile", string(sim.Merchant().SecretJSON()))
	cfg := sim.ClientConfig()
	w := &rcWorld{sim: sim, ledger: ledger.NewMemory(), logs: &rcLogs{}}
	settings := handler.Settings{BaseURL: cfg.BaseURL, BackupURL: cfg.BackupURL, RootCAs: cfg.RootCAs, MaxAttempts: 1, Ledger: w.ledger}
	logger := handler.NewLogger(w.logs, "DEBUG")
	store := credstore.New(credstore.Config{
		SecretID: "wxpay/reconcile",
		SecretsManager: secretsmanager.New(secretsmanager.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(sm.URL()),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "test", Source: "test"}, nil
			}),
			RetryMaxAttempts: 1,
		}),
		NewClient: settings.NewClient,
		Logger:    logger,
	})
	w.send = handler.New(handler.Send, store, settings, logger)
	rec := &reconcile.Reconciler{Ledger: w.ledger, WeChat: reconcile.Merchant{Store: store}, Now: w.now, Logger: logger}
	w.rec = handler.NewReconcile(rec, settings, logger)
	return w
}

func (w *rcWorld) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Now().Add(w.ahead)
}

func (w *rcWorld) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ahead += d
}

// reconcile invokes the reconciler through the production JSON path and
// decodes its answer.
func (w *rcWorld) reconcile(t *testing.T, payload string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := lambda.NewHandler(w.rec).Invoke(ctx, []byte(payload))
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	return m
}

// sendUnknown sends a red packet that WeChat answers with fault, and
// checks the answer is unknown.
func (w *rcWorld) sendUnknown(t *testing.T, billno string, fault wxpaytest.FaultKind) {
	t.Helper()
	w.sim.FailBillno(billno, wxpaytest.Fault{Kind: fault})
	body := fmt.Sprintf(`{"mch_billno": %q, "wxappid": "wx8888888888888888", "send_name": "天虹百货", "re_openid": "oxTWIuXq2Z7fLk9sDdVbNcW4eR1t",
		"wishing": "感谢您参加猜灯谜活动", "act_name": "猜灯谜抢红包活动", "remark": "猜越多得越多", "total_amount": 188, "total_num": 1, "client_ip": "203.0.113.10"}`, billno)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := lambda.NewHandler(w.send).Invoke(ctx, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"outcome":"unknown"`) {
		t.Fatalf("send answered %s, want unknown", out)
	}
	if st := w.item(t, billno).State; st != ledger.Unknown {
		t.Fatalf("after the send: %s", st)
	}
}

func (w *rcWorld) item(t *testing.T, billno string) *ledger.Item {
	t.Helper()
	it, err := w.ledger.Get(context.Background(), ledger.Key{MchID: w.sim.Merchant().MchID, MchBillno: billno})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// rcLogs collects the handlers' log lines.
type rcLogs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *rcLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *rcLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func rcCount(m map[string]any, name string) int {
	n, _ := m[name].(float64)
	return int(n)
}

// TestReconcileSettlesUnknownSends: through the reconciler's handler, the
// real client and the simulator: a send paid but answered SYSTEMERROR is
// SENT after one scheduled pass; a send that left no record is sent again
// by an operator's check, same billno and fields, and paid once.
func TestReconcileSettlesUnknownSends(t *testing.T) {
	w := newRCWorld(t)
	const paidBillno, lostBillno = "RCPAID0001", "RCLOST0001"
	w.sendUnknown(t, paidBillno, wxpaytest.FaultSystemErrorAfterPay)
	w.sendUnknown(t, lostBillno, wxpaytest.FaultSystemError)

	w.advance(2 * time.Minute)
	scheduled := `{"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event", "source": "aws.events",
		"account": "123456789012", "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
		"resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}}`
	s := w.reconcile(t, scheduled)
	if rcCount(s, "checked") != 2 || rcCount(s, "settled") != 1 || rcCount(s, "resent") != 0 || s["error"] != nil {
		t.Errorf("first pass: %v, want 2 checked, 1 settled", s)
	}
	if tr, _ := s["transitions"].(map[string]any); rcCount(tr, "UNKNOWN->SENT") != 1 {
		t.Errorf("transitions %v", s["transitions"])
	}
	if st := w.item(t, paidBillno).State; st != ledger.Sent {
		t.Errorf("%s: %s, want SENT", paidBillno, st)
	}
	if it := w.item(t, lostBillno); it.State != ledger.Unknown || it.Status != reconcile.StatusNotFound {
		t.Errorf("%s: %s %q, want UNKNOWN, NOT_FOUND", lostBillno, it.State, it.Status)
	}

	// Still no record six minutes later: the operator's check sends it
	// again.
	w.advance(6 * time.Minute)
	s = w.reconcile(t, `{"mch_billno": "`+lostBillno+`"}`)
	item, _ := s["item"].(map[string]any)
	if rcCount(s, "checked") != 1 || rcCount(s, "resent") != 1 || rcCount(s, "settled") != 1 || item["state"] != "SENT" || item["mch_billno"] != lostBillno {
		t.Errorf("check: %v, want the billno sent again and SENT", s)
	}
	if it := w.item(t, lostBillno); it.State != ledger.Sent || it.Attempts != 2 || it.SendListID == "" {
		t.Errorf("%s: %s, %d attempts, send_listid %q", lostBillno, it.State, it.Attempts, it.SendListID)
	}
	for _, b := range []string{paidBillno, lostBillno} {
		if n := w.sim.Payments(b); n != 1 {
			t.Errorf("%s paid %d times, want once", b, n)
		}
	}
	// One line per invocation.
	lines := 0
	for l := range strings.Lines(w.logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "reconcile" && m["function"] == "reconcile" {
			lines++
		}
	}
	if lines != 2 {
		t.Errorf("%d invocation lines, want 2:\n%s", lines, w.logs.String())
	}
}

// TestReconcileEvents: which events run a pass, which check one billno,
// and which are refused, with the functions' error body.
func TestReconcileEvents(t *testing.T) {
	w := newRCWorld(t)
	for _, tc := range []struct {
		name, payload string
		// want: "pass", "check", or the error code and field
		want, field string
	}{
		{"scheduled event", `{"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}`, "pass", ""},
		{"scheduler input", `{"campaign": "nightly", "attempt": 2}`, "pass", ""},
		{"empty object", `{}`, "pass", ""},
		{"no payload", ``, "pass", ""},
		{"null", `null`, "pass", ""},
		{"not recorded", `{"mch_billno": "RCNOSUCH0001"}`, "NOT_FOUND", ""},
		{"billno a number", `{"mch_billno": 12345}`, "INVALID_REQUEST", "mch_billno"},
		{"billno null", `{"mch_billno": null}`, "INVALID_REQUEST", "mch_billno"},
		{"billno malformed", `{"mch_billno": "RC-0001"}`, "INVALID_REQUEST", "mch_billno"},
		{"billno twice", `{"mch_billno": "RC0001", "mch_billno": "RC0002"}`, "INVALID_REQUEST", "mch_billno"},
		{"an array", `[{}]`, "INVALID_REQUEST", "body"},
		{"a string", `"run"`, "INVALID_REQUEST", "body"},
		{"broken JSON", `{"mch_billno": `, "INVALID_REQUEST", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := w.reconcile(t, tc.payload)
			e, _ := s["error"].(map[string]any)
			switch tc.want {
			case "pass":
				if _, ok := s["checked"]; !ok || s["item"] != nil || e != nil {
					t.Errorf("answer %v, want a pass's summary", s)
				}
			default:
				if e == nil || e["code"] != tc.want || (tc.field != "" && e["field"] != tc.field) || e["outcome"] == "unknown" {
					t.Errorf("answer %v, want %s naming %q", s, tc.want, tc.field)
				}
			}
		})
	}
}

// TestReconcileFromEnv: the reconciler needs its ledger, and its bounds
// are whole numbers in range; a fault is CONFIG_ERROR naming it.
func TestReconcileFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name, table, budget, field string
	}{
		{"no ledger", "", "", "WXPAY_LEDGER_TABLE"},
		{"bad budget", "ledger", "0", "environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WXPAY_SECRET_ID", "wxpay/reconcile")
			t.Setenv("WXPAY_LEDGER_TABLE", tc.table)
			t.Setenv("WXPAY_RECONCILE_BUDGET", tc.budget)
			t.Setenv("AWS_REGION", "us-east-1")
			h := handler.ReconcileFromEnv(context.Background())
			out, err := h.Invoke(context.Background(), []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]map[string]any
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("answer %s: %v", out, err)
			}
			if e := m["error"]; e["code"] != "CONFIG_ERROR" || !strings.Contains(fmt.Sprint(e["message"]), tc.field) {
				t.Errorf("answer %s, want CONFIG_ERROR naming %s", out, tc.field)
			}
		})
	}
}
