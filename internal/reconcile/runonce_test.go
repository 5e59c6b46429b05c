package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// unknownItems records n UNKNOWN items, BATCH0000 first due, each a
// second after the one before, all paid at WeChat.
func unknownItems(t *testing.T, s ledger.Store, w *wechat, n int) []string {
	t.Helper()
	var b []string
	for i := range n {
		billno := fmt.Sprintf("BATCH%04d", i)
		first := base.Add(time.Duration(i) * time.Second)
		create(t, s, billno, first)
		settle(t, s, billno, first, ledger.Unknown, "")
		w.record(billno, wxpay.StatusSent, "")
		b = append(b, billno)
	}
	return b
}

// TestRunOnceBounds: a pass takes the earliest due items a batch at a
// time, stops at its query budget, and the next pass goes on from there.
func TestRunOnceBounds(t *testing.T) {
	store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
	billnos := unknownItems(t, store, w, 50)
	c.Set(at(time.Hour))
	r, _ := newReconciler(store, w, c)
	r.Budget, r.Batch, r.Workers = 30, 7, 3
	counting := &countingDue{Store: store}
	r.Ledger = counting

	s := r.RunOnce(t.Context())
	if s.Checked != 30 || s.Settled != 30 || s.Stopped != reconcile.StoppedBudget || w.totalQueries() != 30 {
		t.Errorf("first pass: %+v, %d queries; want 30 checked, stopped on the budget", s, w.totalQueries())
	}
	if counting.limits[0] != 7 || counting.limits[len(counting.limits)-1] != 2 {
		t.Errorf("Due limits %v: want batches of 7, the last the budget's 2", counting.limits)
	}
	for i, b := range billnos {
		if got, want := get(t, store, b).State == ledger.Sent, i < 30; got != want {
			t.Errorf("%s: SENT %v, want %v (the earliest due first)", b, got, want)
		}
	}
	s = r.RunOnce(t.Context())
	if s.Checked != 20 || s.Stopped != "" || s.Transitions["UNKNOWN->SENT"] != 20 {
		t.Errorf("second pass: %+v, want the other 20 and nothing left", s)
	}
	s = r.RunOnce(t.Context())
	if s.Checked != 0 || s.Stopped != "" || w.totalQueries() != 50 {
		t.Errorf("third pass: %+v, %d queries in all; want nothing due", s, w.totalQueries())
	}
}

// countingDue records the limits Due is called with.
type countingDue struct {
	ledger.Store
	limits []int
}

func (c *countingDue) Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*ledger.Item, error) {
	c.limits = append(c.limits, limit)
	return c.Store.Due(ctx, mchID, now, limit)
}

// failingWrites is a ledger whose Reconcile fails.
type failingWrites struct{ ledger.Store }

func (failingWrites) Reconcile(context.Context, ledger.Key, ledger.Reconciliation) error {
	return errors.New("ledger: reconcile: throttled")
}

// failingDue is a ledger whose Due fails.
type failingDue struct{ ledger.Store }

func (failingDue) Due(context.Context, string, time.Time, int) ([]*ledger.Item, error) {
	return nil, errors.New("ledger: due: unreachable")
}

// TestRunOnceStops: a pass ends, counted and said, when the ledger, the
// credentials or the deadline fail it; an item whose write failed is
// queried once a pass, not again and again.
func TestRunOnceStops(t *testing.T) {
	noCreds := &credstore.ConfigError{Field: "apiv2_key", Reason: "is missing"}
	for _, tc := range []struct {
		name    string
		store   func(ledger.Store) ledger.Store
		w       func(*wechat)
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		queries int
		stopped string
		errors  int
	}{
		{name: "writes fail", store: func(s ledger.Store) ledger.Store { return failingWrites{s} }, queries: 5, errors: 5},
		{name: "due items unreadable", store: func(s ledger.Store) ledger.Store { return failingDue{s} }, stopped: reconcile.StoppedLedger, errors: 1},
		{name: "no credentials", w: func(w *wechat) { w.mchErr = noCreds }, stopped: reconcile.StoppedCredentials, errors: 1},
		{name: "credentials refused mid-pass", w: func(w *wechat) { w.queryErr["BATCH0000"] = noCreds }, queries: 1, stopped: reconcile.StoppedCredentials, errors: 1},
		{name: "deadline", ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, reconcile.MinTimeLeft-time.Second)
		}, stopped: reconcile.StoppedDeadline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
			billnos := unknownItems(t, store, w, 12)
			c.Set(at(time.Hour))
			r, _ := newReconciler(store, w, c)
			r.Batch, r.Workers = 5, 1
			if tc.store != nil {
				r.Ledger = tc.store(store)
			}
			if tc.w != nil {
				tc.w(w)
			}
			ctx := t.Context()
			if tc.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tc.ctx(ctx)
				defer cancel()
			}
			s := r.RunOnce(ctx)
			if w.totalQueries() != tc.queries || s.Stopped != tc.stopped || s.Errors != tc.errors || s.Settled != 0 {
				t.Errorf("summary %+v, %d queries; want %d queries, stopped %q, %d errors", s, w.totalQueries(), tc.queries, tc.stopped, tc.errors)
			}
			if tc.stopped != "" && tc.stopped != reconcile.StoppedDeadline && s.StopError == "" {
				t.Errorf("stopped on %s without saying why", s.Stopped)
			}
			for _, b := range billnos {
				if w.queriesOf(b) > 1 {
					t.Errorf("%s queried %d times in one pass", b, w.queriesOf(b))
				}
				if st := get(t, store, b).State; st != ledger.Unknown {
					t.Errorf("%s: %s", b, st)
				}
			}
		})
	}
}

// TestCheckNotRecorded: a billno the ledger does not have is the ledger's
// ErrNotFound, and WeChat is not asked.
func TestCheckNotRecorded(t *testing.T) {
	store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
	r, _ := newReconciler(store, w, c)
	if _, err := r.Check(t.Context(), key("NOSUCH0001")); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Check = %v, want ErrNotFound", err)
	}
	if w.totalQueries() != 0 {
		t.Errorf("%d queries", w.totalQueries())
	}
}
