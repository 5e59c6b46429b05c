package campaigntest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
)

// RunWindow runs the Window contract on windows from newWindow, a new one
// with nothing counted for each subtest. The clock is the one passed: no
// test waits for a second to pass.
func RunWindow(t *testing.T, newWindow func(t *testing.T) campaign.Window) {
	ctx := context.Background()
	const mch, other = "1900000109", "1900000110"
	// sec is a second of the clock, 250 ms into it.
	sec := time.Unix(1_700_000_000, 250_000_000)

	take := func(t *testing.T, w campaign.Window, mchID string, now time.Time, max int) bool {
		t.Helper()
		ok, err := w.Take(ctx, mchID, now, max)
		if err != nil {
			t.Fatalf("Take %s at %s max %d: %v", mchID, now.Format(time.StampMilli), max, err)
		}
		return ok
	}
	count := func(t *testing.T, w campaign.Window, mchID string, now time.Time) {
		t.Helper()
		if err := w.Count(ctx, mchID, now); err != nil {
			t.Fatalf("Count %s at %s: %v", mchID, now.Format(time.StampMilli), err)
		}
	}
	// counted checks that mchID's second of now holds n sends, as Takes
	// see it: one with max n is refused, one with max n+1 admitted (and
	// counted).
	counted := func(t *testing.T, w campaign.Window, mchID string, now time.Time, n int) {
		t.Helper()
		if take(t, w, mchID, now, n) {
			t.Fatalf("Take %s max %d admitted: fewer than %d counted", mchID, n, n)
		}
		if !take(t, w, mchID, now, n+1) {
			t.Fatalf("Take %s max %d refused: more than %d counted", mchID, n+1, n)
		}
	}

	t.Run("MaxPerSecond", func(t *testing.T) {
		for _, max := range []int{1, 3, 10} {
			w := newWindow(t)
			for i := range max {
				// Anywhere in the second: the count is per second of
				// the clock.
				now := sec.Add(time.Duration(i) * 70 * time.Millisecond)
				if !take(t, w, mch, now, max) {
					t.Fatalf("max %d: Take %d refused", max, i+1)
				}
			}
			if take(t, w, mch, sec.Add(749*time.Millisecond), max) {
				t.Fatalf("max %d: Take %d admitted", max, max+1)
			}
			// A larger max admits more in the same second.
			if !take(t, w, mch, sec, max+1) {
				t.Fatalf("max %d: Take with max %d refused", max, max+1)
			}
		}
	})

	t.Run("NoRoom", func(t *testing.T) {
		w := newWindow(t)
		for _, max := range []int{0, -1} {
			if take(t, w, mch, sec, max) {
				t.Fatalf("Take with max %d admitted", max)
			}
		}
		// Nothing was counted by them.
		counted(t, w, mch, sec, 0)
	})

	t.Run("ConcurrentTakes", func(t *testing.T) {
		const takers, max = 50, 10
		w := newWindow(t)
		var (
			wg       sync.WaitGroup
			admitted atomic.Int64
			errs     = make(chan error, takers)
		)
		for range takers {
			wg.Go(func() {
				ok, err := w.Take(ctx, mch, sec, max)
				if err != nil {
					errs <- err
				}
				if ok {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Take: %v", err)
		}
		if got := admitted.Load(); got != max {
			t.Fatalf("%d of %d concurrent Takes with max %d admitted, want %d", got, takers, max, max)
		}
		counted(t, w, mch, sec, max)
	})

	t.Run("CountAlwaysCounts", func(t *testing.T) {
		w := newWindow(t)
		for range 3 {
			count(t, w, mch, sec)
		}
		if take(t, w, mch, sec, 3) {
			t.Fatal("Take with max 3 admitted after 3 Counts")
		}
		if !take(t, w, mch, sec, 4) { // 4 counted
			t.Fatal("Take with max 4 refused after 3 Counts")
		}
		// Past the max too: API sends are never refused.
		for range 3 {
			count(t, w, mch, sec)
		}
		counted(t, w, mch, sec, 7)
	})

	t.Run("ConcurrentCounts", func(t *testing.T) {
		// Counts racing to start a new second: none is lost.
		const counters = 20
		w := newWindow(t)
		count(t, w, mch, sec.Add(-time.Second))
		var wg sync.WaitGroup
		errs := make(chan error, counters)
		for range counters {
			wg.Go(func() {
				if err := w.Count(ctx, mch, sec); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Count: %v", err)
		}
		counted(t, w, mch, sec, counters)
	})

	t.Run("ConcurrentCountsAndTakes", func(t *testing.T) {
		const counters, takers, max = 20, 30, 25
		w := newWindow(t)
		var (
			wg       sync.WaitGroup
			admitted atomic.Int64
			errs     = make(chan error, counters+takers)
		)
		for i := range counters + takers {
			wg.Go(func() {
				if i < counters {
					if err := w.Count(ctx, mch, sec); err != nil {
						errs <- err
					}
					return
				}
				ok, err := w.Take(ctx, mch, sec, max)
				if err != nil {
					errs <- err
				}
				if ok {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Count or Take: %v", err)
		}
		// Counts came in any order with the Takes: each Take saw fewer
		// than max, the last one counted at most max-1 before it.
		n := admitted.Load()
		if n > max || n < max-counters {
			t.Fatalf("%d Takes admitted with max %d and %d Counts, want %d to %d", n, max, counters, max-counters, max)
		}
		counted(t, w, mch, sec, counters+int(n))
	})

	t.Run("NewSecondResets", func(t *testing.T) {
		const max = 3
		w := newWindow(t)
		for range max {
			take(t, w, mch, sec, max)
		}
		count(t, w, mch, sec)
		next := sec.Add(time.Second).Truncate(time.Second) // its first instant
		if !take(t, w, mch, next, max) {
			t.Fatal("Take in the next second refused")
		}
		counted(t, w, mch, next, 1)
		// A Count starts a new second too.
		later := next.Add(5 * time.Second)
		count(t, w, mch, later)
		counted(t, w, mch, later, 1)
	})

	t.Run("OlderSecond", func(t *testing.T) {
		// A late caller (its clock behind, or slow) names a second older
		// than the one stored: a Take is refused, however empty the
		// stored second; a Count adds to the stored second.
		w := newWindow(t)
		next := sec.Add(time.Second)
		if !take(t, w, mch, next, 10) {
			t.Fatal("Take refused in an empty window")
		}
		if take(t, w, mch, sec, 10) {
			t.Fatal("Take in an older second admitted")
		}
		count(t, w, mch, sec)
		counted(t, w, mch, next, 2)
	})

	t.Run("MerchantsIndependent", func(t *testing.T) {
		const max = 2
		w := newWindow(t)
		for range max {
			take(t, w, mch, sec, max)
		}
		count(t, w, mch, sec)
		for range max {
			if !take(t, w, other, sec, max) {
				t.Fatal("another merchant's Take refused")
			}
		}
		if take(t, w, other, sec, max) {
			t.Fatal("another merchant's Take admitted past max")
		}
		// The other merchant in a newer second leaves the first one's
		// second as it was.
		count(t, w, other, sec.Add(time.Second))
		counted(t, w, mch, sec, max+1)
	})
}
