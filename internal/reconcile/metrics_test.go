package reconcile_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/metrics"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// passLines writes a summary's lines as the reconciler function does: the
// summary line with Summary.Metrics, and one line per distinct move with
// Summary.TransitionMetrics; it returns what CloudWatch extracts from
// them, as "Name{Dim=value,...}" → value, and the number of lines.
func passLines(t *testing.T, s reconcile.Summary, at time.Time) (map[string]float64, int) {
	t.Helper()
	var b bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&b, nil))
	logger.LogAttrs(context.Background(), slog.LevelInfo, "reconcile", append([]slog.Attr{slog.String("function", "reconcile")}, s.Metrics(at).Attrs()...)...)
	for _, e := range s.TransitionMetrics(at) {
		if err := e.Validate(); err != nil {
			t.Errorf("transition entry: %v", err)
		}
		logger.LogAttrs(context.Background(), slog.LevelInfo, "reconcile: transitions", e.Attrs()...)
	}
	if err := s.Metrics(at).Validate(); err != nil {
		t.Errorf("summary entry: %v", err)
	}
	got := map[string]float64{}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for _, line := range lines {
		data, err := metrics.Extract([]byte(line))
		if err != nil {
			t.Fatalf("%v\n%s", err, line)
		}
		for _, d := range data {
			if d.Namespace != metrics.Namespace || len(d.Values) != 1 || !d.Time.Equal(at.Truncate(time.Millisecond)) {
				t.Errorf("datum %+v: want one value in %s at %v", d, metrics.Namespace, at)
			}
			unit := metrics.UnitCount
			if d.Name == metrics.OldestUnsettledAgeSeconds {
				unit = metrics.UnitSeconds
			}
			if d.Unit != unit {
				t.Errorf("%s in %s, want %s", d.Name, d.Unit, unit)
			}
			var dims []string
			for _, k := range slices.Sorted(maps.Keys(d.Dimensions)) {
				dims = append(dims, k+"="+d.Dimensions[k])
			}
			key := d.Name + "{" + strings.Join(dims, ",") + "}"
			if _, dup := got[key]; dup {
				t.Errorf("%s twice", key)
			}
			got[key] = d.Values[0]
		}
	}
	return got, len(lines)
}

