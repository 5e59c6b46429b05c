package handler_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// ledgerWorld is a world whose handlers record in a counted memory ledger.
func ledgerWorld(t *testing.T, store ledger.Store, opts ...wxpaytest.Option) (*world, *ledgertest.Counting) {
	t.Helper()
	w := newWorld(t, opts...)
	counted := ledgertest.NewCounting(store)
	w.settings.Ledger = counted
	return w, counted
}

// itemOf reads billno's record in the world's merchant's ledger.
func itemOf(t *testing.T, w *world, store ledger.Store, billno string) *ledger.Item {
	t.Helper()
	it, err := store.Get(context.Background(), ledger.Key{MchID: w.sim.Merchant().MchID, MchBillno: billno})
	if err != nil {
		t.Fatalf("ledger item %s: %v", billno, err)
	}
	return it
}

// TestLedgerSendReplayConflict: a fresh send makes exactly one conditional
// create and one update (after one read); a repeat of a paid billno is
// answered from the ledger with the same answer and "replayed": true,
// with one read and no call to WeChat; the same billno with another
// request is refused 409 BILLNO_CONFLICT, and nothing is sent. Through
// every source.
func TestLedgerSendReplayConflict(t *testing.T) {
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			mem := ledger.NewMemory()
			w, counted := ledgerWorld(t, mem)
			h := w.handler(handler.SendMini)
			billno := "LEDGER" + strings.ToUpper(source)
			send := func(body string) reply {
				return decodeReply(t, source, invoke(t, h, eventFor(t, source, "POST", "/redpacks/mini", body)))
			}

			first := send(validMini(billno, nil))
			if source != "sqs" && first.body["error"] != nil {
				t.Fatalf("first send: %v", first.body)
			}
			if got := counted.Counts(); got != (ledgertest.Counts{Get: 1, Create: 1, Settle: 1}) {
				t.Errorf("a fresh send made %+v; want one read, one conditional create and one update", got)
			}
			it := itemOf(t, w, mem, billno)
			if it.State != ledger.Sent || it.Attempts != 1 || it.SendListID == "" || it.Package == "" || it.JSAPI["paySign"] == "" {
				t.Errorf("item after the send: %+v", it)
			}
			if it.Source != map[string]string{"rest": "apigw-rest", "http": "apigw-http", "sqs": "sqs", "direct": "direct"}[source] {
				t.Errorf("item source %q", it.Source)
			}
			if it.Fields["re_openid"] != openID || it.Fields["mch_id"] != w.sim.Merchant().MchID || it.Fields["nonce_str"] != "" || it.Fields["sign"] != "" {
				t.Errorf("item fields %v: want the signed fields without nonce_str and sign", it.Fields)
			}

			counted.Reset()
			requests := w.sim.Requests()
			again := send(validMini(billno, nil))
			if got := counted.Counts(); got != (ledgertest.Counts{Get: 1}) {
				t.Errorf("a replay made %+v; want one read", got)
			}
			if w.sim.Requests() != requests {
				t.Errorf("a replay reached WeChat")
			}
			if source != "sqs" {
				if again.body["replayed"] != true || again.body["send_listid"] != first.body["send_listid"] {
					t.Errorf("replay %v, want the first answer %v with replayed", again.body, first.body)
				}
				if fmt.Sprint(again.body["jsapi"]) != fmt.Sprint(first.body["jsapi"]) || again.body["package"] != first.body["package"] {
					t.Errorf("replay jsapi %v package %v, want the first answer's %v %v", again.body["jsapi"], again.body["package"], first.body["jsapi"], first.body["package"])
				}
				if source != "direct" && again.status != http.StatusOK {
					t.Errorf("replay status %d", again.status)
				}
			} else if len(again.failures) != 0 {
				t.Errorf("replay reported %v for retry", again.failures)
			}

			counted.Reset()
			conflict := send(validMini(billno, map[string]any{"total_amount": 150}))
			if w.sim.Requests() != requests {
				t.Errorf("a conflict reached WeChat")
			}
			if source == "sqs" {
				if len(conflict.failures) != 1 {
					t.Errorf("conflict: failures %v, want the record reported", conflict.failures)
				}
				return
			}
			if conflict.errorField("code") != "BILLNO_CONFLICT" || conflict.errorField("outcome") != "failed" || conflict.errorField("retryable") != false {
				t.Errorf("conflict answer %v", conflict.body)
			}
			if source != "direct" && conflict.status != http.StatusConflict {
				t.Errorf("conflict status %d, want 409", conflict.status)
			}
			if w.sim.Payments(billno) != 1 {
				t.Errorf("Payments(%s) = %d, want 1", billno, w.sim.Payments(billno))
			}
		})
	}
}

