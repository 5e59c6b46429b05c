package ledgertest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// The contract of a campaign's part of a store: planned items (Create
// without a lease), their first send (Acquire) and CampaignRows.

const campaignID = "spring-2026"

// newPlanned is a campaign's row as the campaign records it before any
// send: newItem without a lease, with its campaign and row.
func newPlanned(billno, campaign string, row int) *ledger.Item {
	it := newItem(billno)
	it.LeaseOwner, it.LeaseUntil = "", time.Time{}
	it.Source, it.Caller = "campaign", ""
	it.CampaignID, it.CampaignRow = campaign, row
	return it
}

// planned is the item Create should store for a planned in: never tried,
// never due.
func planned(in *ledger.Item) *ledger.Item {
	want := created(in)
	want.Attempts = 0
	want.FirstTriedAt, want.LastTriedAt, want.LeaseUntil, want.NextCheckAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return want
}

// createPlanned creates newPlanned(billno, campaign, row) and returns what
// it should store.
func createPlanned(t *testing.T, s ledger.Store, billno, campaign string, row int) *ledger.Item {
	t.Helper()
	it := newPlanned(billno, campaign, row)
	want := planned(it)
	if err := s.Create(t.Context(), it); err != nil {
		t.Fatalf("Create planned %s: %v", billno, err)
	}
	return want
}

// wantPlain checks that err is an error, and none of the sentinels: a
// request no store should see.
func wantPlain(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || errors.Is(err, ledger.ErrPrecondition) || errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrExists) {
		t.Errorf("%s = %v, want a plain error", what, err)
	}
}

// notDue checks that no item of the merchant is due, however late.
func notDue(t *testing.T, s ledger.Store) {
	t.Helper()
	due, err := s.Due(t.Context(), mchID, at(365*24*time.Hour), 100)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	if len(due) > 0 {
		t.Errorf("Due = %v, want none: a planned item was never sent", billnos(due))
	}
}

