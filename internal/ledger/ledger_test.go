package ledger_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

var states = []ledger.State{ledger.Recorded, ledger.Sent, ledger.Failed, ledger.Unknown, ledger.Received, ledger.Refunded, ledger.Expired, ledger.NeedsAttention}

func TestStates(t *testing.T) {
	for _, tc := range []struct {
		s                       ledger.State
		final, paid, resendable bool
	}{
		{ledger.Recorded, false, false, true},
		{ledger.Sent, false, true, false},
		{ledger.Failed, true, false, true},
		{ledger.Unknown, false, false, true},
		{ledger.Received, true, true, false},
		{ledger.Refunded, true, true, false},
		{ledger.Expired, true, false, true},
		{ledger.NeedsAttention, false, false, true},
	} {
		if !tc.s.Valid() || tc.s.Final() != tc.final || tc.s.Paid() != tc.paid || tc.s.Resendable() != tc.resendable {
			t.Errorf("%s: valid %v final %v paid %v resendable %v, want true %v %v %v",
				tc.s, tc.s.Valid(), tc.s.Final(), tc.s.Paid(), tc.s.Resendable(), tc.final, tc.paid, tc.resendable)
		}
		// A paid item is never sent again.
		if tc.s.Paid() && tc.s.Resendable() {
			t.Errorf("%s is both paid and resendable", tc.s)
		}
	}
	for _, s := range []ledger.State{"", "sent", "PENDING"} {
		if s.Valid() || s.Final() || s.Paid() || s.Resendable() {
			t.Errorf("%q: not a state, but valid %v final %v paid %v resendable %v", s, s.Valid(), s.Final(), s.Paid(), s.Resendable())
		}
	}
}

func TestAfterSend(t *testing.T) {
	const (
		success = ledger.OutcomeSuccess
		failed  = ledger.OutcomeFailed
		unknown = ledger.OutcomeUnknown
	)
	for _, tc := range []struct {
		prev           ledger.State
		earlierUnknown bool
		o              ledger.Outcome
		want           ledger.State
	}{
		// The first send.
		{ledger.Recorded, false, success, ledger.Sent},
		{ledger.Recorded, false, failed, ledger.Failed},
		{ledger.Recorded, false, unknown, ledger.Unknown},
		// A Recorded item tried before: that try's outcome is not known.
		{ledger.Recorded, true, success, ledger.Sent},
		{ledger.Recorded, true, failed, ledger.Unknown},
		{ledger.Recorded, true, unknown, ledger.Unknown},
		// A refusal of a later try says nothing about an unknown earlier one.
		{ledger.Unknown, false, success, ledger.Sent},
		{ledger.Unknown, false, failed, ledger.Unknown},
		{ledger.Unknown, true, failed, ledger.Unknown},
		{ledger.Unknown, false, unknown, ledger.Unknown},
		// Resent after a refusal, or after the billno's window passed.
		{ledger.Failed, false, success, ledger.Sent},
		{ledger.Failed, false, failed, ledger.Failed},
		{ledger.Failed, true, failed, ledger.Unknown},
		{ledger.Failed, false, unknown, ledger.Unknown},
		{ledger.Expired, false, success, ledger.Sent},
		{ledger.Expired, false, failed, ledger.Failed},
		{ledger.Expired, true, failed, ledger.Unknown},
		{ledger.Expired, false, unknown, ledger.Unknown},
		// Only success resolves an item that needs attention.
		{ledger.NeedsAttention, false, success, ledger.Sent},
		{ledger.NeedsAttention, false, failed, ledger.NeedsAttention},
		{ledger.NeedsAttention, false, unknown, ledger.NeedsAttention},
		// Anything but the three outcomes is unknown.
		{ledger.Recorded, false, "", ledger.Unknown},
		{ledger.Recorded, false, "refused", ledger.Unknown},
		// Paid items are not sent again; if they were, nothing undoes the payment.
		{ledger.Sent, false, failed, ledger.Sent},
		{ledger.Received, false, unknown, ledger.Received},
		{ledger.Refunded, false, success, ledger.Refunded},
	} {
		if got := ledger.AfterSend(tc.prev, tc.earlierUnknown, tc.o); got != tc.want {
			t.Errorf("AfterSend(%s, %v, %q) = %s, want %s", tc.prev, tc.earlierUnknown, tc.o, got, tc.want)
		}
	}
	// Never Failed unless WeChat refused this send and nothing earlier is unknown.
	for _, prev := range states {
		for _, o := range []ledger.Outcome{success, unknown, ""} {
			for _, eu := range []bool{false, true} {
				if ledger.AfterSend(prev, eu, o) == ledger.Failed {
					t.Errorf("AfterSend(%s, %v, %q) = FAILED", prev, eu, o)
				}
			}
		}
	}
}