// failingStore is a ledger whose calls fail from a given method on, as a
// throttled, unreachable or forbidden table does.
type failingStore struct {
	ledger.Store
	failGet, failSettle bool
	err                 error
}

func (f *failingStore) Get(ctx context.Context, k ledger.Key) (*ledger.Item, error) {
	if f.failGet {
		return nil, f.err
	}
	return f.Store.Get(ctx, k)
}

func (f *failingStore) Create(ctx context.Context, it *ledger.Item) error {
	if f.failGet {
		return f.err
	}
	return f.Store.Create(ctx, it)
}

func (f *failingStore) Settle(ctx context.Context, k ledger.Key, s ledger.Settlement) error {
	if f.failSettle {
		return f.err
	}
	return f.Store.Settle(ctx, k, s)
}

// TestLedgerFaults: a ledger that cannot record the request sends nothing
// and answers 503 LEDGER_UNAVAILABLE; a ledger that fails after WeChat
// answered still gives the caller WeChat's outcome, logs an error naming
// the billno and the outcome, and leaves the item Recorded for the
// reconciler.
func TestLedgerFaults(t *testing.T) {
	throttled := errors.New("ProvisionedThroughputExceededException: rate exceeded")
	t.Run("down before the send", func(t *testing.T) {
		w, _ := ledgerWorld(t, &failingStore{Store: ledger.NewMemory(), failGet: true, err: throttled})
		h := w.handler(handler.SendMini)
		for _, source := range sources {
			r := decodeReply(t, source, invoke(t, h, eventFor(t, source, "POST", "/redpacks/mini", validMini("DOWN1", nil))))
			if source == "sqs" {
				if len(r.failures) != 1 {
					t.Errorf("sqs: failures %v, want the record reported", r.failures)
				}
				continue
			}
			if r.errorField("code") != "LEDGER_UNAVAILABLE" || r.errorField("retryable") != true || r.errorField("outcome") != "failed" {
				t.Errorf("%s: answer %v", source, r.body)
			}
			if source != "direct" && r.status != http.StatusServiceUnavailable {
				t.Errorf("%s: status %d, want 503", source, r.status)
			}
		}
		if w.sim.Requests() != 0 {
			t.Errorf("%d requests reached WeChat without a record", w.sim.Requests())
		}
	})
	t.Run("failing after the send", func(t *testing.T) {
		mem := ledger.NewMemory()
		w, _ := ledgerWorld(t, &failingStore{Store: mem, failSettle: true, err: throttled})
		h := w.handler(handler.SendMini)
		r := decodeReply(t, "direct", invoke(t, h, []byte(validMini("AFTER1", nil))))
		if r.body["error"] != nil || r.body["send_listid"] == nil {
			t.Errorf("answer %v, want WeChat's success", r.body)
		}
		if it := itemOf(t, w, mem, "AFTER1"); it.State != ledger.Recorded || it.Settled != 0 {
			t.Errorf("item %s after a failed update; want it Recorded for the reconciler", it.State)
		}
		var logged bool
		for _, line := range w.logs.lines(t) {
			if line["level"] == "ERROR" && line["mch_billno"] == "AFTER1" && line["outcome"] == "success" && strings.Contains(fmt.Sprint(line["msg"]), "ledger") {
				logged = true
			}
		}
		if !logged {
			t.Errorf("no error log line naming the billno and the outcome:\n%s", w.logs)
		}
	})
}

// TestLedgerConcurrentRequests: 50 requests for one billno at once, the
// first answer delayed: WeChat sees one request and pays once; the others
// wait for it and replay its answer.
func TestLedgerConcurrentRequests(t *testing.T) {
	mem := ledger.NewMemory()
	w, _ := ledgerWorld(t, mem)
	h := w.handler(handler.SendMini)
	const billno = "CONCURRENT1"
	w.sim.FailBillno(billno, wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: 300 * time.Millisecond})
	var wg sync.WaitGroup
	answers := make([]reply, 50)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = decodeReply(t, "direct", invoke(t, h, []byte(validMini(billno, nil))))
		}()
	}
	wg.Wait()
	replayed := 0
	for i, a := range answers {
		if a.body["error"] != nil {
			t.Errorf("answer %d: %v", i, a.body)
		}
		if a.body["replayed"] == true {
			replayed++
		}
	}
	if replayed != 49 {
		t.Errorf("%d replays, want 49", replayed)
	}
	if n := w.sim.RequestsFor(billno); n != 1 {
		t.Errorf("WeChat saw %d requests for the billno, want 1", n)
	}
	if n := w.sim.Payments(billno); n != 1 {
		t.Errorf("Payments = %d, want 1", n)
	}
}