func testPlanned(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "PLANNED0001"
	hash := created(newItem(billno)).Hash

	t.Run("create", func(t *testing.T) {
		s := newStore(t)
		in := newPlanned(billno, campaignID, 1)
		want := planned(in)
		if err := s.Create(t.Context(), in); err != nil {
			t.Fatalf("Create: %v", err)
		}
		// Create tells its caller what it stored.
		same(t, "Create's item", in, want)
		same(t, "Get", get(t, s, billno), want)
		if want.EarlierUnknown() {
			t.Errorf("a planned item has an earlier send unknown")
		}
		notDue(t, s)
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			edit func(*ledger.Item)
		}{
			{"lease owner without until", func(it *ledger.Item) { it.LeaseOwner = owner1 }},
			{"lease until without owner", func(it *ledger.Item) { it.LeaseUntil = at(leaseTTL) }},
			{"row without campaign", func(it *ledger.Item) { it.CampaignID = "" }},
			{"negative row", func(it *ledger.Item) { it.CampaignRow = -1 }},
			{"no api", func(it *ledger.Item) { it.API = "" }},
			{"no recorded_at", func(it *ledger.Item) { it.RecordedAt = time.Time{} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				it := newPlanned(billno, campaignID, 1)
				tc.edit(it)
				wantPlain(t, "Create", s.Create(t.Context(), it))
				unchanged(t, s, billno, nil)
			})
		}
	})

	t.Run("exists", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			first  func(*testing.T, ledger.Store) *ledger.Item
			second *ledger.Item
		}{
			{"planned twice", func(t *testing.T, s ledger.Store) *ledger.Item { return createPlanned(t, s, billno, campaignID, 1) },
				newPlanned(billno, campaignID, 2)},
			{"a send over a planned item", func(t *testing.T, s ledger.Store) *ledger.Item { return createPlanned(t, s, billno, campaignID, 1) },
				newItem(billno)},
			{"planned over a sent item", func(t *testing.T, s ledger.Store) *ledger.Item { return create(t, s, billno) },
				newPlanned(billno, campaignID, 1)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				first := tc.first(t, s)
				wantErr(t, "second Create", s.Create(t.Context(), tc.second), ledger.ErrExists)
				unchanged(t, s, billno, first)
			})
		}
	})

	t.Run("acquire", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			now  time.Duration
		}{
			// Never tried: no MinRetryGap to wait after its recording.
			{"at once", 0},
			{"a day later", 24 * time.Hour},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				want := createPlanned(t, s, billno, campaignID, 1)
				l := ledger.Lease{Hash: hash, Owner: "invocation-2", Until: at(tc.now + leaseTTL), Now: at(tc.now)}
				got, err := s.Acquire(t.Context(), key(billno), l)
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				want.Attempts = 1
				want.FirstTriedAt, want.LastTriedAt, want.UpdatedAt = msUTC(l.Now), msUTC(l.Now), msUTC(l.Now)
				want.LeaseOwner, want.LeaseUntil = l.Owner, msUTC(l.Until)
				want.NextCheckAt = msUTC(l.Until.Add(ledger.CheckAfterLease))
				same(t, "Acquire", got, want)
				same(t, "Get after Acquire", get(t, s, billno), want)
				// The first send of the billno: nothing before it is unknown,
				// so WeChat's refusal of it is a failure.
				if got.EarlierUnknown() {
					t.Errorf("EarlierUnknown after the first Acquire (attempts %d, settled %d)", got.Attempts, got.Settled)
				}
				// The second send waits MinRetryGap after the first one.
				settle(t, s, billno, ledger.Settlement{Owner: l.Owner, State: ledger.Unknown, Now: at(tc.now + 500*time.Millisecond)})
				l2 := ledger.Lease{Hash: hash, Owner: "invocation-3", Until: at(tc.now + 2*leaseTTL), Now: at(tc.now + 999*time.Millisecond)}
				_, err = s.Acquire(t.Context(), key(billno), l2)
				wantErr(t, "Acquire 999 ms after the first try", err, ledger.ErrPrecondition)
				l2.Now = at(tc.now + time.Second)
				again, err := s.Acquire(t.Context(), key(billno), l2)
				if err != nil {
					t.Fatalf("Acquire 1 s after the first try: %v", err)
				}
				if !again.FirstTriedAt.Equal(msUTC(at(tc.now))) || again.Attempts != 2 {
					t.Errorf("second Acquire: first tried %v, attempts %d; want %v, 2", again.FirstTriedAt, again.Attempts, msUTC(at(tc.now)))
				}
			})
		}
	})

	t.Run("acquire another request", func(t *testing.T) {
		s := newStore(t)
		before := createPlanned(t, s, billno, campaignID, 1)
		other := newItem(billno)
		other.Fields["total_amount"] = "101"
		_, err := s.Acquire(t.Context(), key(billno), ledger.Lease{Hash: ledger.Hash(other.API, other.Fields), Owner: "invocation-2", Until: at(leaseTTL), Now: at(time.Second)})
		wantErr(t, "Acquire", err, ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
	})

	t.Run("settle needs a lease", func(t *testing.T) {
		s := newStore(t)
		before := createPlanned(t, s, billno, campaignID, 1)
		err := s.Settle(t.Context(), key(billno), ledger.Settlement{Owner: owner1, State: ledger.Sent, Now: at(time.Second)})
		wantErr(t, "Settle", err, ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
	})

	for _, st := range []ledger.State{ledger.Sent, ledger.Failed, ledger.Unknown} {
		t.Run("settled "+string(st), func(t *testing.T) {
			s := newStore(t)
			createPlanned(t, s, billno, campaignID, 1)
			l := ledger.Lease{Hash: hash, Owner: "invocation-2", Until: at(time.Hour + leaseTTL), Now: at(time.Hour)}
			if _, err := s.Acquire(t.Context(), key(billno), l); err != nil {
				t.Fatal(err)
			}
			now := at(time.Hour + time.Second)
			settle(t, s, billno, ledger.Settlement{Owner: l.Owner, State: st, Now: now})
			got := get(t, s, billno)
			if want := ledger.FirstCheck(st, now); got.State != st || got.Attempts != 1 || got.Settled != 1 || !got.NextCheckAt.Equal(want) {
				t.Errorf("after Settle: state %s, attempts %d, settled %d, next check %v; want %s, 1, 1, %v", got.State, got.Attempts, got.Settled, got.NextCheckAt, st, want)
			}
			due, err := s.Due(t.Context(), mchID, at(365*24*time.Hour), 100)
			if err != nil {
				t.Fatal(err)
			}
			// A final item is not checked again; the others are, as
			// FirstCheck says.
			var want []string
			if !st.Final() {
				want = []string{billno}
			}
			if got := billnos(due); !slices.Equal(got, want) {
				t.Errorf("Due = %v, want %v", got, want)
			}
		})
	}

	t.Run("concurrent first sends", func(t *testing.T) {
		s := newStore(t)
		createPlanned(t, s, billno, campaignID, 1)
		items := make([]*ledger.Item, concurrency)
		errs := race(func(i int) error {
			var err error
			items[i], err = s.Acquire(t.Context(), key(billno), ledger.Lease{
				Hash: hash, Owner: fmt.Sprintf("invocation-%d", i), Until: at(leaseTTL), Now: at(time.Second),
			})
			return err
		})
		won := winner(t, errs, ledger.ErrPrecondition)
		same(t, "Get after the race", get(t, s, billno), items[won])
		if items[won].Attempts != 1 {
			t.Errorf("attempts %d after one Acquire, want 1", items[won].Attempts)
		}
	})
}

func testCampaignRows(t *testing.T, newStore func(*testing.T) ledger.Store) {
	s := newStore(t)
	// Out of row order, among items the index leaves out.
	for _, r := range []struct {
		billno   string
		campaign string
		row      int
	}{
		{"ROW0003", campaignID, 3},
		{"ROW0001", campaignID, 1},
		{"ROW0005", campaignID, 5},
		{"ROW0002", campaignID, 2},
		{"AUTUMN0002", "autumn-2026", 2},
		{"AUTUMN0001", "autumn-2026", 1},
	} {
		createPlanned(t, s, r.billno, r.campaign, r.row)
	}
	// A campaign spans merchants: its index is by campaign.
	other := newPlanned("ROW0004", campaignID, 4)
	other.MchID = "1900000110"
	if err := s.Create(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	// A send naming the campaign, without a row; a send of no campaign.
	noRow := newItem("NOROW0001")
	noRow.CampaignID = campaignID
	if err := s.Create(t.Context(), noRow); err != nil {
		t.Fatal(err)
	}
	create(t, s, "NOCAMPAIGN0001")
	// A row sent and settled stays in the index: no write changes its
	// campaign or row.
	if _, err := s.Acquire(t.Context(), key("ROW0002"), ledger.Lease{Hash: created(newItem("ROW0002")).Hash, Owner: "invocation-2", Until: at(leaseTTL), Now: at(time.Second)}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, "ROW0002", ledger.Settlement{Owner: "invocation-2", State: ledger.Sent, SendListID: "1000041701201411243038183950000", Now: at(2 * time.Second)})

	for _, tc := range []struct {
		name         string
		campaign     string
		after, limit int
		want         []string
	}{
		{"all", campaignID, 0, 100, []string{"ROW0001", "ROW0002", "ROW0003", "ROW0004", "ROW0005"}},
		{"first page", campaignID, 0, 2, []string{"ROW0001", "ROW0002"}},
		{"next page", campaignID, 2, 2, []string{"ROW0003", "ROW0004"}},
		{"last page", campaignID, 4, 2, []string{"ROW0005"}},
		{"past the end", campaignID, 5, 2, nil},
		{"one", campaignID, 0, 1, []string{"ROW0001"}},
		{"negative after", campaignID, -1, 100, []string{"ROW0001", "ROW0002", "ROW0003", "ROW0004", "ROW0005"}},
		{"another campaign", "autumn-2026", 0, 100, []string{"AUTUMN0001", "AUTUMN0002"}},
		{"no such campaign", "winter-2026", 0, 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CampaignRows(t.Context(), tc.campaign, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("CampaignRows: %v", err)
			}
			if b := billnos(got); !slices.Equal(b, tc.want) {
				t.Fatalf("CampaignRows(%q, %d, %d) = %v, want %v", tc.campaign, tc.after, tc.limit, b, tc.want)
			}
			// The items as stored.
			for _, it := range got {
				stored, err := s.Get(t.Context(), it.Key())
				if err != nil {
					t.Fatal(err)
				}
				same(t, "CampaignRows' "+it.MchBillno, it, stored)
			}
		})
	}

	t.Run("sent row", func(t *testing.T) {
		got, err := s.CampaignRows(t.Context(), campaignID, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].State != ledger.Sent || got[0].CampaignRow != 2 || got[0].Attempts != 1 {
			t.Errorf("CampaignRows after row 1 = %+v, want ROW0002 Sent, row 2, 1 attempt", got)
		}
	})

	t.Run("arguments", func(t *testing.T) {
		for _, tc := range []struct {
			campaign string
			limit    int
		}{{"", 10}, {campaignID, 0}, {campaignID, -1}} {
			got, err := s.CampaignRows(t.Context(), tc.campaign, 0, tc.limit)
			wantPlain(t, fmt.Sprintf("CampaignRows(%q, 0, %d)", tc.campaign, tc.limit), err)
			if got != nil {
				t.Errorf("CampaignRows(%q, 0, %d) = %v with an error", tc.campaign, tc.limit, got)
			}
		}
	})
}
