package reconcile

import (
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// TestSchedule: every row is documented, the send path's rows are the
// ledger's, and the figures keep WeChat's rules.
func TestSchedule(t *testing.T) {
	if len(Schedule) != int(QueryWindow)+1 {
		t.Fatalf("%d rows, want one per Row", len(Schedule))
	}
	for r, row := range Schedule {
		if row.When == "" || row.Wait <= 0 || row.From == "" || row.Rule == "" {
			t.Errorf("row %d is not documented: %+v", r, row)
		}
		// Far above WeChat's 1 s between tries of a billno.
		if row.Wait < 60*wxpay.MinRetryInterval {
			t.Errorf("row %d: %v", r, row.Wait)
		}
	}
	for r, want := range map[Row]time.Duration{AfterLease: ledger.CheckAfterLease, AfterUnknown: ledger.CheckAfterUnknown, AfterSent: ledger.CheckAfterSent} {
		if Schedule[r].Wait != want {
			t.Errorf("row %d: %v, the ledger's %v", r, Schedule[r].Wait, want)
		}
	}
	for _, rule := range []struct {
		what string
		ok   bool
	}{
		{"24-hour claim window", wait(ClaimWindow) == 24*time.Hour},
		{"claim checks within the window", wait(ClaimCheck) < wait(ClaimWindow)},
		{"30-day query window", wait(QueryWindow) == 30*24*time.Hour},
		{"72 hours to NEEDS_ATTENTION", wait(AttentionAfter) == 72*time.Hour},
		{"EXPIRED at least 24 h after the first try", wait(ResendWindow)+wait(ExpireMargin) >= 24*time.Hour},
		{"EXPIRED before NEEDS_ATTENTION", wait(ResendWindow)+wait(ExpireMargin) < wait(AttentionAfter)},
		{"NEEDS_ATTENTION within the query window", wait(AttentionAfter) < wait(QueryWindow)},
	} {
		if !rule.ok {
			t.Errorf("the schedule breaks: %s", rule.what)
		}
	}
}

func TestNotFoundWait(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{
		{0, 5 * time.Minute}, {1, 5 * time.Minute}, {2, 10 * time.Minute}, {3, 20 * time.Minute}, {4, 40 * time.Minute},
		{5, 80 * time.Minute}, {6, 2 * time.Hour}, {7, 2 * time.Hour}, {1000, 2 * time.Hour},
	} {
		if got := notFoundWait(tc.attempts); got != tc.want {
			t.Errorf("notFoundWait(%d) = %v, want %v", tc.attempts, got, tc.want)
		}
	}
	// A billno WeChat never shows, each try unknown: first checked a minute
	// after the try, sent again when NOT_FOUND a second time.
	tries, now := 1, time.Duration(0)
	for {
		now += wait(AfterUnknown) + notFoundWait(tries)
		if now >= wait(ResendWindow) {
			break
		}
		tries++
	}
	if tries != 16 {
		t.Errorf("%d tries within the re-entry window, the schedule says 16", tries)
	}
}

func TestWindows(t *testing.T) {
	first := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	it := &ledger.Item{FirstTriedAt: first, LastTriedAt: first.Add(time.Hour)}
	if got := expiresAt(it); !got.Equal(first.Add(25 * time.Hour)) {
		t.Errorf("expiresAt = %v, want 25 h after the first try", got)
	}
	it.LastTriedAt = first.Add(26 * time.Hour)
	if got := expiresAt(it); !got.Equal(first.Add(27 * time.Hour)) {
		t.Errorf("expiresAt after a late try = %v, want an hour after it", got)
	}
	it.LastTriedAt = first
	for _, tc := range []struct{ now, want time.Duration }{
		{time.Hour, 7 * time.Hour},
		{19 * time.Hour, 25 * time.Hour},
		{25 * time.Hour, 26 * time.Hour},
	} {
		if got := claimCheck(it, first.Add(tc.now)); !got.Equal(first.Add(tc.want)) {
			t.Errorf("claimCheck at %v = %v, want %v", tc.now, got.Sub(first), tc.want)
		}
	}
	if got := attentionCheck(it, first.Add(29*24*time.Hour)); !got.Equal(first.Add(29*24*time.Hour + 6*time.Hour)) {
		t.Errorf("attentionCheck within the window = %v", got)
	}
	if got := attentionCheck(it, first.Add(30*24*time.Hour-time.Hour)); !got.IsZero() {
		t.Errorf("attentionCheck past the window = %v, want none", got)
	}
}
