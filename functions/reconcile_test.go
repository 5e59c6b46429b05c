package functions_test

// End to end: the reconciler's bootstrap (ReconcileFunction) settling what
// the send functions' bootstraps left, with the ledger in moto_server's
// DynamoDB and the simulator following WeChat's timeline. The reconciler
// reads the wall clock; the tests move the world forward (warp: the
// simulator's clock on, the ledger's times back) instead of waiting, or
// check one billno now ({"mch_billno": ...}).

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// sendDeadline is the send functions' deadline in these tests.
const sendDeadline = 10 * time.Second

// persistentFault is f on every try of one send (the client's three).
func persistentFault(f wxpaytest.Fault) []wxpaytest.Fault {
	return []wxpaytest.Fault{f, f, f}
}

// TestReconcileUnknownToSent: two sends left unknown by faults, one after
// WeChat paid (SYSTEMERROR after the payment, every try) and one before
// (SYSTEMERROR before it, every try: WeChat has no record), then
// ReconcileFunction's passes ({}): the paid one is SENT at the first check;
// the other is NOT_FOUND twice, five minutes apart, then sent again with
// its billno and its stored fields, paid, SENT. Each red packet is paid
// once.
func TestReconcileUnknownToSent(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	w := newRecWorld(t, "reconcile-unknown")
	sendFn := startProc(t, "send", bins["send"], w.env())
	rec := startProc(t, "reconcile", bins["reconcile"], w.env(reconcileEnv...))
	const paid, lost = "E2ERCPAID01", "E2ERCLOST01"
	w.sim.FailSends(paid, persistentFault(wxpaytest.Fault{Kind: wxpaytest.FaultSystemErrorAfterPay})...)
	w.sim.FailSends(lost, persistentFault(wxpaytest.Fault{Kind: wxpaytest.FaultSystemError})...)
	for _, b := range []string{paid, lost} {
		a := send(t, sendFn, directRequest(t, "send", b, nil), sendDeadline)
		if a.Error == nil || a.Error.Code != "SYSTEMERROR" || a.Error.Outcome != "unknown" {
			t.Fatalf("%s: answer %+v, want SYSTEMERROR, unknown", b, a)
		}
		if it := w.item(t, b); it.State != ledger.Unknown || it.Attempts != 1 {
			t.Fatalf("%s: %s after %d attempts, want UNKNOWN after 1", b, it.State, it.Attempts)
		}
	}
	if w.sim.Payments(paid) != 1 || w.sim.Payments(lost) != 0 {
		t.Fatalf("payments %d and %d, want 1 and 0", w.sim.Payments(paid), w.sim.Payments(lost))
	}

	// Not due yet: an unknown send is first checked a minute later.
	if s := reconcile(t, rec, `{}`); s.Checked != 0 {
		t.Errorf("pass at once: %+v, want nothing due", s)
	}

	w.warp(t, w.scan(t), 2*time.Minute)
	s := reconcile(t, rec, `{}`)
	if s.Checked != 2 || s.Settled != 1 || s.Resent != 0 || s.Transitions["UNKNOWN->SENT"] != 1 || s.Errors != 0 {
		t.Errorf("first pass: %+v, want 2 checked, the paid one settled", s)
	}
	if it := w.item(t, paid); it.State != ledger.Sent || it.Status != wxpay.StatusSent {
		t.Errorf("%s: %s (%s), want SENT", paid, it.State, it.Status)
	}
	if it := w.item(t, lost); it.State != ledger.Unknown || it.Status != "NOT_FOUND" {
		t.Errorf("%s: %s (%s), want UNKNOWN, NOT_FOUND", lost, it.State, it.Status)
	}

	w.warp(t, w.scan(t), 6*time.Minute)
	s = reconcile(t, rec, `{}`)
	if s.Checked != 1 || s.Resent != 1 || s.Settled != 1 || s.Transitions["UNKNOWN->SENT"] != 1 {
		t.Errorf("second pass: %+v, want the lost one sent again and settled", s)
	}
	it := w.item(t, lost)
	simRec, ok := w.sim.Record(lost)
	if it.State != ledger.Sent || it.Attempts != 2 || it.Source != "direct" || !ok || it.SendListID != simRec.SendListID {
		t.Errorf("%s: %s after %d attempts (source %s, send_listid %s), want SENT after 2, WeChat's %s",
			lost, it.State, it.Attempts, it.Source, it.SendListID, simRec.SendListID)
	}
	for _, b := range []string{paid, lost} {
		if n := w.sim.Payments(b); n != 1 {
			t.Errorf("%s paid %d times, want once", b, n)
		}
	}
	if s := reconcile(t, rec, `{}`); s.Checked != 0 {
		t.Errorf("pass after: %+v, want nothing due", s)
	}
	checkOutput(t, sendFn, w.secrets()...)
	if out := rec.stop(); containsAny(out, w.secrets()) {
		t.Error("the reconciler's output holds a secret")
	}
}

