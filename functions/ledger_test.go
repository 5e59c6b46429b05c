package functions_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// ledgerTable creates a ledger table in moto_server's DynamoDB and returns
// the bootstraps' environment for it and a store reading it.
func ledgerTable(t testing.TB, name string) ([]string, ledger.Store) {
	t.Helper()
	url := mototest.Start(t)
	_, store := ledgertest.DynamoDBTable(t, url, name)
	return []string{"WXPAY_LEDGER_TABLE=" + name, "AWS_ENDPOINT_URL_DYNAMODB=" + url}, store
}

// ledgerAnswer is a direct answer with what the ledger adds.
type ledgerAnswer struct {
	answerBody
	Replayed bool `json:"replayed"`
	Ledger   *struct {
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
	} `json:"ledger"`
}

func decodeLedgerAnswer(t *testing.T, payload []byte) ledgerAnswer {
	t.Helper()
	var a ledgerAnswer
	if err := json.Unmarshal(payload, &a); err != nil {
		t.Fatalf("answer %s: %v", payload, err)
	}
	return a
}

// TestLedgerEndToEnd: the real bootstraps with the ledger in moto_server's
// DynamoDB: a send is recorded, its repeat replayed from the record with
// no request to WeChat, the same billno with another amount refused, and
// the query function shows the record.
func TestLedgerEndToEnd(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	st := newStack(t)
	ledgerEnv, store := ledgerTable(t, "ledger-e2e")
	env := st.env(ledgerEnv...)
	mini := startProc(t, "sendmini", bins["sendmini"], env)
	query := startProc(t, "query", bins["query"], env)
	const billno = "E2ELEDGER0001"
	req := directRequest(t, "sendmini", billno, nil)

	first := decodeLedgerAnswer(t, mini.invoke(t, mustJSON(t, req), logLine{billno, "success"}).Payload)
	if first.Error != nil || first.SendListID == "" || first.Replayed {
		t.Fatalf("first answer %+v", first)
	}
	it, err := store.Get(context.Background(), ledger.Key{MchID: st.merchant.MchID, MchBillno: billno})
	if err != nil || it.State != ledger.Sent || it.SendListID != first.SendListID || it.Source != "direct" {
		t.Fatalf("item %+v, %v", it, err)
	}

	again := decodeLedgerAnswer(t, mini.invoke(t, mustJSON(t, req), logLine{billno, "success"}).Payload)
	if !again.Replayed || again.SendListID != first.SendListID || again.JSAPI == nil || *again.JSAPI != *first.JSAPI {
		t.Errorf("repeat answer %+v, want the first one replayed", again)
	}
	if n := st.sim.RequestsFor(billno); n != 1 {
		t.Errorf("WeChat saw %d requests for %s, want 1", n, billno)
	}

	req["total_amount"] = 150
	conflict := decodeLedgerAnswer(t, mini.invoke(t, mustJSON(t, req), logLine{billno, "failed"}).Payload)
	if conflict.Error == nil || conflict.Error.Code != "BILLNO_CONFLICT" || st.sim.RequestsFor(billno) != 1 {
		t.Errorf("conflicting request: %+v after %d requests", conflict, st.sim.RequestsFor(billno))
	}

	q := decodeLedgerAnswer(t, query.invoke(t, mustJSON(t, directRequest(t, "query", billno, nil)), logLine{billno, "success"}).Payload)
	if q.Ledger == nil || q.Ledger.State != "SENT" || q.Ledger.Attempts != 1 {
		t.Errorf("query answer %+v, want the ledger's record", q)
	}
	checkOutput(t, mini, st.secrets()...)
	checkOutput(t, query, st.secrets()...)
}

// TestLedgerCrashMidCall: a bootstrap killed while WeChat holds its answer
// (the payment made) leaves the record Recorded with its lease: a repeat
// while the lease lasts is refused IN_PROGRESS and sends nothing; after
// it, the repeat is sent with the same billno, WeChat answers its first
// red packet, and nothing is paid twice.
func TestLedgerCrashMidCall(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	st := newStack(t)
	ledgerEnv, store := ledgerTable(t, "ledger-crash")
	env := st.env(ledgerEnv...)
	const billno = "E2ECRASH0001"
	key := ledger.Key{MchID: st.merchant.MchID, MchBillno: billno}
	req := mustJSON(t, directRequest(t, "sendmini", billno, nil))
	st.sim.FailBillno(billno, wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: time.Minute})

	crashed := startProc(t, "sendmini", bins["sendmini"], env)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), invokeWait)
		defer cancel()
		// A deadline far beyond the repeat's 5 s wait below, however
		// slowly a loaded machine starts the next bootstrap.
		_, _ = crashed.rt.Invoke(ctx, req, 20*time.Second) // never answered
	}()
	for deadline := time.Now().Add(invokeWait); st.sim.RequestsFor(billno) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the request never reached WeChat:\n%s", crashed.p.Output())
		}
	}
	crashed.stop()
	it, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if (it.State != ledger.Recorded && it.State != ledger.Unknown) || it.LeaseOwner == "" || it.Attempts != 1 || it.Settled != 0 {
		t.Fatalf("item after the crash: %s, lease %q until %v, %d attempts, %d settled", it.State, it.LeaseOwner, it.LeaseUntil, it.Attempts, it.Settled)
	}
	if st.sim.Payments(billno) != 1 {
		t.Fatalf("Payments = %d, want the held answer's payment", st.sim.Payments(billno))
	}

	// While the lease lasts (until the dead invocation's deadline and a
	// margin, more than the 5 s a repeat waits): refused, nothing sent.
	next := startProc(t, "sendmini", bins["sendmini"], env)
	busy := decodeLedgerAnswer(t, next.invoke(t, req, logLine{billno, "failed"}).Payload)
	if busy.Error == nil || busy.Error.Code != "IN_PROGRESS" || !busy.Error.Retryable {
		t.Errorf("repeat during the lease: %+v, want IN_PROGRESS", busy)
	}
	if n := st.sim.RequestsFor(billno); n != 1 {
		t.Errorf("WeChat saw %d requests during the lease, want 1", n)
	}

	// After it: the same billno again; WeChat's re-entry answers the first.
	time.Sleep(time.Until(it.LeaseUntil) + 100*time.Millisecond)
	after := decodeLedgerAnswer(t, next.invoke(t, req, logLine{billno, "success"}).Payload)
	rec, _ := st.sim.Record(billno)
	if after.Error != nil || after.SendListID != rec.SendListID {
		t.Errorf("repeat after the lease: %+v, want the first red packet (%s)", after, rec.SendListID)
	}
	if n := st.sim.Payments(billno); n != 1 {
		t.Errorf("PAID %d TIMES", n)
	}
	if it, _ := store.Get(context.Background(), key); it.State != ledger.Sent || it.Attempts != 2 {
		t.Errorf("item after the repeat: %s after %d attempts, want SENT after 2", it.State, it.Attempts)
	}
	if out := next.stop(); strings.Contains(out, st.merchant.APIKey) {
		t.Error("the output has the APIv2 key")
	}
}
