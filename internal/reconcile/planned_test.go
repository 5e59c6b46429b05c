package reconcile_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
)

// plan records billno as a campaign's planned row: no lease, never sent.
func plan(t testing.TB, s ledger.Store, billno string, row int) {
	t.Helper()
	it := &ledger.Item{MchID: mchID, MchBillno: billno, API: "sendredpack", Fields: fields(billno), RecordedAt: base,
		Source: "campaign", CampaignID: "spring-2026", CampaignRow: row}
	if err := s.Create(context.Background(), it); err != nil {
		t.Fatal(err)
	}
}

// dueToo is a ledger whose Due also returns its planned items, as no store
// does: the reconciler must leave them even then.
type dueToo struct {
	ledger.Store
	planned []ledger.Key
}

func (d dueToo) Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*ledger.Item, error) {
	items, err := d.Store.Due(ctx, mchID, now, limit)
	for _, k := range d.planned {
		it, err := d.Store.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, err
}

// TestPlannedNeverChecked: a planned item (Attempts 0) was never sent, so
// the reconciler neither queries it nor sends it, by Check or by a pass,
// whatever the clock; Check shows it as not sent and leaves it. A sent
// item beside it is checked as usual.
func TestPlannedNeverChecked(t *testing.T) {
	const planned, sentBillno = "PLANNED0001", "SENT0001"
	for _, tc := range []struct {
		name string
		// run checks with r on store and returns the Summary.
		run func(t *testing.T, r *reconcile.Reconciler, store ledger.Store) reconcile.Summary
		// sentChecked: the sent item beside it is queried.
		sentChecked bool
	}{
		{"Check", func(t *testing.T, r *reconcile.Reconciler, _ ledger.Store) reconcile.Summary {
			s, err := r.Check(t.Context(), key(planned))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if s.Item == nil || s.Item.State != string(ledger.Recorded) || s.Item.Attempts != 0 || s.Item.MchBillno != planned {
				t.Errorf("Check's item = %+v, want %s RECORDED with 0 attempts (never sent)", s.Item, planned)
			}
			return s
		}, false},
		{"RunOnce", func(t *testing.T, r *reconcile.Reconciler, _ ledger.Store) reconcile.Summary {
			return r.RunOnce(t.Context())
		}, true},
		{"RunOnce, a Due that returns it", func(t *testing.T, r *reconcile.Reconciler, store ledger.Store) reconcile.Summary {
			r.Ledger = dueToo{Store: store, planned: []ledger.Key{key(planned)}}
			return r.RunOnce(t.Context())
		}, true},
	} {
		for _, late := range []time.Duration{time.Hour, 80 * time.Hour} {
			t.Run(tc.name+" "+late.String(), func(t *testing.T) {
				store := ledger.NewMemory()
				plan(t, store, planned, 1)
				create(t, store, sentBillno, base)
				settle(t, store, sentBillno, base, ledger.Unknown, "")
				before := get(t, store, planned)
				w := newWeChat()
				r, _ := newReconciler(store, w, newClock(base.Add(late)))

				s := tc.run(t, r, store)

				if n := w.queriesOf(planned); n != 0 {
					t.Errorf("%d gethbinfo queries of the planned item, want none", n)
				}
				if sends := w.sendsOf(planned); len(sends) != 0 {
					t.Errorf("the planned item was sent %d times, want never", len(sends))
				}
				if after := get(t, store, planned); !reflect.DeepEqual(after, before) {
					t.Errorf("the planned item changed:\n\tbefore %+v\n\tafter  %+v", before, after)
				}
				if got := w.queriesOf(sentBillno) > 0; got != tc.sentChecked {
					t.Errorf("the sent item queried: %v, want %v", got, tc.sentChecked)
				}
				if s.Errors != 0 || s.LostRaces != 0 || s.Resent != 0 {
					t.Errorf("summary %+v", s)
				}
			})
		}
	}
}

// TestPlannedCheckedOnceSent: once its first send has taken it (Acquire)
// and settled, a planned item is like any other: Check queries it.
func TestPlannedCheckedOnceSent(t *testing.T) {
	const billno = "PLANNED0002"
	store := ledger.NewMemory()
	plan(t, store, billno, 2)
	l := ledger.Lease{Hash: ledger.Hash("sendredpack", fields(billno)), Owner: "campaign-send", Until: base.Add(leaseTTL), Now: base}
	if _, err := store.Acquire(t.Context(), key(billno), l); err != nil {
		t.Fatal(err)
	}
	if err := store.Settle(t.Context(), key(billno), ledger.Settlement{Owner: l.Owner, State: ledger.Unknown, Now: base.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	w := newWeChat()
	w.record(billno, "SENT", "")
	r, _ := newReconciler(store, w, newClock(base.Add(time.Hour)))
	s, err := r.Check(t.Context(), key(billno))
	if err != nil {
		t.Fatal(err)
	}
	if w.queriesOf(billno) != 1 || s.Item == nil || s.Item.State != string(ledger.Sent) || s.Item.Attempts != 1 {
		t.Errorf("Check after the first send: %d queries, item %+v; want 1 query, SENT with 1 attempt", w.queriesOf(billno), s.Item)
	}
}
