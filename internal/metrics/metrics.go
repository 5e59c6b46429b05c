// Package metrics writes CloudWatch metrics in the Embedded Metric Format
// (EMF): a log line carries its metrics as members of the line itself, and
// CloudWatch Logs extracts them as it ingests the line, with no call to the
// CloudWatch API and nothing to flush.
//
// An Entry is the metrics of one line. Its Attrs are slog attributes added
// to that line (slog.JSONHandler writes them as top-level members): each
// dimension's value as a string, each metric's value as a number, and the
// member _aws, the EMF metadata naming them. The line keeps its other
// members; EMF ignores them.
//
// A line's metrics are extracted only if the line is written: a line
// below the logger's level, or below the function's ApplicationLogLevel
// (Lambda drops JSON lines below it), carries none.
package metrics

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"
)

// Unit is a CloudWatch unit.
type Unit string

// The units the functions' metrics use (CloudWatch has more; Extract
// accepts all of them).
const (
	UnitCount        Unit = "Count"
	UnitSeconds      Unit = "Seconds"
	UnitMilliseconds Unit = "Milliseconds"
	UnitNone         Unit = "None"
)

// Metric is one metric's value on a line.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Count returns the metric name counting n, in unit Count.
func Count(name string, n int) Metric { return Metric{Name: name, Unit: UnitCount, Value: float64(n)} }

// Seconds returns the metric name measuring d in seconds (to the
// millisecond), in unit Seconds.
func Seconds(name string, d time.Duration) Metric {
	return Metric{Name: name, Unit: UnitSeconds, Value: float64(d.Milliseconds()) / 1000}
}

// Dimension is a dimension's name and value: a top-level string member of
// the line.
type Dimension struct {
	Name, Value string
}

// Directive is metrics published under the same dimension sets: one EMF
// MetricDirective. Each dimension set is a list of dimension names, each
// of them one of the Entry's Dimensions; an empty set ([]string{}) is the
// metric without dimensions. Every metric is published once per set.
type Directive struct {
	Dimensions [][]string
	Metrics    []Metric
}

// Entry is the metrics of one log line, in one namespace.
type Entry struct {
	Namespace string
	// Time is the metrics' timestamp (EMF's Timestamp, to the
	// millisecond). CloudWatch rejects a timestamp more than two weeks
	// in the past or two hours in the future.
	Time       time.Time
	Dimensions []Dimension
	Directives []Directive
}

// Plain returns the entry of ms at t in the functions' namespace
// (Namespace), without dimensions.
func Plain(t time.Time, ms ...Metric) Entry {
	return Entry{Namespace: Namespace, Time: t, Directives: []Directive{{Dimensions: [][]string{{}}, Metrics: ms}}}
}

// Limits of the EMF specification.
const (
	// MaxDimensions is the most dimension names in a dimension set.
	MaxDimensions = 30
	// MaxMetrics is the most metrics in a directive.
	MaxMetrics = 100
	// MaxDimensionValue is the longest dimension value, in bytes.
	MaxDimensionValue = 1024
)

// emf is EMF's metadata object, the member _aws of the line (encoding/json
// marshals it: slog.JSONHandler does for any value).
type emf struct {
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

// directive is EMF's MetricDirective.
type directive struct {
	Namespace  string       `json:"Namespace"`
	Dimensions [][]string   `json:"Dimensions"`
	Metrics    []definition `json:"Metrics"`
}

// definition is EMF's MetricDefinition.
type definition struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit,omitempty"`
}

