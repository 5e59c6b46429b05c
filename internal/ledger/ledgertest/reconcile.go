package ledgertest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// The contract of the reconciler's part of a store: next checks, Due and
// Reconcile.

// reconcile makes a Reconcile that must succeed.
func reconcile(t *testing.T, s ledger.Store, billno string, r ledger.Reconciliation) {
	t.Helper()
	if err := s.Reconcile(t.Context(), key(billno), r); err != nil {
		t.Fatalf("Reconcile %s %+v: %v", billno, r, err)
	}
}

// dueAt creates an Unknown item whose next check is at(d), through the
// store's own writes.
func dueAt(t *testing.T, s ledger.Store, billno string, d time.Duration) {
	t.Helper()
	toState(t, s, billno, ledger.Unknown)
	it := get(t, s, billno)
	reconcile(t, s, billno, ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: it.NextCheckAt, To: ledger.Unknown,
		Status: "SENDING", NextCheckAt: at(d), Now: at(leaseTTL + time.Second)})
}

// billnos lists the items' billnos.
func billnos(items []*ledger.Item) []string {
	var b []string
	for _, it := range items {
		b = append(b, it.MchBillno)
	}
	return b
}

func testNextCheck(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "NEXTCHECK0001"

	t.Run("create", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		if got, want := get(t, s, billno).NextCheckAt, msUTC(at(leaseTTL+ledger.CheckAfterLease)); !got.Equal(want) {
			t.Errorf("after Create: next check %v, want %v (the lease's end and %v)", got, want, ledger.CheckAfterLease)
		}
	})

	for _, tc := range []struct {
		st   ledger.State
		want time.Duration // after the Settle; 0: none
	}{
		{ledger.Sent, ledger.CheckAfterSent},
		{ledger.Unknown, ledger.CheckAfterUnknown},
		{ledger.NeedsAttention, ledger.CheckAfterUnknown},
		{ledger.Failed, 0},
	} {
		t.Run("settle "+string(tc.st), func(t *testing.T) {
			s := newStore(t)
			create(t, s, billno)
			now := at(2 * time.Second)
			settle(t, s, billno, ledger.Settlement{Owner: owner1, State: tc.st, Now: now})
			want := time.Time{}
			if tc.want > 0 {
				want = msUTC(now.Add(tc.want))
			}
			if got := get(t, s, billno).NextCheckAt; !got.Equal(want) {
				t.Errorf("next check %v, want %v", got, want)
			}
			if got := ledger.FirstCheck(tc.st, now); !got.Equal(want) {
				t.Errorf("FirstCheck(%s) = %v, want %v", tc.st, got, want)
			}
		})
	}

	t.Run("acquire", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Failed)
		l := ledger.Lease{Hash: created(newItem(billno)).Hash, Owner: "invocation-2", Until: at(90 * time.Second), Now: at(60 * time.Second)}
		got, err := s.Acquire(t.Context(), key(billno), l)
		if err != nil {
			t.Fatal(err)
		}
		want := msUTC(l.Until.Add(ledger.CheckAfterLease))
		if !got.NextCheckAt.Equal(want) || !get(t, s, billno).NextCheckAt.Equal(want) {
			t.Errorf("after Acquire: next check %v, want %v", got.NextCheckAt, want)
		}
	})

	t.Run("observe", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Unknown)
		before := get(t, s, billno).NextCheckAt
		observe(t, s, billno, ledger.Observation{Status: "SENDING", Now: at(time.Minute)})
		if got := get(t, s, billno).NextCheckAt; !got.Equal(before) {
			t.Errorf("a status alone moved the next check from %v to %v", before, got)
		}
		observe(t, s, billno, ledger.Observation{Status: "SENT", From: ledger.Unknown, To: ledger.Sent, Now: at(time.Hour)})
		if got, want := get(t, s, billno).NextCheckAt, msUTC(at(time.Hour+ledger.CheckAfterSent)); !got.Equal(want) {
			t.Errorf("after a move to SENT: next check %v, want %v", got, want)
		}
		observe(t, s, billno, ledger.Observation{Status: "RECEIVED", From: ledger.Sent, To: ledger.Received, Now: at(2 * time.Hour)})
		if got := get(t, s, billno).NextCheckAt; !got.IsZero() {
			t.Errorf("after a move to RECEIVED: next check %v, want none", got)
		}
	})
}