// TestPassMetrics: a pass's summary line carries NeedsAttention and the
// gauges UnknownOverOneHour and OldestUnsettledAgeSeconds (no
// dimensions), and its moves are Transitions by From and To, one line per
// distinct move; on the injected clock, with items of every age and
// state. The next pass, with nothing due, writes its gauges as 0; a pass
// that could not read the due items, and the check of one item, write no
// gauge.
func TestPassMetrics(t *testing.T) {
	store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
	now := at(2 * time.Hour)
	for _, it := range []struct {
		billno string
		first  time.Time
		state  ledger.State // Recorded: the send died mid-call
		status string       // WeChat's record; "" none
	}{
		{"PAIDA", base, ledger.Unknown, wxpay.StatusSent},                                 // 2 h unknown: counted, moved to SENT
		{"PAIDB", base, ledger.Unknown, wxpay.StatusSent},                                 // the same move again
		{"DIED", at(30 * time.Minute), ledger.Recorded, wxpay.StatusFailed},               // 1 h 30 RECORDED, lease ended: counted, FAILED
		{"OLD", base.Add(-73 * time.Hour), ledger.Unknown, wxpay.StatusSending},           // 75 h: counted, the oldest, NEEDS_ATTENTION
		{"CLAIM", base, ledger.Sent, wxpay.StatusSent},                                    // paid, awaiting the claim: not unknown, no move
		{"YOUNG", now.Add(-10 * time.Minute), ledger.Unknown, ""},                         // 10 min: not counted; NOT_FOUND, no move
		{"EARLY", now.Add(-30 * time.Second), ledger.Unknown, wxpay.StatusSent},           // not due yet: not seen
		{"DONE", base.Add(-10 * time.Hour), ledger.Failed, wxpay.StatusFailed},            // final: not due, not seen
		{"INFLIGHT", now.Add(-70 * time.Minute), ledger.Recorded, wxpay.StatusSent},       // a send holds it (below): not due until its lease ends, not seen
		{"ATTN", base.Add(-80 * time.Hour), ledger.NeedsAttention, wxpay.StatusSending},   // not due (next check in 6 h): not seen
		{"LATE", base.Add(-30 * time.Minute), ledger.Unknown, wxpay.StatusFailed},         // 2 h 30: counted, FAILED
		{"LATER", base.Add(-40 * time.Minute), ledger.Unknown, wxpay.StatusSending + "X"}, // an undocumented status: counted, no move
	} {
		create(t, store, it.billno, it.first)
		if it.state != ledger.Recorded {
			settle(t, store, it.billno, it.first, it.state, "")
		}
		if it.status != "" {
			w.record(it.billno, it.status, "")
		}
	}
	// INFLIGHT: a send holds it now, as a repeat that just started would.
	if _, err := store.Acquire(t.Context(), key("INFLIGHT"), ledger.Lease{Hash: get(t, store, "INFLIGHT").Hash, Owner: "repeat",
		Until: now.Add(time.Minute), Now: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	// ATTN was last checked an hour ago: its next check is hours away.
	attn := get(t, store, "ATTN")
	if err := store.Reconcile(t.Context(), key("ATTN"), ledger.Reconciliation{From: attn.State, ReadNextCheckAt: attn.NextCheckAt, To: attn.State,
		NextCheckAt: now.Add(5 * time.Hour), Now: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}

	c.Set(now)
	r, _ := newReconciler(store, w, c)
	s := r.RunOnce(t.Context())
	if s.Stopped != "" || s.Errors != 0 {
		t.Fatalf("pass: %+v", s)
	}
	oldest := (75 * time.Hour).Seconds()
	if b := s.Backlog; b == nil || b.Seen != 8 || b.UnknownOverOneHour != 6 || b.OldestUnsettledAgeSeconds != oldest {
		t.Errorf("backlog %+v, want 8 seen, 6 unknown over an hour, the oldest %v s", b, oldest)
	}
	got, lines := passLines(t, s, now)
	want := map[string]float64{
		"NeedsAttention{}":                             1,
		"UnknownOverOneHour{}":                         6,
		"OldestUnsettledAgeSeconds{}":                  oldest,
		"Transitions{From=RECORDED,To=FAILED}":         1,
		"Transitions{From=UNKNOWN,To=FAILED}":          1,
		"Transitions{From=UNKNOWN,To=NEEDS_ATTENTION}": 1,
		"Transitions{From=UNKNOWN,To=SENT}":            2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("metrics\n%v\nwant\n%v", got, want)
	}
	if lines != 5 {
		t.Errorf("%d lines, want the summary line and one per distinct move", lines)
	}

	// Nothing due 30 seconds later: the gauges are 0, not missing.
	c.Set(now.Add(30 * time.Second))
	s = r.RunOnce(t.Context())
	got, lines = passLines(t, s, now.Add(30*time.Second))
	if want := map[string]float64{"NeedsAttention{}": 0, "UnknownOverOneHour{}": 0, "OldestUnsettledAgeSeconds{}": 0}; !maps.Equal(got, want) || lines != 1 {
		t.Errorf("an idle pass: %v in %d lines, want %v in one", got, lines, want)
	}

	// A pass that could not read the due items knows no gauge.
	w.mchErr = &credstore.ConfigError{Field: "apiv2_key", Reason: "is missing"}
	s = r.RunOnce(t.Context())
	if got, _ := passLines(t, s, now); s.Backlog != nil || !maps.Equal(got, map[string]float64{"NeedsAttention{}": 0}) {
		t.Errorf("a pass without credentials: backlog %+v, metrics %v; want NeedsAttention only", s.Backlog, got)
	}
	w.mchErr = nil

	// The check of one item: its moves and NeedsAttention, no gauge.
	c.Set(now.Add(10 * time.Minute))
	w.record("YOUNG", wxpay.StatusSent, "")
	s, err := r.Check(t.Context(), key("YOUNG"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = passLines(t, s, now)
	if want := map[string]float64{"NeedsAttention{}": 0, "Transitions{From=UNKNOWN,To=SENT}": 1}; s.Backlog != nil || !maps.Equal(got, want) {
		t.Errorf("a check: backlog %+v, metrics %v; want %v", s.Backlog, got, want)
	}
}

// TestBacklogDueBound: the gauges cover the items the pass read, as far
// as its budget let it: the earliest due first.
func TestBacklogDueBound(t *testing.T) {
	store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
	// 10 unknown items, tried a minute apart from base; the earliest due
	// is the oldest.
	for i := range 10 {
		billno := fmt.Sprintf("BOUND%02d", i)
		first := at(time.Duration(i) * time.Minute)
		create(t, store, billno, first)
		settle(t, store, billno, first, ledger.Unknown, "")
	}
	c.Set(at(90 * time.Minute))
	r, _ := newReconciler(store, w, c)
	r.Budget, r.Batch = 4, 2
	s := r.RunOnce(t.Context())
	if b := s.Backlog; b == nil || b.Seen != 4 || b.UnknownOverOneHour != 4 || b.OldestUnsettledAgeSeconds != (90*time.Minute).Seconds() {
		t.Errorf("backlog %+v; want the 4 items read, the oldest 5400 s", b)
	}
}

// TestOldestUnsettledLeavesOutSent: a red packet WeChat paid is settled as
// far as money goes, however long its claim takes: the gauge is the age of
// the oldest item whose outcome is not known.
func TestOldestUnsettledLeavesOutSent(t *testing.T) {
	store, w, c := ledger.NewMemory(), newWeChat(), newClock(base)
	now := at(10 * time.Hour)
	create(t, store, "PAID", base)
	settle(t, store, "PAID", base, ledger.Sent, "")
	w.record("PAID", wxpay.StatusSent, "")
	create(t, store, "UNSURE", now.Add(-2*time.Hour))
	settle(t, store, "UNSURE", now.Add(-2*time.Hour), ledger.Unknown, "")
	c.Set(now)
	r, _ := newReconciler(store, w, c)
	s := r.RunOnce(t.Context())
	if b := s.Backlog; b == nil || b.Seen != 2 || b.OldestUnsettledAgeSeconds != (2*time.Hour).Seconds() {
		t.Errorf("backlog %+v, want both seen and the unknown one's age (7200 s), not the paid one's", s.Backlog)
	}
}