func TestValidTransition(t *testing.T) {
	allowed := map[ledger.State][]ledger.State{
		ledger.Recorded:       {ledger.Sent, ledger.Failed, ledger.Expired, ledger.NeedsAttention, ledger.Received, ledger.Refunded},
		ledger.Unknown:        {ledger.Sent, ledger.Failed, ledger.Expired, ledger.NeedsAttention, ledger.Received, ledger.Refunded},
		ledger.Sent:           {ledger.Received, ledger.Refunded, ledger.NeedsAttention},
		ledger.NeedsAttention: {ledger.Received, ledger.Refunded},
	}
	for _, from := range states {
		for _, to := range append(states, "", "BOGUS") {
			want := false
			for _, s := range allowed[from] {
				want = want || s == to
			}
			if got := ledger.ValidTransition(from, to); got != want {
				t.Errorf("ValidTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

// TestValidReconcile: a check may make any ValidTransition, or keep a
// state that is not final (with another next check); nothing else.
func TestValidReconcile(t *testing.T) {
	for _, from := range states {
		for _, to := range append(states, "", "BOGUS") {
			want := ledger.ValidTransition(from, to) || (from == to && !from.Final())
			if got := ledger.ValidReconcile(from, to); got != want {
				t.Errorf("ValidReconcile(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, st := range []ledger.State{ledger.Recorded, ledger.Unknown, ledger.Sent, ledger.NeedsAttention} {
		if !ledger.ValidReconcile(st, st) {
			t.Errorf("%s cannot be kept", st)
		}
	}
	if ledger.ValidReconcile("", "") || ledger.ValidReconcile("BOGUS", "BOGUS") {
		t.Errorf("a state that is not one can be kept")
	}
}

// TestFirstCheck: after a send, paid items are checked within the claim
// window, unknown ones soon, final ones never.
func TestFirstCheck(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 123_456_789, time.UTC)
	for _, tc := range []struct {
		st   ledger.State
		want time.Duration // 0: none
	}{
		{ledger.Sent, ledger.CheckAfterSent},
		{ledger.Unknown, ledger.CheckAfterUnknown},
		{ledger.Recorded, ledger.CheckAfterUnknown},
		{ledger.NeedsAttention, ledger.CheckAfterUnknown},
		{ledger.Failed, 0}, {ledger.Received, 0}, {ledger.Refunded, 0}, {ledger.Expired, 0}, {"BOGUS", 0},
	} {
		want := time.Time{}
		if tc.want > 0 {
			want = now.Add(tc.want).Truncate(time.Millisecond)
		}
		if got := ledger.FirstCheck(tc.st, now); !got.Equal(want) {
			t.Errorf("FirstCheck(%s) = %v, want %v", tc.st, got, want)
		}
	}
}

func TestHash(t *testing.T) {
	fields := map[string]string{"mch_billno": "B1", "re_openid": "o1", "total_amount": "100"}
	h := ledger.Hash("sendredpack", fields)
	if len(h) != 64 {
		t.Fatalf("Hash = %q, want 64 hex digits", h)
	}
	// Map order does not matter.
	for range 20 {
		if again := ledger.Hash("sendredpack", map[string]string{"total_amount": "100", "re_openid": "o1", "mch_billno": "B1"}); again != h {
			t.Fatalf("Hash changed: %s, then %s", h, again)
		}
	}
	// Any other request hashes otherwise, however its strings are cut.
	others := []struct {
		api    string
		fields map[string]string
	}{
		{"sendminiprogramhb", fields},
		{"sendredpack", map[string]string{"mch_billno": "B1", "re_openid": "o1", "total_amount": "101"}},
		{"sendredpack", map[string]string{"mch_billno": "B1", "re_openid": "o1"}},
		{"sendredpack", map[string]string{"mch_billno": "B1", "re_openid": "o1", "total_amount": "100", "remark": ""}},
		{"sendredpack", map[string]string{"mch_billnoB1": "", "re_openid": "o1", "total_amount": "100"}},
		{"sendredpackmch_billno", map[string]string{"": "B1", "re_openid": "o1", "total_amount": "100"}},
	}
	for i, o := range others {
		if ledger.Hash(o.api, o.fields) == h {
			t.Errorf("request %d hashes like the first", i)
		}
	}
	if ledger.Hash("a", nil) != ledger.Hash("a", map[string]string{}) {
		t.Errorf("nil and empty fields hash differently")
	}
}

func TestItemLease(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 500_000, time.UTC)
	it := &ledger.Item{}
	if !it.LeaseFree(now) {
		t.Errorf("no lease: not free")
	}
	it.LeaseUntil = now.Truncate(time.Millisecond)
	if it.LeaseFree(now) {
		t.Errorf("lease until now (to the millisecond): free")
	}
	if !it.LeaseFree(now.Add(time.Millisecond)) {
		t.Errorf("lease ended a millisecond ago: not free")
	}
	for _, tc := range []struct{ attempts, settled int }{{1, 0}, {2, 1}, {3, 2}} {
		it := &ledger.Item{Attempts: tc.attempts, Settled: tc.settled}
		if it.EarlierUnknown() {
			t.Errorf("%+v: EarlierUnknown", tc)
		}
	}
	for _, tc := range []struct{ attempts, settled int }{{2, 0}, {3, 1}} {
		it := &ledger.Item{Attempts: tc.attempts, Settled: tc.settled}
		if !it.EarlierUnknown() {
			t.Errorf("%+v: not EarlierUnknown", tc)
		}
	}
}

func ExampleAfterSend() {
	// The first send timed out; its invocation died before settling. A
	// repeat is refused by WeChat: the first send may still have paid.
	it := &ledger.Item{State: ledger.Recorded, Attempts: 2, Settled: 0}
	fmt.Println(ledger.AfterSend(it.State, it.EarlierUnknown(), ledger.OutcomeFailed))
	// Output: UNKNOWN
}
