package functions_test

// End to end: a merchant whose caller-IP allowlist (调用IP地址) does not
// hold the address the functions call from. The bootstraps connect from
// 127.0.0.1; the simulator's allowlist holds 127.0.0.2 only, so WeChat
// answers every call NO_AUTH, as it does for a stack deployed with
// EgressMode public (or with NAT addresses not yet in the allowlist).

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// noAuthDes is WeChat's err_code_des for a call from an address the
// merchant has not set, written out rather than taken from the simulator.
const noAuthDes = "IP地址非你在商户平台设置的可用IP地址"

var (
	// listedIP is the only caller IP of the merchant.
	listedIP = netip.MustParseAddr("127.0.0.2")
	// functionsIP is where the bootstraps' connections come from.
	functionsIP = netip.MustParseAddr("127.0.0.1")
)

// wantNoAuth checks a refusal for the caller's address: NO_AUTH with
// WeChat's text, failed, not retryable, for billno.
func wantNoAuth(t *testing.T, what string, status, wantStatus int, body answerBody, billno string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d", what, status, wantStatus)
	}
	e := body.Error
	if e == nil {
		t.Fatalf("%s: answer %+v, want an error", what, body)
	}
	if e.Code != "NO_AUTH" || !strings.Contains(e.Message, noAuthDes) || e.Outcome != "failed" || e.Retryable {
		t.Errorf("%s: error %+v, want NO_AUTH carrying %q, outcome failed, not retryable", what, *e, noAuthDes)
	}
	if body.MchBillno != billno {
		t.Errorf("%s: mch_billno %q, want %q", what, body.MchBillno, billno)
	}
}

// TestNoAuthCallerIP: each function, through each kind of event, answers a
// 403 NO_AUTH whose message is WeChat's err_code_des, outcome failed, and
// nothing is paid; the refusal is not retried.
func TestNoAuthCallerIP(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	st := newStack(t, wxpaytest.WithCallerIPs(listedIP))
	balance := st.sim.Balance()

	t.Run("sendmini REST API", func(t *testing.T) {
		const billno = "E2ENOAUTHMINI01"
		p := startProc(t, "sendmini", bins["sendmini"], st.env())
		r := p.invoke(t, restEvent(t, "sendmini", directRequest(t, "sendmini", billno, nil)), logLine{billno, "failed"})
		status, body := decodeAnswer(t, kindAPIGW, r.Payload)
		wantNoAuth(t, "sendmini", status, http.StatusForbidden, body, billno)
		if body.JSAPI != nil || body.Package != "" {
			t.Errorf("sendmini: refusal carries jsapi %+v, package %q", body.JSAPI, body.Package)
		}
		checkOutput(t, p, st.secrets()...)
	})
	t.Run("send direct invoke", func(t *testing.T) {
		const billno = "E2ENOAUTHSEND01"
		p := startProc(t, "send", bins["send"], st.env())
		r := p.invoke(t, mustJSON(t, directRequest(t, "send", billno, nil)), logLine{billno, "failed"})
		_, body := decodeAnswer(t, kindDirect, r.Payload)
		wantNoAuth(t, "send", 0, 0, body, billno)
		checkOutput(t, p, st.secrets()...)
	})
	t.Run("sendgroup SQS", func(t *testing.T) {
		const billno = "E2ENOAUTHGROUP1"
		p := startProc(t, "sendgroup", bins["sendgroup"], st.env())
		ids := []string{"noauth-message-1"}
		r := p.invoke(t, sqsEvent(t, "sendgroup", ids, []map[string]any{directRequest(t, "sendgroup", billno, nil)}), logLine{billno, "failed"})
		if failed := decodeBatch(t, r.Payload); len(failed) != 1 || failed[0] != ids[0] {
			t.Errorf("sendgroup: batch item failures %v, want %v (a refusal goes back to the queue)", failed, ids)
		}
		checkOutput(t, p, st.secrets()...)
	})
	t.Run("query REST API", func(t *testing.T) {
		const billno = "E2ENOAUTHQUERY1"
		p := startProc(t, "query", bins["query"], st.env())
		r := p.invoke(t, queryEvent(t, billno), logLine{billno, "failed"})
		status, body := decodeAnswer(t, kindAPIGW, r.Payload)
		wantNoAuth(t, "query", status, http.StatusForbidden, body, billno)
		checkOutput(t, p, st.secrets()...)
	})

	for _, billno := range []string{"E2ENOAUTHMINI01", "E2ENOAUTHSEND01", "E2ENOAUTHGROUP1", "E2ENOAUTHQUERY1"} {
		if n := st.sim.RequestsFor(billno); n != 1 {
			t.Errorf("%s: WeChat saw %d requests, want 1 (NO_AUTH is not retried)", billno, n)
		}
	}
	if n, b, recs := st.sim.TotalPayments(), st.sim.Balance(), st.sim.Records(); n != 0 || b != balance || len(recs) != 0 {
		t.Errorf("after the refusals: %d payments, balance %d (was %d), %d records; want nothing paid", n, b, balance, len(recs))
	}
}

// TestNoAuthCallerIPLedger: with the ledger (moto_server's DynamoDB), the
// refusal is recorded as FAILED with WeChat's err_code and text. Once the
// merchant adds the functions' address to the allowlist, the same billno
// is sent again and paid, once.
func TestNoAuthCallerIPLedger(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	st := newStack(t, wxpaytest.WithCallerIPs(listedIP))
	ledgerEnv, store := ledgerTable(t, "ledger-noauth")
	p := startProc(t, "send", bins["send"], st.env(ledgerEnv...))
	const billno = "E2ENOAUTHLEDGER1"
	key := ledger.Key{MchID: st.merchant.MchID, MchBillno: billno}
	req := mustJSON(t, directRequest(t, "send", billno, nil))

	refused := decodeLedgerAnswer(t, p.invoke(t, req, logLine{billno, "failed"}).Payload)
	wantNoAuth(t, "send", 0, 0, refused.answerBody, billno)
	it, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if it.State != ledger.Failed || it.ErrCode != "NO_AUTH" || it.ErrCodeDes != noAuthDes || it.Attempts != 1 {
		t.Errorf("item after the refusal: %s, err_code %q %q, %d attempts; want FAILED, NO_AUTH %q, 1", it.State, it.ErrCode, it.ErrCodeDes, it.Attempts, noAuthDes)
	}
	if st.sim.Payments(billno) != 0 {
		t.Fatalf("paid %d times after NO_AUTH", st.sim.Payments(billno))
	}

	if err := st.sim.SetCallerIPs(listedIP, functionsIP); err != nil {
		t.Fatal(err)
	}
	paid := decodeLedgerAnswer(t, p.invoke(t, req, logLine{billno, "success"}).Payload)
	if paid.Error != nil || paid.SendListID == "" || paid.Replayed {
		t.Errorf("the same billno once allowed: %+v, want sent", paid)
	}
	if n := st.sim.Payments(billno); n != 1 {
		t.Errorf("paid %d times, want 1", n)
	}
	if it, err := store.Get(context.Background(), key); err != nil || it.State != ledger.Sent || it.Attempts != 2 {
		t.Errorf("item after the allowed send: %+v, %v; want SENT after 2 attempts", it, err)
	}
	checkOutput(t, p, st.secrets()...)
}