func testDue(t *testing.T, newStore func(*testing.T) ledger.Store) {
	s := newStore(t)
	ctx := t.Context()
	// Due at 10, 20, 30 and 40 minutes, created out of order.
	for _, b := range []struct {
		billno string
		at     time.Duration
	}{{"DUE0003", 30 * time.Minute}, {"DUE0001", 10 * time.Minute}, {"DUE0004", 40 * time.Minute}, {"DUE0002", 20 * time.Minute}} {
		dueAt(t, s, b.billno, b.at)
	}
	// Never due: final items.
	toState(t, s, "DUEFAILED", ledger.Failed)
	toState(t, s, "DUERECEIVED", ledger.Received)
	toState(t, s, "DUEEXPIRED", ledger.Expired)
	// Another merchant's item.
	other := newItem("DUE0001")
	other.MchID = "1900000110"
	if err := s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	due := func(now time.Duration, limit int) []string {
		t.Helper()
		items, err := s.Due(ctx, mchID, at(now), limit)
		if err != nil {
			t.Fatalf("Due: %v", err)
		}
		for _, it := range items {
			// The whole item, as Get reads it.
			same(t, "Due's "+it.MchBillno, it, get(t, s, it.MchBillno))
		}
		return billnos(items)
	}
	for _, tc := range []struct {
		now   time.Duration
		limit int
		want  []string
	}{
		{5 * time.Minute, 10, nil},
		{10 * time.Minute, 10, []string{"DUE0001"}}, // at its next check
		{25 * time.Minute, 10, []string{"DUE0001", "DUE0002"}},
		{time.Hour, 10, []string{"DUE0001", "DUE0002", "DUE0003", "DUE0004"}},
		{time.Hour, 3, []string{"DUE0001", "DUE0002", "DUE0003"}},
		{time.Hour, 1, []string{"DUE0001"}},
	} {
		if got := due(tc.now, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("Due(%v, %d) = %v, want %v", tc.now, tc.limit, got, tc.want)
		}
	}

	// An item becoming final leaves; one checked later moves back.
	it := get(t, s, "DUE0001")
	reconcile(t, s, "DUE0001", ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: it.NextCheckAt, To: ledger.Failed,
		Status: "FAILED", Now: at(time.Hour)})
	it = get(t, s, "DUE0002")
	reconcile(t, s, "DUE0002", ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: it.NextCheckAt, To: ledger.Unknown,
		NextCheckAt: at(50 * time.Minute), Now: at(time.Hour)})
	if got, want := due(time.Hour, 10), []string{"DUE0003", "DUE0004", "DUE0002"}; !slices.Equal(got, want) {
		t.Errorf("Due after a move and a stay = %v, want %v", got, want)
	}
	// The other merchant's item, from its lease.
	items, err := s.Due(ctx, "1900000110", at(time.Hour), 10)
	if err != nil || len(items) != 1 || items[0].MchID != "1900000110" {
		t.Errorf("Due of the other merchant = %v, %v", items, err)
	}

	for _, bad := range []struct {
		mchID string
		now   time.Time
		limit int
	}{{"", at(time.Hour), 10}, {mchID, time.Time{}, 10}, {mchID, at(time.Hour), 0}, {mchID, at(time.Hour), -1}} {
		_, err := s.Due(ctx, bad.mchID, bad.now, bad.limit)
		if err == nil || errors.Is(err, ledger.ErrPrecondition) || errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Due(%q, %v, %d) = %v, want a plain error", bad.mchID, bad.now, bad.limit, err)
		}
	}
}

