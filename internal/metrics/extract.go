package metrics

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Datum is one metric value CloudWatch extracts from a line: a metric
// of a directive under one of its dimension sets.
type Datum struct {
	Namespace string
	Name      string
	Unit      Unit
	// Dimensions are the set's names and their values; empty for the set
	// without dimensions.
	Dimensions map[string]string
	// Values are the metric's value, or the values of its array.
	Values []float64
	Time   time.Time
}

// ErrNotEMF is Extract's error for a JSON object without the member _aws:
// a line that carries no metrics.
var ErrNotEMF = errors.New("metrics: not an EMF document: no member _aws")

// The EMF document's objects, as Extract reads them: every member the
// specification defines, no other (json v2 matches names exactly and
// rejects a member given twice).
type (
	rawMeta struct {
		Timestamp         *jsontext.Value `json:"Timestamp"`
		CloudWatchMetrics *[]rawDirective `json:"CloudWatchMetrics"`
	}
	rawDirective struct {
		Namespace  *string          `json:"Namespace"`
		Dimensions *[][]string      `json:"Dimensions"`
		Metrics    *[]rawDefinition `json:"Metrics"`
	}
	rawDefinition struct {
		Name              *string `json:"Name"`
		Unit              *Unit   `json:"Unit"`
		StorageResolution *int    `json:"StorageResolution"`
	}
)

// Extract reads a log line as CloudWatch Logs does an EMF document and
// returns the metric values it would publish, in the document's order. It
// checks the document against the EMF specification, strictly: the line
// is one JSON object; _aws holds CloudWatchMetrics (an array of
// directives) and Timestamp (an integer, milliseconds since the Unix
// epoch); each directive holds Namespace (1 to 255 bytes), Dimensions (an
// array of dimension sets: arrays of at most MaxDimensions names, each
// once, each a top-level member whose value is a string of 1 to
// MaxDimensionValue bytes) and Metrics (1 to MaxMetrics definitions: Name,
// a top-level member whose value is a number or an array of 1 to 100
// numbers; optional Unit, a CloudWatch unit; optional StorageResolution,
// 1 or 60); and no object holds a member the specification does not
// define. Its error names the first rule broken; ErrNotEMF for a JSON
// object without _aws.
func Extract(line []byte) ([]Datum, error) {
	var root map[string]jsontext.Value
	if err := json.Unmarshal(line, &root); err != nil {
		return nil, fmt.Errorf("metrics: the line is not one JSON object: %w", err)
	}
	rawAWS, ok := root["_aws"]
	if !ok {
		return nil, ErrNotEMF
	}
	var meta rawMeta
	if err := json.Unmarshal(rawAWS, &meta, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("metrics: _aws: %w", err)
	}
	if meta.Timestamp == nil || meta.CloudWatchMetrics == nil {
		return nil, fmt.Errorf("metrics: _aws: Timestamp and CloudWatchMetrics are required")
	}
	var ms int64
	if meta.Timestamp.Kind() != '0' || json.Unmarshal(*meta.Timestamp, &ms) != nil || ms < 0 {
		return nil, fmt.Errorf("metrics: _aws.Timestamp %s: want milliseconds since the Unix epoch, a whole number", *meta.Timestamp)
	}
	at := time.UnixMilli(ms).UTC()
	var out []Datum
	for i, d := range *meta.CloudWatchMetrics {
		if d.Namespace == nil || d.Dimensions == nil || d.Metrics == nil {
			return nil, fmt.Errorf("metrics: directive %d: Namespace, Dimensions and Metrics are required", i)
		}
		if len(*d.Namespace) == 0 || len(*d.Namespace) > 255 {
			return nil, fmt.Errorf("metrics: directive %d: Namespace %q: 1 to 255 bytes", i, *d.Namespace)
		}
		sets := make([]map[string]string, 0, len(*d.Dimensions))
		for _, set := range *d.Dimensions {
			if set == nil {
				return nil, fmt.Errorf("metrics: directive %d: a dimension set is null, want an array of names", i)
			}
			if len(set) > MaxDimensions {
				return nil, fmt.Errorf("metrics: directive %d: %d dimensions in a set, at most %d", i, len(set), MaxDimensions)
			}
			dims := make(map[string]string, len(set))
			for j, name := range set {
				if slices.Contains(set[:j], name) {
					return nil, fmt.Errorf("metrics: directive %d: dimension %q twice in a set", i, name)
				}
				v, ok := root[name]
				var s string
				if !ok || v.Kind() != '"' || json.Unmarshal(v, &s) != nil {
					return nil, fmt.Errorf("metrics: directive %d: dimension %q is not a top-level string member", i, name)
				}
				if len(s) == 0 || len(s) > MaxDimensionValue {
					return nil, fmt.Errorf("metrics: directive %d: dimension %s: value of %d bytes, want 1 to %d", i, name, len(s), MaxDimensionValue)
				}
				dims[name] = s
			}
			sets = append(sets, dims)
		}
		if n := len(*d.Metrics); n == 0 || n > MaxMetrics {
			return nil, fmt.Errorf("metrics: directive %d: %d metrics, want 1 to %d", i, n, MaxMetrics)
		}
		for _, m := range *d.Metrics {
			if m.Name == nil || *m.Name == "" {
				return nil, fmt.Errorf("metrics: directive %d: a metric without a Name", i)
			}
			var unit Unit
			if m.Unit != nil {
				if unit = *m.Unit; unit == "" || !knownUnit(unit) {
					return nil, fmt.Errorf("metrics: metric %s: Unit %q is not a CloudWatch unit", *m.Name, unit)
				}
			}
			if r := m.StorageResolution; r != nil && *r != 1 && *r != 60 {
				return nil, fmt.Errorf("metrics: metric %s: StorageResolution %d, want 1 or 60", *m.Name, *r)
			}
			values, err := metricValues(root[*m.Name])
			if err != nil {
				return nil, fmt.Errorf("metrics: metric %s: %w", *m.Name, err)
			}
			for _, dims := range sets {
				out = append(out, Datum{Namespace: *d.Namespace, Name: *m.Name, Unit: unit, Dimensions: dims, Values: values, Time: at})
			}
		}
	}
	return out, nil
}

// metricValues reads a metric's target member: a number, or an array of
// 1 to 100 numbers.
func metricValues(v jsontext.Value) ([]float64, error) {
	switch v.Kind() {
	case '0':
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, err
		}
		return []float64{f}, nil
	case '[':
		var fs []float64
		if err := json.Unmarshal(v, &fs); err != nil || len(fs) == 0 || len(fs) > 100 {
			return nil, fmt.Errorf("the target member %s is not an array of 1 to 100 numbers", v)
		}
		return fs, nil
	case 0:
		return nil, errors.New("no top-level member of that name")
	}
	return nil, fmt.Errorf("the target member %s is not a number", v)
}
