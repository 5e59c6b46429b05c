package reconcile_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

const billno = "B1"

// The items a transition starts from, each recorded at base through the
// ledger's own writes, as the send path leaves them.
var (
	// recorded: its send died mid-call; the lease ended at base+30s.
	recorded = func(t *testing.T, s ledger.Store, _ *wechat) { create(t, s, billno, base) }
	// unknown: its send's outcome is not known (next check base+1m1s).
	unknown = func(t *testing.T, s ledger.Store, _ *wechat) {
		create(t, s, billno, base)
		settle(t, s, billno, base, ledger.Unknown, "")
	}
	// sentItem: WeChat answered success (next check base+1h1s).
	sentItem = func(t *testing.T, s ledger.Store, _ *wechat) {
		create(t, s, billno, base)
		settle(t, s, billno, base, ledger.Sent, "1000041701B1")
	}
	// attention: a send of an item that needed attention, not known.
	attention = func(t *testing.T, s ledger.Store, _ *wechat) {
		create(t, s, billno, base)
		settle(t, s, billno, base, ledger.NeedsAttention, "")
	}
	// attentionPaid: WeChat once answered success for it.
	attentionPaid = func(t *testing.T, s ledger.Store, _ *wechat) {
		create(t, s, billno, base)
		settle(t, s, billno, base, ledger.NeedsAttention, "1000041701B1")
	}
)

// notFoundAt is from with a reconciler's NOT_FOUND reading at seenAt, next
// check 5 minutes later.
func notFoundAt(from func(*testing.T, ledger.Store, *wechat), seenAt time.Duration) func(*testing.T, ledger.Store, *wechat) {
	return func(t *testing.T, s ledger.Store, w *wechat) {
		from(t, s, w)
		seen(t, s, billno, at(seenAt), at(seenAt+5*time.Minute))
	}
}

// withRecord is from with WeChat's record of the billno.
func withRecord(from func(*testing.T, ledger.Store, *wechat), status, reason string) func(*testing.T, ledger.Store, *wechat) {
	return func(t *testing.T, s ledger.Store, w *wechat) {
		from(t, s, w)
		w.record(billno, status, reason)
	}
}

// want is an item after a check, and what the check did.
type want struct {
	state                      ledger.State
	status, reason, refundTime string
	refundAmount               int64
	next                       time.Time // zero: none
	attempts                   int       // 0 means 1
	sends                      int
	// the Summary's counts; transitions nil means none
	checked, settled, resent, attention, errors int
	transitions                                 map[string]int
}

