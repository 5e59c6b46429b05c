// Package campaigntest holds the contract suites of campaign.Store and
// campaign.Window, which every implementation passes (the memory ones and
// DynamoDB's, on moto_server), and a helper making a campaign table on
// moto_server.
package campaigntest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
)

// t0 is the suites' clock: a fixed time, off the millisecond, so that the
// stores' rounding to the millisecond is seen.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589_793_238, time.FixedZone("CST", 8*3600))

// Full returns a campaign with id and every field set (no field left at
// its zero value, Version aside), so that a round trip through a store
// covers every field.
func Full(id string) *campaign.Campaign {
	return &campaign.Campaign{
		ID:     id,
		MchID:  "1900000109",
		State:  campaign.Paused,
		Reason: "NOTENOUGH: 余额不足",
		Settings: campaign.Settings{
			CampaignID: id,
			WxAppID:    "wx8888888888888888",
			SendName:   "天虹百货",
			ActName:    "新年红包",
			Wishing:    "恭喜发财",
			Remark:     "新年快乐",
			ClientIP:   "192.168.0.1",
			SceneID:    "PRODUCT_1",
			Rate:       12.5,
		},
		Source:       "s3://bucket/campaigns/" + id + ".csv",
		ETag:         `"9b2cf535f27731c974343645a3985328"`,
		Identity:     "3f7a5c0e1d2b4a6980c7e5f3a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e",
		RowsIdentity: "8d2e0a7c4b1f3e5d6c9a8b7e0f1d2c3b4a5e6f708192a3b4c5d6e7f8091a2b3c",
		Rows:         2500,
		Amount:       250_000,
		Planned:      2500,
		Cursor:       1200,
		Sent:         1250,
		Outcomes:     map[string]int{"success": 1180, "failed": 12, "unknown": 8, "NOTENOUGH": 50},
		Rate:         0.75,
		RunnerOwner:  "runner-1",
		RunnerUntil:  t0.Add(5 * time.Minute),
		CreatedAt:    t0,
		StartedAt:    t0.Add(time.Second),
		FinishedAt:   t0.Add(time.Hour),
		UpdatedAt:    t0.Add(2 * time.Hour),
		ReportDue:    true,
		ReportedAt:   t0.Add(90 * time.Minute),
		Version:      7, // Create ignores it
	}
}

// stored is c as a store returns it, a copy: times in UTC to the
// millisecond, an empty Outcomes nil.
func stored(c *campaign.Campaign, version int64) *campaign.Campaign {
	cp := *c
	cp.Outcomes = nil
	if len(c.Outcomes) > 0 {
		cp.Outcomes = maps.Clone(c.Outcomes)
	}
	for _, t := range []*time.Time{&cp.RunnerUntil, &cp.CreatedAt, &cp.StartedAt, &cp.FinishedAt, &cp.UpdatedAt, &cp.ReportedAt} {
		if !t.IsZero() {
			*t = time.UnixMilli(t.UnixMilli()).UTC()
		}
	}
	cp.Version = version
	return &cp
}

// zeroFields lists the fields of v (a struct) left at their zero value,
// nested structs other than time.Time included.
func zeroFields(prefix string, v reflect.Value) []string {
	var out []string
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Time]() {
			out = append(out, zeroFields(name+".", f)...)
		} else if f.IsZero() {
			out = append(out, name)
		}
	}
	return out
}

