package reconcile

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/metrics"
)

// Metrics are the metrics of the invocation line of a pass, or of the
// check of one item, whose summary is s, at t (namespace
// metrics.Namespace, no dimensions):
//
//   - NeedsAttention (Count): the items moved to NEEDS_ATTENTION;
//   - for a pass that read the due items (s.Backlog not nil), its gauges:
//     UnknownOverOneHour (Count) and OldestUnsettledAgeSeconds (Seconds),
//     0 when none. They cover the items due during the pass (see
//     Backlog), so that an alarm above 0 fires in the passes that see
//     such an item. A pass that could not read the due index (no
//     credentials, the ledger unavailable) writes no gauge rather than a
//     0 it does not know.
//
// The moves by From and To are TransitionMetrics: one line cannot carry
// two values of a dimension.
func (s Summary) Metrics(t time.Time) metrics.Entry {
	m := []metrics.Metric{metrics.Count(metrics.NeedsAttention, s.NeedsAttention)}
	if b := s.Backlog; b != nil {
		m = append(m,
			metrics.Count(metrics.UnknownOverOneHour, b.UnknownOverOneHour),
			metrics.Metric{Name: metrics.OldestUnsettledAgeSeconds, Unit: metrics.UnitSeconds, Value: b.OldestUnsettledAgeSeconds})
	}
	return metrics.Plain(t, m...)
}

// TransitionMetrics are the metrics of s's moves at t, one entry (one
// line) per distinct move, in the order of "FROM->TO": Transitions
// (Count), the items moved, by From and To (ledger states). None when
// nothing moved.
func (s Summary) TransitionMetrics(t time.Time) []metrics.Entry {
	moves := slices.Sorted(maps.Keys(s.Transitions))
	out := make([]metrics.Entry, 0, len(moves))
	for _, move := range moves {
		from, to, ok := strings.Cut(move, "->")
		if !ok || from == "" || to == "" || s.Transitions[move] <= 0 {
			continue
		}
		out = append(out, metrics.Entry{
			Namespace:  metrics.Namespace,
			Time:       t,
			Dimensions: []metrics.Dimension{{Name: metrics.DimFrom, Value: from}, {Name: metrics.DimTo, Value: to}},
			Directives: []metrics.Directive{{
				Dimensions: [][]string{{metrics.DimFrom, metrics.DimTo}},
				Metrics:    []metrics.Metric{metrics.Count(metrics.Transitions, s.Transitions[move])},
			}},
		})
	}
	return out
}