// TestReconcileClaimAndRefund: a SENT red packet claimed at WeChat is
// RECEIVED after a check of its billno; one nobody claims is, 25 simulated
// hours later (24 h claim window, an hour of RFUND_ING), REFUNDED by a
// pass, with WeChat's refund_time and refund_amount, and the amount is
// back in the merchant's balance.
func TestReconcileClaimAndRefund(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	w := newRecWorld(t, "reconcile-claim")
	mini := startProc(t, "sendmini", bins["sendmini"], w.env())
	rec := startProc(t, "reconcile", bins["reconcile"], w.env(reconcileEnv...))
	const claimed, unclaimed = "E2ERCCLAIM01", "E2ERCREFUND01"
	start := w.sim.Balance()
	for _, b := range []string{claimed, unclaimed} {
		if a := send(t, mini, directRequest(t, "sendmini", b, nil), sendDeadline); a.Error != nil {
			t.Fatalf("%s: %+v", b, *a.Error)
		}
	}
	if err := w.sim.Receive(claimed, directRequest(t, "sendmini", claimed, nil)["re_openid"].(string), 0); err != nil {
		t.Fatal(err)
	}

	// Checked now, though its first check is an hour away.
	s := check(t, rec, claimed)
	if s.Checked != 1 || s.Settled != 1 || s.Transitions["SENT->RECEIVED"] != 1 || s.Item == nil || s.Item.State != "RECEIVED" || s.Item.Status != wxpay.StatusReceived {
		t.Errorf("check of %s: %+v, want RECEIVED", claimed, s)
	}
	if s := check(t, rec, unclaimed); s.Checked != 1 || s.Settled != 0 || s.Item.State != "SENT" {
		t.Errorf("check of %s: %+v, want SENT, awaiting the claim", unclaimed, s)
	}

	// 24 hours: the claim window ends, RFUND_ING; not yet refunded.
	w.warp(t, w.scan(t), 24*time.Hour+time.Minute)
	if s := check(t, rec, unclaimed); s.Item.State != "SENT" || s.Item.Status != wxpay.StatusRefunding {
		t.Errorf("after 24 h: %+v, want SENT, RFUND_ING", s)
	}
	// An hour more: REFUND, and the pass finds the item due.
	w.warp(t, w.scan(t), time.Hour)
	s = reconcile(t, rec, `{}`)
	if s.Checked != 1 || s.Settled != 1 || s.Transitions["SENT->REFUNDED"] != 1 {
		t.Errorf("pass after 25 h: %+v, want the unclaimed one REFUNDED", s)
	}
	it := w.item(t, unclaimed)
	simRec, _ := w.sim.Record(unclaimed)
	refundTime := simRec.RefundTime.In(time.FixedZone("CST", 8*3600)).Format(wxpaytest.TimeLayout)
	if it.State != ledger.Refunded || it.Status != wxpay.StatusRefund || it.RefundAmount != simRec.TotalAmount || it.RefundTime != refundTime {
		t.Errorf("%s: %s (%s), refund %d at %q; want REFUNDED, %d at %q", unclaimed, it.State, it.Status, it.RefundAmount, it.RefundTime, simRec.TotalAmount, refundTime)
	}
	if got := simRec.RefundTime.Sub(simRec.SendTime); got != 25*time.Hour {
		t.Errorf("refunded %v after the send, want 25 h", got)
	}
	claimedRec, _ := w.sim.Record(claimed)
	if got, want := w.sim.Balance(), start-claimedRec.TotalAmount; got != want {
		t.Errorf("balance %d, want %d: the refund credited, the claimed one spent", got, want)
	}
	if it := w.item(t, claimed); it.State != ledger.Received || !it.NextCheckAt.IsZero() {
		t.Errorf("%s: %s, next check %v; want RECEIVED, final", claimed, it.State, it.NextCheckAt)
	}
	for _, b := range []string{claimed, unclaimed} {
		if n := w.sim.Payments(b); n != 1 {
			t.Errorf("%s paid %d times", b, n)
		}
	}
	checkOutput(t, mini, w.secrets()...)
}