// TestLedgerResend: a billno WeChat refused is sent again on a repeat, with
// the same billno, no sooner than a second after its last try; a billno
// whose outcome is unknown is too, and WeChat's answer decides.
func TestLedgerResend(t *testing.T) {
	mem := ledger.NewMemory()
	w, _ := ledgerWorld(t, mem)
	h := w.handler(handler.SendMini)
	const billno = "RESEND1"
	w.sim.FailBillno(billno, wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"})
	first := decodeReply(t, "direct", invoke(t, h, []byte(validMini(billno, nil))))
	if first.errorField("code") != "NOTENOUGH" {
		t.Fatalf("first answer %v", first.body)
	}
	if it := itemOf(t, w, mem, billno); it.State != ledger.Failed || it.ErrCode != "NOTENOUGH" {
		t.Errorf("item after NOTENOUGH: %s %s", it.State, it.ErrCode)
	}
	start := time.Now()
	second := decodeReply(t, "direct", invoke(t, h, []byte(validMini(billno, nil))))
	if second.body["error"] != nil || second.body["replayed"] != nil {
		t.Fatalf("second answer %v, want a new success from WeChat", second.body)
	}
	it := itemOf(t, w, mem, billno)
	if it.State != ledger.Sent || it.Attempts != 2 || it.ErrCode != "" {
		t.Errorf("item after the resend: %s, %d attempts, err_code %q", it.State, it.Attempts, it.ErrCode)
	}
	if gap := it.LastTriedAt.Sub(it.FirstTriedAt); gap < ledger.MinRetryGap {
		t.Errorf("tries %v apart, want at least %v", gap, ledger.MinRetryGap)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the resend took %v", time.Since(start))
	}
	if n := w.sim.RequestsFor(billno); n != 2 || w.sim.Payments(billno) != 1 {
		t.Errorf("WeChat saw %d requests and %d payments, want 2 and 1", n, w.sim.Payments(billno))
	}
}

// TestLedgerQuery: the query function answers from WeChat, adds the
// ledger's record, and stores the status it read (here moving SENT to
// RECEIVED); a 404 has the record too.
func TestLedgerQuery(t *testing.T) {
	mem := ledger.NewMemory()
	w, _ := ledgerWorld(t, mem)
	send := w.handler(handler.SendMini)
	query := w.handler(handler.Query)
	const billno = "QLEDGER1"
	if r := decodeReply(t, "direct", invoke(t, send, []byte(validMini(billno, nil)))); r.body["error"] != nil {
		t.Fatalf("send: %v", r.body)
	}
	if err := w.sim.Receive(billno, openID, 0); err != nil {
		t.Fatal(err)
	}
	r := decodeReply(t, "direct", invoke(t, query, []byte(`{"mch_billno":"QLEDGER1","appid":"wx8888888888888888"}`)))
	rec, _ := r.body["ledger"].(map[string]any)
	if r.body["status"] != wxpay.StatusReceived || rec["state"] != "RECEIVED" || rec["attempts"] != float64(1) {
		t.Errorf("query answer %v", r.body)
	}
	for _, k := range []string{"recorded_at", "updated_at"} {
		s, _ := rec[k].(string)
		if ts, err := time.Parse(time.RFC3339, s); err != nil || ts.Location() != time.UTC || !strings.HasSuffix(s, "Z") {
			t.Errorf("ledger.%s = %q, want RFC 3339 in UTC", k, s)
		}
	}
	if it := itemOf(t, w, mem, billno); it.State != ledger.Received || it.Status != wxpay.StatusReceived {
		t.Errorf("item after the query: %s, status %s", it.State, it.Status)
	}

	// Recorded, but WeChat has no record: the 404 shows the ledger's.
	now := time.Now()
	if err := mem.Create(context.Background(), &ledger.Item{MchID: w.sim.Merchant().MchID, MchBillno: "QLEDGER2", API: "sendminiprogramhb",
		Fields: map[string]string{"mch_billno": "QLEDGER2"}, RecordedAt: now, LeaseOwner: "x", LeaseUntil: now}); err != nil {
		t.Fatal(err)
	}
	r = decodeReply(t, "direct", invoke(t, query, []byte(`{"mch_billno":"QLEDGER2","appid":"wx8888888888888888"}`)))
	rec, _ = r.body["ledger"].(map[string]any)
	if r.errorField("code") != "NOT_FOUND" || rec["state"] != "RECORDED" {
		t.Errorf("404 answer %v, want NOT_FOUND with the ledger's record", r.body)
	}
}