// equal fails t unless got is want.
func equal(t *testing.T, what string, got, want *campaign.Campaign) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// Run runs the Store contract on stores from newStore, a new empty one
// for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) campaign.Store) {
	ctx := context.Background()

	t.Run("FixtureIsFull", func(t *testing.T) {
		// A field added to Campaign or Settings must be set in Full, so
		// that RoundTrip checks that every store keeps it.
		if z := zeroFields("", reflect.ValueOf(*Full("x"))); !reflect.DeepEqual(z, []string(nil)) {
			t.Fatalf("Full leaves %v zero: set them", z)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		tests := []struct {
			name string
			c    *campaign.Campaign
		}{
			{"every field", Full("full")},
			{"only required", &campaign.Campaign{ID: "bare", MchID: "1900000109", State: campaign.Planning, CreatedAt: t0}},
			{"zero everything but id", &campaign.Campaign{ID: "Z-0_9"}},
			{"empty outcomes", &campaign.Campaign{ID: "empty-outcomes", State: campaign.Running, Outcomes: map[string]int{}}},
			{"64-character id", &campaign.Campaign{ID: "a123456789b123456789c123456789d123456789e123456789f123456789ghij", State: campaign.Done}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				want := stored(tt.c, 1)
				in := tt.c
				if err := s.Create(ctx, in); err != nil {
					t.Fatalf("Create: %v", err)
				}
				if in.Version != 1 {
					t.Errorf("Create set Version %d, want 1", in.Version)
				}
				got, err := s.Get(ctx, in.ID)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				equal(t, "Get after Create", got, want)

				// The store keeps its own copy: changing what was passed
				// in or got out changes nothing stored.
				in.Reason, in.Settings.Wishing = "changed in", "changed in"
				got.Reason, got.Settings.Wishing = "changed out", "changed out"
				if in.Outcomes != nil {
					in.Outcomes["success"]++
				}
				if got.Outcomes != nil {
					got.Outcomes["failed"]++
				}
				again, err := s.Get(ctx, in.ID)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				equal(t, "Get after changing copies", again, want)
			})
		}
	})

	t.Run("CreateExists", func(t *testing.T) {
		s := newStore(t)
		first := Full("dup")
		if err := s.Create(ctx, first); err != nil {
			t.Fatalf("Create: %v", err)
		}
		second := &campaign.Campaign{ID: "dup", State: campaign.Planning}
		if err := s.Create(ctx, second); !errors.Is(err, campaign.ErrExists) {
			t.Fatalf("second Create: %v, want ErrExists", err)
		}
		if second.Version != 0 {
			t.Errorf("failed Create set Version %d", second.Version)
		}
		got, err := s.Get(ctx, "dup")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		equal(t, "Get after second Create", got, stored(Full("dup"), 1))
	})

	t.Run("InvalidID", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"", "pace#1900000109", "a b", "é", "a/b", "a123456789b123456789c123456789d123456789e123456789f123456789ghijk"} {
			if err := s.Create(ctx, &campaign.Campaign{ID: id}); err == nil {
				t.Errorf("Create %q: nil error", id)
			}
			if _, err := s.Get(ctx, id); !errors.Is(err, campaign.ErrNotFound) {
				t.Errorf("Get %q: %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, &campaign.Campaign{ID: "other"}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if c, err := s.Get(ctx, "absent"); !errors.Is(err, campaign.ErrNotFound) {
			t.Fatalf("Get absent: %+v, %v, want ErrNotFound", c, err)
		}
	})

	t.Run("PutVersions", func(t *testing.T) {
		s := newStore(t)
		c := Full("put")
		if err := s.Create(ctx, c); err != nil {
			t.Fatalf("Create: %v", err)
		}
		stale, err := s.Get(ctx, "put")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		// Put replaces every field: optional ones cleared are cleared.
		c.State, c.Reason, c.ReportDue, c.ETag = campaign.Running, "", false, ""
		c.RunnerUntil, c.Cursor = time.Time{}, 1300
		for want := int64(2); want <= 3; want++ {
			if err := s.Put(ctx, c); err != nil {
				t.Fatalf("Put at %d: %v", want-1, err)
			}
			if c.Version != want {
				t.Fatalf("Put set Version %d, want %d", c.Version, want)
			}
		}
		got, err := s.Get(ctx, "put")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		equal(t, "Get after Puts", got, stored(c, 3))

		// A write over a version since replaced is refused, and changes
		// neither the store nor the campaign passed.
		stale.State = campaign.Cancelled
		if err := s.Put(ctx, stale); !errors.Is(err, campaign.ErrVersion) {
			t.Fatalf("stale Put: %v, want ErrVersion", err)
		}
		if stale.Version != 1 {
			t.Errorf("stale Put set Version %d, want 1 kept", stale.Version)
		}
		got, err = s.Get(ctx, "put")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		equal(t, "Get after stale Put", got, stored(c, 3))

		for _, v := range []int64{0, 4, -1} {
			ahead := *c
			ahead.Version = v
			if err := s.Put(ctx, &ahead); !errors.Is(err, campaign.ErrVersion) {
				t.Errorf("Put at version %d (stored 3): %v, want ErrVersion", v, err)
			}
		}
	})

	t.Run("PutNotCreated", func(t *testing.T) {
		s := newStore(t)
		for _, v := range []int64{0, 1} {
			c := &campaign.Campaign{ID: "never", State: campaign.Running, Version: v}
			if err := s.Put(ctx, c); !errors.Is(err, campaign.ErrVersion) {
				t.Errorf("Put at version %d of a campaign never created: %v, want ErrVersion", v, err)
			}
		}
		if _, err := s.Get(ctx, "never"); !errors.Is(err, campaign.ErrNotFound) {
			t.Fatalf("Get after refused Puts: %v, want ErrNotFound", err)
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		// Runners that read the same version race to write it: exactly
		// one wins, the others learn someone wrote since.
		const writers = 20
		s := newStore(t)
		if err := s.Create(ctx, &campaign.Campaign{ID: "race", State: campaign.Running, CreatedAt: t0}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		read, err := s.Get(ctx, "race")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			others  []error
		)
		for i := range writers {
			c := *read
			c.RunnerOwner = fmt.Sprintf("runner-%d", i)
			wg.Go(func() {
				err := s.Put(ctx, &c)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, c.RunnerOwner)
				case !errors.Is(err, campaign.ErrVersion):
					others = append(others, err)
				}
			})
		}
		wg.Wait()
		if len(others) > 0 {
			t.Fatalf("Puts failed otherwise than ErrVersion: %v", others)
		}
		if len(winners) != 1 {
			t.Fatalf("%d Puts won (%v), want exactly 1", len(winners), winners)
		}
		got, err := s.Get(ctx, "race")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.RunnerOwner != winners[0] || got.Version != 2 {
			t.Fatalf("stored %s at version %d, want the winner %s at 2", got.RunnerOwner, got.Version, winners[0])
		}
	})

	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		if got, err := s.List(ctx); err != nil || len(got) != 0 {
			t.Fatalf("List of an empty store: %v, %v", got, err)
		}
		all := []struct {
			id     string
			state  campaign.State
			due    bool
			at     time.Duration // CreatedAt after t0
			listed bool
		}{
			{"planning", campaign.Planning, false, 3 * time.Second, true},
			{"running-b", campaign.Running, false, time.Second, true},
			{"running-a", campaign.Running, false, time.Second, true}, // same CreatedAt: by id
			{"paused", campaign.Paused, false, 0, true},
			{"paused-due", campaign.Paused, true, 4 * time.Second, true},
			{"done", campaign.Done, false, 0, false},
			{"done-due", campaign.Done, true, 2 * time.Second, true},
			{"cancelled", campaign.Cancelled, false, 0, false},
			{"cancelled-due", campaign.Cancelled, true, 5 * time.Second, true},
			{"refused", campaign.Refused, false, 0, false},
			{"running-due", campaign.Running, true, 0, true},
		}
		for _, c := range all {
			if err := s.Create(ctx, &campaign.Campaign{ID: c.id, State: c.state, ReportDue: c.due, CreatedAt: t0.Add(c.at)}); err != nil {
				t.Fatalf("Create %s: %v", c.id, err)
			}
		}
		want := []string{"paused", "running-due", "running-a", "running-b", "done-due", "planning", "paused-due", "cancelled-due"}
		if got := listIDs(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("List: %v, want %v", got, want)
		}

		// A Put that ends the work takes the campaign off the list; one
		// that gives it work puts it back.
		for _, p := range []struct {
			id     string
			change func(*campaign.Campaign)
		}{
			{"running-a", func(c *campaign.Campaign) { c.State = campaign.Done }},
			{"done-due", func(c *campaign.Campaign) { c.ReportDue = false }},
			{"paused", func(c *campaign.Campaign) { c.State = campaign.Running }},
		} {
			c, err := s.Get(ctx, p.id)
			if err != nil {
				t.Fatalf("Get %s: %v", p.id, err)
			}
			p.change(c)
			if err := s.Put(ctx, c); err != nil {
				t.Fatalf("Put %s: %v", p.id, err)
			}
		}
		want = []string{"paused", "running-due", "running-b", "planning", "paused-due", "cancelled-due"}
		if got := listIDs(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("List after Puts: %v, want %v", got, want)
		}

		// Listed campaigns are whole, and copies.
		got, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got[0].State = campaign.Cancelled
		c, err := s.Get(ctx, got[0].ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if c.State != campaign.Running || c.Version != 2 {
			t.Fatalf("Get %s after changing its listed copy: %s at version %d, want RUNNING at 2", c.ID, c.State, c.Version)
		}
	})

	t.Run("ListFull", func(t *testing.T) {
		s := newStore(t)
		c := Full("full")
		c.State = campaign.Running
		if err := s.Create(ctx, c); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := s.List(ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("List: %v, %v", got, err)
		}
		equal(t, "List", got[0], stored(c, 1))
	})
}

// listIDs is the ids List returns, in its order.
func listIDs(t *testing.T, s campaign.Store) []string {
	t.Helper()
	cs, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}