// TestReconcileExpires: a billno whose every send fails before WeChat
// records it: the reconciler finds no record, sends it again (which fails
// alike), and once WeChat's window for the billno has passed (24 h after
// the first try, an hour's margin) with no record, the item is EXPIRED:
// nothing was paid. A later repeat by the caller reaches WeChat, which
// refuses the expired billno (SEND_FAILED): still nothing paid.
func TestReconcileExpires(t *testing.T) {
	skipShort(t)
	bins := bootstraps(t)
	w := newRecWorld(t, "reconcile-expires")
	sendFn := startProc(t, "send", bins["send"], w.env())
	rec := startProc(t, "reconcile", bins["reconcile"], w.env(reconcileEnv...))
	const billno = "E2ERCEXPIRE01"
	// The first send's three tries and the reconciler's re-send's three.
	w.sim.FailSends(billno, slices.Repeat([]wxpaytest.Fault{{Kind: wxpaytest.FaultSystemError}}, 6)...)
	req := directRequest(t, "send", billno, nil)
	if a := send(t, sendFn, req, sendDeadline); a.outcome() != "unknown" {
		t.Fatalf("send: %+v, want unknown", a)
	}

	w.warp(t, w.scan(t), 2*time.Minute)
	if s := reconcile(t, rec, `{}`); s.Checked != 1 || s.Settled != 0 {
		t.Errorf("first pass: %+v, want NOT_FOUND, kept", s)
	}
	w.warp(t, w.scan(t), 6*time.Minute)
	if s := reconcile(t, rec, `{}`); s.Checked != 1 || s.Resent != 1 || s.Settled != 0 {
		t.Errorf("second pass: %+v, want it sent again, still unknown", s)
	}
	if it := w.item(t, billno); it.State != ledger.Unknown || it.Attempts != 2 {
		t.Errorf("after the re-send: %s after %d attempts, want UNKNOWN after 2", it.State, it.Attempts)
	}

	// A day and more: past WeChat's window, no record: EXPIRED, final.
	w.warp(t, w.scan(t), 25*time.Hour)
	s := reconcile(t, rec, `{}`)
	if s.Checked != 1 || s.Settled != 1 || s.Transitions["UNKNOWN->EXPIRED"] != 1 || s.Resent != 0 {
		t.Errorf("pass after 25 h: %+v, want UNKNOWN->EXPIRED", s)
	}
	if it := w.item(t, billno); it.State != ledger.Expired || !it.NextCheckAt.IsZero() {
		t.Errorf("%s: %s, next check %v; want EXPIRED, final", billno, it.State, it.NextCheckAt)
	}

	// The caller sends it again: WeChat refuses the expired billno.
	a := send(t, sendFn, req, sendDeadline)
	if a.Error == nil || a.Error.Code != "SEND_FAILED" || a.Error.Outcome != "failed" {
		t.Errorf("repeat after expiry: %+v, want SEND_FAILED, failed", a)
	}
	if it := w.item(t, billno); it.State != ledger.Failed || it.ErrCode != "SEND_FAILED" {
		t.Errorf("after the refused repeat: %s (%s), want FAILED, SEND_FAILED", it.State, it.ErrCode)
	}
	if n := w.sim.Payments(billno); n != 0 {
		t.Errorf("paid %d times, want never", n)
	}
	if _, ok := w.sim.Record(billno); ok {
		t.Error("WeChat has a record of the expired billno")
	}
}

// containsAny reports whether out holds any of the non-empty strings.
func containsAny(out string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			return true
		}
	}
	return false
}