// Attrs returns the entry as the members of one log line: the dimensions'
// values (strings), the metrics' values (numbers), then _aws. A metric
// named twice has the value of its first mention. Attrs does not check the
// entry: Validate does, and tests run it on every entry shape a function
// writes.
func (e Entry) Attrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, len(e.Dimensions)+2*len(e.Directives)+1)
	for _, d := range e.Dimensions {
		attrs = append(attrs, slog.String(d.Name, d.Value))
	}
	meta := emf{Timestamp: e.Time.UnixMilli(), CloudWatchMetrics: make([]directive, 0, len(e.Directives))}
	var named []string
	for _, d := range e.Directives {
		dir := directive{Namespace: e.Namespace, Dimensions: make([][]string, 0, len(d.Dimensions)), Metrics: make([]definition, 0, len(d.Metrics))}
		for _, set := range d.Dimensions {
			if set == nil {
				set = []string{} // [] rather than null: the set without dimensions
			}
			dir.Dimensions = append(dir.Dimensions, set)
		}
		for _, m := range d.Metrics {
			dir.Metrics = append(dir.Metrics, definition{Name: m.Name, Unit: m.Unit})
			if !slices.Contains(named, m.Name) {
				named = append(named, m.Name)
				attrs = append(attrs, slog.Float64(m.Name, m.Value))
			}
		}
		meta.CloudWatchMetrics = append(meta.CloudWatchMetrics, dir)
	}
	return append(attrs, slog.Any("_aws", meta))
}

// Validate reports what in e the EMF specification does not allow, or
// CloudWatch would not extract: no namespace or directive, a directive
// without metrics or dimension sets (or over MaxMetrics), a dimension set
// over MaxDimensions or naming a dimension twice or one without a value,
// a dimension value empty or over MaxDimensionValue bytes, a metric with
// no name, an unknown unit or a value that is not finite, a metric named
// twice with different values, a member named twice, or named _aws.
func (e Entry) Validate() error {
	if e.Namespace == "" || len(e.Namespace) > 255 {
		return fmt.Errorf("metrics: namespace %q: must be 1 to 255 bytes", e.Namespace)
	}
	if len(e.Directives) == 0 {
		return fmt.Errorf("metrics: no directive")
	}
	members := map[string]string{"_aws": "the EMF metadata"}
	dims := make(map[string]bool, len(e.Dimensions))
	for _, d := range e.Dimensions {
		if what, ok := members[d.Name]; ok || d.Name == "" {
			return fmt.Errorf("metrics: dimension %q: the name of %s", d.Name, what)
		}
		if d.Value == "" || len(d.Value) > MaxDimensionValue {
			return fmt.Errorf("metrics: dimension %s: value must be 1 to %d bytes", d.Name, MaxDimensionValue)
		}
		members[d.Name], dims[d.Name] = "a dimension", true
	}
	values := make(map[string]float64)
	for i, d := range e.Directives {
		if len(d.Metrics) == 0 || len(d.Metrics) > MaxMetrics {
			return fmt.Errorf("metrics: directive %d: %d metrics, want 1 to %d", i, len(d.Metrics), MaxMetrics)
		}
		if len(d.Dimensions) == 0 {
			return fmt.Errorf("metrics: directive %d: no dimension set ([]string{} is the set without dimensions)", i)
		}
		for _, set := range d.Dimensions {
			if len(set) > MaxDimensions {
				return fmt.Errorf("metrics: directive %d: %d dimensions in a set, at most %d", i, len(set), MaxDimensions)
			}
			for j, name := range set {
				if !dims[name] {
					return fmt.Errorf("metrics: directive %d: dimension %q has no value", i, name)
				}
				if slices.Contains(set[:j], name) {
					return fmt.Errorf("metrics: directive %d: dimension %q twice in a set", i, name)
				}
			}
		}
		for _, m := range d.Metrics {
			if m.Name == "" || !knownUnit(m.Unit) || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				return fmt.Errorf("metrics: metric %q: a name, a CloudWatch unit and a finite value are required", m.Name)
			}
			if v, ok := values[m.Name]; ok {
				if v != m.Value {
					return fmt.Errorf("metrics: metric %s: two values", m.Name)
				}
				continue
			}
			if what, ok := members[m.Name]; ok {
				return fmt.Errorf("metrics: metric %s: the name of %s", m.Name, what)
			}
			values[m.Name], members[m.Name] = m.Value, "a metric"
		}
	}
	return nil
}

// units are CloudWatch's units (MetricDatum.Unit).
var units = []Unit{
	"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
	"Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
	"Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
	"Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}

// knownUnit reports whether u is a CloudWatch unit; "" (EMF's default,
// None) is one.
func knownUnit(u Unit) bool { return u == "" || slices.Contains(units, u) }