// TestTransitions checks every move of the reconciler, on the injected
// clock with a fake WeChat: the stored item, WeChat's calls, the Summary
// and, for NEEDS_ATTENTION, the error line naming the billno.
func TestTransitions(t *testing.T) {
	m := func(s ...string) map[string]int {
		out := map[string]int{}
		for _, k := range s {
			out[k]++
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		setup func(*testing.T, ledger.Store, *wechat)
		now   time.Duration
		// check checks the item with Check (due or not) rather than a pass.
		check bool
		// queryErr fails gethbinfo; sendErr answers the re-send.
		queryErr, sendErr error
		want              want
	}{
		// RECORDED (lease ended) and UNKNOWN, as gethbinfo says.
		{name: "UNKNOWN, SENT: SENT, checked in the claim window", setup: withRecord(unknown, wxpay.StatusSent, ""), now: 2 * time.Minute,
			want: want{state: ledger.Sent, status: "SENT", next: at(2*time.Minute + 6*time.Hour), checked: 1, settled: 1, transitions: m("UNKNOWN->SENT")}},
		{name: "RECORDED after its lease, SENT: SENT", setup: withRecord(recorded, wxpay.StatusSent, ""), now: 2 * time.Minute,
			want: want{state: ledger.Sent, status: "SENT", next: at(2*time.Minute + 6*time.Hour), checked: 1, settled: 1, transitions: m("RECORDED->SENT")}},
		{name: "UNKNOWN, FAILED: FAILED with the reason", setup: withRecord(unknown, wxpay.StatusFailed, "帐号余额不足"), now: 2 * time.Minute,
			want: want{state: ledger.Failed, status: "FAILED", reason: "帐号余额不足", checked: 1, settled: 1, transitions: m("UNKNOWN->FAILED")}},
		{name: "RECORDED, FAILED: FAILED", setup: withRecord(recorded, wxpay.StatusFailed, ""), now: 2 * time.Minute,
			want: want{state: ledger.Failed, status: "FAILED", checked: 1, settled: 1, transitions: m("RECORDED->FAILED")}},
		{name: "UNKNOWN, SENDING with a reason: FAILED with the reason", setup: withRecord(unknown, wxpay.StatusSending, "该用户今日领取红包个数超过限制"), now: 2 * time.Minute,
			want: want{state: ledger.Failed, status: "SENDING", reason: "该用户今日领取红包个数超过限制", checked: 1, settled: 1, transitions: m("UNKNOWN->FAILED")}},
		{name: "UNKNOWN, SENDING without a reason: kept, checked again", setup: withRecord(unknown, wxpay.StatusSending, ""), now: 2 * time.Minute,
			want: want{state: ledger.Unknown, status: "SENDING", next: at(2*time.Minute + 15*time.Minute), checked: 1}},
		{name: "RECORDED, SENDING without a reason: kept", setup: withRecord(recorded, wxpay.StatusSending, ""), now: 2 * time.Minute,
			want: want{state: ledger.Recorded, status: "SENDING", next: at(17 * time.Minute), checked: 1}},
		{name: "UNKNOWN, a status not documented: kept, checked again", setup: withRecord(unknown, "PENDING", ""), now: 2 * time.Minute,
			want: want{state: ledger.Unknown, status: "PENDING", next: at(17 * time.Minute), checked: 1}},
		{name: "UNKNOWN, RECEIVED: RECEIVED", setup: withRecord(unknown, wxpay.StatusReceived, ""), now: 2 * time.Minute,
			want: want{state: ledger.Received, status: "RECEIVED", checked: 1, settled: 1, transitions: m("UNKNOWN->RECEIVED")}},
		{name: "UNKNOWN, REFUND: REFUNDED with the refund", setup: func(t *testing.T, s ledger.Store, w *wechat) {
			unknown(t, s, w)
			r := w.record(billno, wxpay.StatusRefund, "")
			r.RefundTime, r.RefundAmount = "2026-12-02 16:00:10", 100
		}, now: 25 * time.Hour,
			want: want{state: ledger.Refunded, status: "REFUND", refundTime: "2026-12-02 16:00:10", refundAmount: 100, checked: 1, settled: 1, transitions: m("UNKNOWN->REFUNDED")}},
		{name: "UNKNOWN, RFUND_ING: SENT, checked hourly", setup: withRecord(unknown, wxpay.StatusRefunding, ""), now: 25 * time.Hour,
			want: want{state: ledger.Sent, status: "RFUND_ING", next: at(26 * time.Hour), checked: 1, settled: 1, transitions: m("UNKNOWN->SENT")}},

		// SENT, spaced to the 24-hour claim window.
		{name: "SENT, SENT: checked every 6 h in the claim window", setup: withRecord(sentItem, wxpay.StatusSent, ""), now: 2 * time.Hour,
			want: want{state: ledger.Sent, status: "SENT", next: at(8 * time.Hour), checked: 1}},
		{name: "SENT, SENT near the window's end: checked an hour after it", setup: withRecord(sentItem, wxpay.StatusSent, ""), now: 20 * time.Hour,
			want: want{state: ledger.Sent, status: "SENT", next: at(25 * time.Hour), checked: 1}},
		{name: "SENT, SENT past the window: checked hourly", setup: withRecord(sentItem, wxpay.StatusSent, ""), now: 25*time.Hour + 30*time.Minute,
			want: want{state: ledger.Sent, status: "SENT", next: at(26*time.Hour + 30*time.Minute), checked: 1}},
		{name: "SENT, RECEIVED: RECEIVED", setup: withRecord(sentItem, wxpay.StatusReceived, ""), now: 2 * time.Hour,
			want: want{state: ledger.Received, status: "RECEIVED", checked: 1, settled: 1, transitions: m("SENT->RECEIVED")}},
		{name: "SENT, RFUND_ING: kept, checked hourly", setup: withRecord(sentItem, wxpay.StatusRefunding, ""), now: 25 * time.Hour,
			want: want{state: ledger.Sent, status: "RFUND_ING", next: at(26 * time.Hour), checked: 1}},
		{name: "SENT, REFUND: REFUNDED with the refund", setup: func(t *testing.T, s ledger.Store, w *wechat) {
			sentItem(t, s, w)
			r := w.record(billno, wxpay.StatusRefund, "")
			r.RefundTime, r.RefundAmount = "2026-12-02 16:00:10", 100
		}, now: 26 * time.Hour,
			want: want{state: ledger.Refunded, status: "REFUND", refundTime: "2026-12-02 16:00:10", refundAmount: 100, checked: 1, settled: 1, transitions: m("SENT->REFUNDED")}},
		{name: "SENT, FAILED: contradicts the success answer, NEEDS_ATTENTION", setup: withRecord(sentItem, wxpay.StatusFailed, ""), now: 2 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "FAILED", next: at(8 * time.Hour), checked: 1, attention: 1, transitions: m("SENT->NEEDS_ATTENTION")}},
		{name: "SENT, SENDING with a reason: never FAILED after a success answer", setup: withRecord(sentItem, wxpay.StatusSending, "风控"), now: 2 * time.Hour,
			want: want{state: ledger.Sent, status: "SENDING", reason: "风控", next: at(2*time.Hour + 15*time.Minute), checked: 1}},
		{name: "SENT, NOT_FOUND: kept, never sent again", setup: sentItem, now: 2 * time.Hour,
			want: want{state: ledger.Sent, status: "NOT_FOUND", next: at(2*time.Hour + 5*time.Minute), checked: 1}},

		// NOT_FOUND: a few minutes, then the stored request again, then EXPIRED.
		{name: "UNKNOWN, NOT_FOUND first: checked again in a few minutes", setup: unknown, now: 2 * time.Minute,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(7 * time.Minute), checked: 1}},
		{name: "UNKNOWN, NOT_FOUND again: sent again, paid", setup: notFoundAt(unknown, 2*time.Minute), now: 7 * time.Minute,
			want: want{state: ledger.Sent, status: "NOT_FOUND", next: at(7*time.Minute + ledger.CheckAfterSent), attempts: 2, sends: 1,
				checked: 1, resent: 1, settled: 1, transitions: m("UNKNOWN->SENT")}},
		{name: "UNKNOWN, NOT_FOUND again: sent again, unknown again", setup: notFoundAt(unknown, 2*time.Minute), now: 7 * time.Minute, sendErr: systemError,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(7*time.Minute + ledger.CheckAfterUnknown), attempts: 2, sends: 1,
				checked: 1, resent: 1}},
		{name: "RECORDED, NOT_FOUND again: sent again, a refusal keeps it unknown", setup: notFoundAt(recorded, 2*time.Minute), now: 7 * time.Minute, sendErr: notEnough,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(7*time.Minute + ledger.CheckAfterUnknown), attempts: 2, sends: 1,
				checked: 1, resent: 1, transitions: m("RECORDED->UNKNOWN")}},
		{name: "UNKNOWN, NOT_FOUND seen a minute ago (checked now): not sent again yet", setup: notFoundAt(unknown, 2*time.Minute), now: 3 * time.Minute, check: true,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(8 * time.Minute), checked: 1}},
		{name: "UNKNOWN, NOT_FOUND seen before the last try: checked again first", setup: func(t *testing.T, s ledger.Store, w *wechat) {
			notFoundAt(unknown, 2*time.Minute)(t, s, w)
			// A repeat of the request, sent at 5 minutes, outcome unknown.
			hash := get(t, s, billno).Hash
			if _, err := s.Acquire(context.Background(), key(billno), ledger.Lease{Hash: hash, Owner: "repeat", Until: at(5*time.Minute + leaseTTL), Now: at(5 * time.Minute)}); err != nil {
				t.Fatal(err)
			}
			if err := s.Settle(context.Background(), key(billno), ledger.Settlement{Owner: "repeat", State: ledger.Unknown, Now: at(5*time.Minute + time.Second)}); err != nil {
				t.Fatal(err)
			}
		}, now: 7 * time.Minute,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(7*time.Minute + 10*time.Minute), attempts: 2, checked: 1}},
		{name: "UNKNOWN, NOT_FOUND past the re-entry window: not sent, checked when it expires", setup: notFoundAt(unknown, 24*time.Hour+50*time.Minute), now: 24*time.Hour + 58*time.Minute,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(25 * time.Hour), checked: 1}},
		{name: "UNKNOWN, NOT_FOUND 25 h after the first try: EXPIRED", setup: unknown, now: 25 * time.Hour,
			want: want{state: ledger.Expired, status: "NOT_FOUND", checked: 1, settled: 1, transitions: m("UNKNOWN->EXPIRED")}},
		{name: "RECORDED, NOT_FOUND 25 h after the first try: EXPIRED", setup: recorded, now: 25 * time.Hour,
			want: want{state: ledger.Expired, status: "NOT_FOUND", checked: 1, settled: 1, transitions: m("RECORDED->EXPIRED")}},
		{name: "UNKNOWN, NOT_FOUND, tried again at 26 h: expires an hour after that try", setup: func(t *testing.T, s ledger.Store, w *wechat) {
			unknown(t, s, w)
			hash := get(t, s, billno).Hash
			if _, err := s.Acquire(context.Background(), key(billno), ledger.Lease{Hash: hash, Owner: "late", Until: at(26*time.Hour + leaseTTL), Now: at(26 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := s.Settle(context.Background(), key(billno), ledger.Settlement{Owner: "late", State: ledger.Unknown, Now: at(26*time.Hour + time.Second)}); err != nil {
				t.Fatal(err)
			}
		}, now: 26*time.Hour + 30*time.Minute,
			want: want{state: ledger.Unknown, status: "NOT_FOUND", next: at(26*time.Hour + 40*time.Minute), attempts: 2, checked: 1}},

		// A failed query: later.
		{name: "UNKNOWN, gethbinfo failed: kept, checked again", setup: unknown, now: 2 * time.Minute, queryErr: systemError,
			want: want{state: ledger.Unknown, next: at(7 * time.Minute), errors: 1}},

		// Not final within 72 hours.
		{name: "UNKNOWN at 72 h, SENDING: NEEDS_ATTENTION", setup: withRecord(unknown, wxpay.StatusSending, ""), now: 72 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "SENDING", next: at(78 * time.Hour), checked: 1, attention: 1, transitions: m("UNKNOWN->NEEDS_ATTENTION")}},
		{name: "SENT at 72 h, SENT: NEEDS_ATTENTION", setup: withRecord(sentItem, wxpay.StatusSent, ""), now: 72 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "SENT", next: at(78 * time.Hour), checked: 1, attention: 1, transitions: m("SENT->NEEDS_ATTENTION")}},
		{name: "UNKNOWN at 72 h, gethbinfo failed: NEEDS_ATTENTION", setup: unknown, now: 72 * time.Hour, queryErr: systemError,
			want: want{state: ledger.NeedsAttention, next: at(78 * time.Hour), errors: 1, attention: 1, transitions: m("UNKNOWN->NEEDS_ATTENTION")}},
		{name: "SENT at 72 h, RECEIVED: RECEIVED", setup: withRecord(sentItem, wxpay.StatusReceived, ""), now: 72 * time.Hour,
			want: want{state: ledger.Received, status: "RECEIVED", checked: 1, settled: 1, transitions: m("SENT->RECEIVED")}},

		// NEEDS_ATTENTION: settled by WeChat's end of the red packet only.
		{name: "NEEDS_ATTENTION, RECEIVED: RECEIVED", setup: withRecord(attention, wxpay.StatusReceived, ""), now: 80 * time.Hour,
			want: want{state: ledger.Received, status: "RECEIVED", checked: 1, settled: 1, transitions: m("NEEDS_ATTENTION->RECEIVED")}},
		{name: "NEEDS_ATTENTION, SENDING: kept, every 6 h", setup: withRecord(attention, wxpay.StatusSending, ""), now: 2 * time.Minute,
			want: want{state: ledger.NeedsAttention, status: "SENDING", next: at(2*time.Minute + 6*time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION, SENT: kept", setup: withRecord(attention, wxpay.StatusSent, ""), now: 80 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "SENT", next: at(86 * time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION, REFUND: REFUNDED", setup: withRecord(attentionPaid, wxpay.StatusRefund, ""), now: 80 * time.Hour,
			want: want{state: ledger.Refunded, status: "REFUND", checked: 1, settled: 1, transitions: m("NEEDS_ATTENTION->REFUNDED")}},
		{name: "NEEDS_ATTENTION, FAILED: kept for a person", setup: withRecord(attention, wxpay.StatusFailed, "风控"), now: 80 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "FAILED", reason: "风控", next: at(86 * time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION paid once, FAILED: kept for a person", setup: withRecord(attentionPaid, wxpay.StatusFailed, ""), now: 80 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "FAILED", next: at(86 * time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION, SENDING with a reason: kept for a person", setup: withRecord(attention, wxpay.StatusSending, "风控"), now: 80 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "SENDING", reason: "风控", next: at(86 * time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION, NOT_FOUND past its window: kept for a person, never sent again", setup: attention, now: 80 * time.Hour,
			want: want{state: ledger.NeedsAttention, status: "NOT_FOUND", next: at(86 * time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION, NOT_FOUND within the window: never sent again", setup: notFoundAt(attention, 2*time.Minute), now: 8 * time.Minute,
			want: want{state: ledger.NeedsAttention, status: "NOT_FOUND", next: at(8*time.Minute + 6*time.Hour), checked: 1}},
		{name: "NEEDS_ATTENTION at the 30-day query window: no more checks", setup: withRecord(attention, wxpay.StatusSending, ""), now: 30*24*time.Hour - time.Hour,
			want: want{state: ledger.NeedsAttention, status: "SENDING", checked: 1}},

		// Check: due or not; never a send in flight or a final item.
		{name: "check of an item not due", setup: withRecord(sentItem, wxpay.StatusReceived, ""), now: 10 * time.Minute, check: true,
			want: want{state: ledger.Received, status: "RECEIVED", checked: 1, settled: 1, transitions: m("SENT->RECEIVED")}},
		{name: "check of an item whose send holds the lease: not queried", setup: withRecord(recorded, wxpay.StatusSent, ""), now: 10 * time.Second, check: true,
			want: want{state: ledger.Recorded, next: at(leaseTTL + ledger.CheckAfterLease)}},
		{name: "check of a final item: not queried", setup: func(t *testing.T, s ledger.Store, w *wechat) {
			create(t, s, billno, base)
			settle(t, s, billno, base, ledger.Failed, "")
			w.record(billno, wxpay.StatusFailed, "")
		}, now: time.Hour, check: true,
			want: want{state: ledger.Failed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
			tc.setup(t, store, w)
			before := get(t, store, billno)
			if tc.queryErr != nil {
				w.queryErr[billno] = tc.queryErr
			}
			if tc.sendErr != nil {
				w.sendAnswer[billno] = tc.sendErr
			}
			c.Set(at(tc.now))
			r, logs := newReconciler(store, w, c)

			var s reconcile.Summary
			if tc.check {
				var err error
				if s, err = r.Check(t.Context(), key(billno)); err != nil {
					t.Fatalf("Check: %v", err)
				}
				if s.Item == nil || s.Item.MchBillno != billno || s.Item.State != string(tc.want.state) {
					t.Errorf("Check's item %+v, want %s", s.Item, tc.want.state)
				}
			} else {
				s = r.RunOnce(t.Context())
			}

			wt := tc.want
			got := get(t, store, billno)
			if got.State != wt.state || got.Status != wt.status || got.Reason != wt.reason ||
				got.RefundTime != wt.refundTime || got.RefundAmount != wt.refundAmount {
				t.Errorf("item: state %s status %q reason %q refund %q %d; want %s %q %q %q %d",
					got.State, got.Status, got.Reason, got.RefundTime, got.RefundAmount, wt.state, wt.status, wt.reason, wt.refundTime, wt.refundAmount)
			}
			if !got.NextCheckAt.Equal(wt.next) {
				t.Errorf("next check %v, want %v", got.NextCheckAt, wt.next)
			}
			if wt.attempts == 0 {
				wt.attempts = 1
			}
			if got.Attempts != wt.attempts {
				t.Errorf("attempts %d, want %d", got.Attempts, wt.attempts)
			}
			// Never another red packet: only ever the stored request.
			sends := w.sendsOf(billno)
			if len(sends) != wt.sends {
				t.Errorf("%d sends, want %d", len(sends), wt.sends)
			}
			for _, sn := range sends {
				if sn.api != before.API || !maps.Equal(sn.fields, before.Fields) {
					t.Errorf("sent %s %v, want exactly the stored %s %v", sn.api, sn.fields, before.API, before.Fields)
				}
			}
			queried := w.queriesOf(billno)
			if wantQueried := wt.checked + wt.errors; queried != wantQueried {
				t.Errorf("%d queries, want %d", queried, wantQueried)
			}
			if queried > 0 && w.appids[billno] != wxappid {
				t.Errorf("queried with appid %q, want the record's wxappid %q", w.appids[billno], wxappid)
			}
			if wt.transitions == nil {
				wt.transitions = map[string]int{}
			}
			if s.Checked != wt.checked || s.Settled != wt.settled || s.Resent != wt.resent || s.NeedsAttention != wt.attention ||
				s.Errors != wt.errors || s.LostRaces != 0 || !maps.Equal(s.Transitions, wt.transitions) {
				t.Errorf("summary %+v, want checked %d settled %d resent %d needs_attention %d errors %d transitions %v",
					s, wt.checked, wt.settled, wt.resent, wt.attention, wt.errors, wt.transitions)
			}
			// An item that needs attention is an error line naming it.
			line := ""
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, "needs attention") {
					line = l
				}
			}
			switch {
			case wt.attention > 0 && !strings.Contains(line, `"mch_billno":"B1"`):
				t.Errorf("no error line names the billno needing attention:\n%s", logs)
			case wt.attention == 0 && line != "":
				t.Errorf("an attention line for an item that does not need it: %s", line)
			}
		})
	}
}