func testReconcile(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "RECONCILE0001"
	check := at(time.Hour)

	t.Run("move", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Unknown)
		want := get(t, s, billno)
		r := ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: want.NextCheckAt, To: ledger.Sent,
			Status: "SENT", NextCheckAt: at(7 * time.Hour), Now: check}
		reconcile(t, s, billno, r)
		want.State, want.Status, want.NextCheckAt = ledger.Sent, "SENT", msUTC(r.NextCheckAt)
		want.CheckedAt, want.UpdatedAt = msUTC(check), msUTC(check)
		same(t, "after a move", get(t, s, billno), want)
	})

	t.Run("stay, then final with the refund", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Sent)
		want := get(t, s, billno)
		r := ledger.Reconciliation{From: ledger.Sent, ReadNextCheckAt: want.NextCheckAt, To: ledger.Sent,
			Status: "RFUND_ING", NextCheckAt: at(25 * time.Hour), Now: check}
		reconcile(t, s, billno, r)
		want.Status, want.NextCheckAt, want.CheckedAt, want.UpdatedAt = "RFUND_ING", msUTC(r.NextCheckAt), msUTC(check), msUTC(check)
		same(t, "after a stay", get(t, s, billno), want)

		r = ledger.Reconciliation{From: ledger.Sent, ReadNextCheckAt: r.NextCheckAt, To: ledger.Refunded,
			Status: "REFUND", RefundTime: "2026-11-25 10:00:03", RefundAmount: 100, Now: at(26 * time.Hour)}
		reconcile(t, s, billno, r)
		want.State, want.Status, want.RefundTime, want.RefundAmount = ledger.Refunded, "REFUND", r.RefundTime, 100
		want.NextCheckAt, want.CheckedAt, want.UpdatedAt = time.Time{}, msUTC(r.Now), msUTC(r.Now)
		same(t, "after the refund", get(t, s, billno), want)
	})

	t.Run("failed with the reason; empty values keep the stored ones", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Unknown)
		want := get(t, s, billno)
		r := ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: want.NextCheckAt, To: ledger.Unknown,
			Status: "SENDING", NextCheckAt: at(2 * time.Hour), Now: check}
		reconcile(t, s, billno, r)
		r2 := ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: r.NextCheckAt, To: ledger.Unknown,
			NextCheckAt: at(3 * time.Hour), Now: at(2 * time.Hour)}
		reconcile(t, s, billno, r2)
		if got := get(t, s, billno); got.Status != "SENDING" {
			t.Errorf("status %q after a Reconcile without one, want SENDING", got.Status)
		}
		r3 := ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: r2.NextCheckAt, To: ledger.Failed,
			Status: "FAILED", Reason: "余额不足", Now: at(3 * time.Hour)}
		reconcile(t, s, billno, r3)
		want.State, want.Status, want.Reason = ledger.Failed, "FAILED", "余额不足"
		want.NextCheckAt, want.CheckedAt, want.UpdatedAt = time.Time{}, msUTC(r3.Now), msUTC(r3.Now)
		same(t, "after FAILED", get(t, s, billno), want)
	})

	// The conditions, each on an item otherwise fit for the write.
	for _, tc := range []struct {
		name  string
		state ledger.State
		r     func(it *ledger.Item) ledger.Reconciliation
	}{
		{"wrong expected state", ledger.Sent, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: it.NextCheckAt, To: ledger.Sent, Now: check}
		}},
		{"next check changed since read", ledger.Unknown, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: it.NextCheckAt.Add(-time.Second), To: ledger.Sent, Now: check}
		}},
		{"read without a next check", ledger.Unknown, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Unknown, To: ledger.Sent, Now: check}
		}},
		{"not a valid transition", ledger.Sent, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Sent, ReadNextCheckAt: it.NextCheckAt, To: ledger.Failed, Now: check}
		}},
		{"a final state kept", ledger.Failed, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Failed, To: ledger.Failed, Now: check}
		}},
		{"nothing leaves expired", ledger.Expired, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Expired, To: ledger.Sent, Now: check}
		}},
		{"lease held", ledger.Recorded, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Recorded, ReadNextCheckAt: it.NextCheckAt, To: ledger.Sent, Now: at(5 * time.Second)}
		}},
		{"lease held, a stay", ledger.Recorded, func(it *ledger.Item) ledger.Reconciliation {
			return ledger.Reconciliation{From: ledger.Recorded, ReadNextCheckAt: it.NextCheckAt, To: ledger.Recorded, NextCheckAt: at(time.Hour), Now: at(leaseTTL)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			toState(t, s, billno, tc.state)
			before := get(t, s, billno)
			wantErr(t, "Reconcile", s.Reconcile(t.Context(), key(billno), tc.r(before)), ledger.ErrPrecondition)
			unchanged(t, s, billno, before)
		})
	}

	t.Run("no such item", func(t *testing.T) {
		s := newStore(t)
		r := ledger.Reconciliation{From: ledger.Unknown, To: ledger.Sent, Now: check}
		wantErr(t, "Reconcile", s.Reconcile(t.Context(), key(billno), r), ledger.ErrPrecondition)
		unchanged(t, s, billno, nil)
	})

	t.Run("not a reconciliation", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Unknown)
		before := get(t, s, billno)
		for _, r := range []ledger.Reconciliation{
			{From: ledger.Unknown, ReadNextCheckAt: before.NextCheckAt, To: ledger.Failed, NextCheckAt: at(2 * time.Hour), Now: check}, // final, yet checked again
			{From: ledger.Unknown, ReadNextCheckAt: before.NextCheckAt, To: ledger.Unknown, NextCheckAt: at(2 * time.Hour)},            // no now
			{From: ledger.Unknown, ReadNextCheckAt: before.NextCheckAt, NextCheckAt: at(2 * time.Hour), Now: check},                    // no state
			{From: ledger.Unknown, ReadNextCheckAt: before.NextCheckAt, To: ledger.Refunded, RefundAmount: -1, Now: check},
		} {
			err := s.Reconcile(t.Context(), key(billno), r)
			if err == nil || errors.Is(err, ledger.ErrPrecondition) || errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrExists) {
				t.Errorf("Reconcile %+v = %v, want a plain error", r, err)
			}
		}
		unchanged(t, s, billno, before)
	})

	t.Run("a move frees an ended lease; a late settle cannot undo it", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		it := get(t, s, billno)
		reconcile(t, s, billno, ledger.Reconciliation{From: ledger.Recorded, ReadNextCheckAt: it.NextCheckAt, To: ledger.Sent,
			Status: "SENT", NextCheckAt: at(2 * time.Hour), Now: at(leaseTTL + time.Second)})
		before := get(t, s, billno)
		if before.LeaseOwner != "" || !before.LeaseUntil.IsZero() {
			t.Errorf("the ended lease was kept by the move: %q until %v", before.LeaseOwner, before.LeaseUntil)
		}
		late := ledger.Settlement{Owner: owner1, State: ledger.Unknown, ErrCode: "SYSTEMERROR", Now: at(leaseTTL + 2*time.Second)}
		wantErr(t, "late Settle", s.Settle(t.Context(), key(billno), late), ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
	})

	t.Run("a stay keeps an ended lease; a late settle stores its outcome", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		it := get(t, s, billno)
		reconcile(t, s, billno, ledger.Reconciliation{From: ledger.Recorded, ReadNextCheckAt: it.NextCheckAt, To: ledger.Recorded,
			Status: "NOT_FOUND", NextCheckAt: at(time.Hour), Now: at(leaseTTL + time.Second)})
		if got := get(t, s, billno); got.LeaseOwner != owner1 {
			t.Errorf("the stay took the ended lease: %q", got.LeaseOwner)
		}
		settle(t, s, billno, ledger.Settlement{Owner: owner1, State: ledger.Sent, SendListID: "1000041701201411243038183950000", Now: at(leaseTTL + 2*time.Second)})
		if got := get(t, s, billno); got.State != ledger.Sent {
			t.Errorf("state %s after the late Settle, want SENT", got.State)
		}
	})
}

func testConcurrentReconcile(t *testing.T, newStore func(*testing.T) ledger.Store) {
	for _, to := range []ledger.State{ledger.Sent, ledger.Unknown} {
		t.Run("to "+string(to), func(t *testing.T) {
			billno := "RACERECONCILE" + string(to[0])
			s := newStore(t)
			toState(t, s, billno, ledger.Unknown)
			read := get(t, s, billno)
			// Every reconciler read the same item; each would write its own
			// next check.
			errs := race(func(i int) error {
				return s.Reconcile(t.Context(), key(billno), ledger.Reconciliation{From: ledger.Unknown, ReadNextCheckAt: read.NextCheckAt, To: to,
					Status: fmt.Sprintf("READ%d", i), NextCheckAt: at(time.Hour + time.Duration(i)*time.Second), Now: at(time.Hour)})
			})
			won := winner(t, errs, ledger.ErrPrecondition)
			got := get(t, s, billno)
			if got.State != to || got.Status != fmt.Sprintf("READ%d", won) || !got.NextCheckAt.Equal(msUTC(at(time.Hour+time.Duration(won)*time.Second))) {
				t.Errorf("stored %s %q next %v, want reconciler %d's", got.State, got.Status, got.NextCheckAt, won)
			}
		})
	}
}
