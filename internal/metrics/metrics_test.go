package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/metrics"
)

var at = time.Date(2026, 12, 1, 8, 0, 0, 123456789, time.UTC)

// line writes entry's attributes on one slog.JSONHandler line after the
// fields a request line has, as the functions do.
func line(t *testing.T, e metrics.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&b, nil))
	attrs := append([]slog.Attr{slog.String("function", "sendmini"), slog.Int("status", 200)}, e.Attrs()...)
	logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
	if n := bytes.Count(b.Bytes(), []byte("\n")); n != 1 {
		t.Fatalf("%d lines: %s", n, b.Bytes())
	}
	return b.Bytes()
}

// TestEntry: what a function writes is one JSON line whose members are
// an EMF document: _aws.Timestamp in milliseconds, each directive's
// namespace, dimension sets of names that are top-level strings, metric
// definitions whose names are top-level numbers; and what CloudWatch
// extracts from it is the entry's metrics under each dimension set.
func TestEntry(t *testing.T) {
	fn := metrics.Dimension{Name: metrics.DimFunction, Value: "sendmini"}
	api := metrics.Dimension{Name: metrics.DimAPI, Value: "sendminiprogramhb"}
	outcome := metrics.Dimension{Name: metrics.DimOutcome, Value: "success"}
	dims := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	datum := func(name string, unit metrics.Unit, v float64, d map[string]string) metrics.Datum {
		return metrics.Datum{Namespace: metrics.Namespace, Name: name, Unit: unit, Dimensions: d, Values: []float64{v}, Time: at.Truncate(time.Millisecond)}
	}
	for _, tc := range []struct {
		name  string
		entry metrics.Entry
		// aws is the member _aws exactly; want what CloudWatch extracts.
		aws  string
		want []metrics.Datum
	}{
		{
			name: "a send: two directives, three dimension sets",
			entry: metrics.Entry{Namespace: metrics.Namespace, Time: at, Dimensions: []metrics.Dimension{fn, api, outcome},
				Directives: []metrics.Directive{
					{Dimensions: [][]string{{metrics.DimFunction, metrics.DimAPI, metrics.DimOutcome}, {metrics.DimFunction}}, Metrics: []metrics.Metric{metrics.Count(metrics.Sends, 1)}},
					{Dimensions: [][]string{{metrics.DimFunction}}, Metrics: []metrics.Metric{metrics.Count(metrics.Replays, 0), metrics.Count(metrics.Unknowns, 0)}},
				}},
			aws: `{"Timestamp":1796112000123,"CloudWatchMetrics":[` +
				`{"Namespace":"WxRedpack","Dimensions":[["Function","Api","Outcome"],["Function"]],"Metrics":[{"Name":"Sends","Unit":"Count"}]},` +
				`{"Namespace":"WxRedpack","Dimensions":[["Function"]],"Metrics":[{"Name":"Replays","Unit":"Count"},{"Name":"Unknowns","Unit":"Count"}]}]}`,
			want: []metrics.Datum{
				datum("Sends", metrics.UnitCount, 1, dims("Function", "sendmini", "Api", "sendminiprogramhb", "Outcome", "success")),
				datum("Sends", metrics.UnitCount, 1, dims("Function", "sendmini")),
				datum("Replays", metrics.UnitCount, 0, dims("Function", "sendmini")),
				datum("Unknowns", metrics.UnitCount, 0, dims("Function", "sendmini")),
			},
		},
		{
			name: "gauges without dimensions: [[]]",
			entry: metrics.Entry{Namespace: metrics.Namespace, Time: at, Directives: []metrics.Directive{
				{Dimensions: [][]string{{}}, Metrics: []metrics.Metric{metrics.Count(metrics.UnknownOverOneHour, 2), metrics.Seconds(metrics.OldestUnsettledAgeSeconds, 90*time.Minute+1500*time.Microsecond)}},
			}},
			aws: `{"Timestamp":1796112000123,"CloudWatchMetrics":[{"Namespace":"WxRedpack","Dimensions":[[]],` +
				`"Metrics":[{"Name":"UnknownOverOneHour","Unit":"Count"},{"Name":"OldestUnsettledAgeSeconds","Unit":"Seconds"}]}]}`,
			want: []metrics.Datum{
				datum("UnknownOverOneHour", metrics.UnitCount, 2, dims()),
				datum("OldestUnsettledAgeSeconds", metrics.UnitSeconds, 5400.001, dims()),
			},
		},
		{
			name: "a nil dimension set is the set without dimensions",
			entry: metrics.Entry{Namespace: "X", Time: at, Directives: []metrics.Directive{
				{Dimensions: [][]string{nil}, Metrics: []metrics.Metric{metrics.Count(metrics.NeedsAttention, 0)}},
			}},
			aws:  `{"Timestamp":1796112000123,"CloudWatchMetrics":[{"Namespace":"X","Dimensions":[[]],"Metrics":[{"Name":"NeedsAttention","Unit":"Count"}]}]}`,
			want: []metrics.Datum{{Namespace: "X", Name: "NeedsAttention", Unit: metrics.UnitCount, Dimensions: dims(), Values: []float64{0}, Time: at.Truncate(time.Millisecond)}},
		},
		{
			name: "a transition; a metric in two directives is one member",
			entry: metrics.Entry{Namespace: metrics.Namespace, Time: at,
				Dimensions: []metrics.Dimension{{Name: metrics.DimFrom, Value: "UNKNOWN"}, {Name: metrics.DimTo, Value: "SENT"}},
				Directives: []metrics.Directive{
					{Dimensions: [][]string{{metrics.DimFrom, metrics.DimTo}}, Metrics: []metrics.Metric{metrics.Count(metrics.Transitions, 3)}},
					{Dimensions: [][]string{{metrics.DimTo}}, Metrics: []metrics.Metric{metrics.Count(metrics.Transitions, 3)}},
				}},
			aws: `{"Timestamp":1796112000123,"CloudWatchMetrics":[` +
				`{"Namespace":"WxRedpack","Dimensions":[["From","To"]],"Metrics":[{"Name":"Transitions","Unit":"Count"}]},` +
				`{"Namespace":"WxRedpack","Dimensions":[["To"]],"Metrics":[{"Name":"Transitions","Unit":"Count"}]}]}`,
			want: []metrics.Datum{
				datum("Transitions", metrics.UnitCount, 3, dims("From", "UNKNOWN", "To", "SENT")),
				datum("Transitions", metrics.UnitCount, 3, dims("To", "SENT")),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.entry.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b := line(t, tc.entry)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if got := string(m["_aws"]); got != tc.aws {
				t.Errorf("_aws\n%s\nwant\n%s", got, tc.aws)
			}
			if string(m["function"]) != `"sendmini"` || string(m["msg"]) != `"request"` {
				t.Errorf("the line's own members are lost: %s", b)
			}
			for _, d := range tc.entry.Dimensions {
				if want, _ := json.Marshal(d.Value); string(m[d.Name]) != string(want) {
					t.Errorf("dimension %s = %s, want the top-level string %s", d.Name, m[d.Name], want)
				}
			}
			for _, dir := range tc.entry.Directives {
				for _, metric := range dir.Metrics {
					var v any
					if err := json.Unmarshal(m[metric.Name], &v); err != nil || v != metric.Value {
						t.Errorf("metric %s = %s, want the top-level number %v", metric.Name, m[metric.Name], metric.Value)
					}
				}
			}
			got, err := metrics.Extract(b)
			if err != nil {
				t.Fatalf("Extract: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("extracted\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestValidate: entries the specification does not allow, or CloudWatch
// would not extract, are refused, each for its reason.
func TestValidate(t *testing.T) {
	fn := metrics.Dimension{Name: metrics.DimFunction, Value: "send"}
	ok := func() metrics.Entry {
		return metrics.Entry{Namespace: metrics.Namespace, Time: at, Dimensions: []metrics.Dimension{fn}, Directives: []metrics.Directive{
			{Dimensions: [][]string{{metrics.DimFunction}, {}}, Metrics: []metrics.Metric{metrics.Count(metrics.Sends, 1)}},
		}}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("the valid entry: %v", err)
	}
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		change func(e *metrics.Entry)
		want   string
	}{
		{"no namespace", func(e *metrics.Entry) { e.Namespace = "" }, "namespace"},
		{"namespace too long", func(e *metrics.Entry) { e.Namespace = strings.Repeat("N", 256) }, "namespace"},
		{"no directive", func(e *metrics.Entry) { e.Directives = nil }, "no directive"},
		{"no metric", func(e *metrics.Entry) { e.Directives[0].Metrics = nil }, "0 metrics"},
		{"101 metrics", func(e *metrics.Entry) {
			for _, n := range many(101, func(i int) string { return "M" + strings.Repeat("x", i) }) {
				e.Directives[0].Metrics = append(e.Directives[0].Metrics, metrics.Count(n, 1))
			}
		}, "metrics, want 1 to 100"},
		{"no dimension set", func(e *metrics.Entry) { e.Directives[0].Dimensions = nil }, "no dimension set"},
		{"a dimension without a value", func(e *metrics.Entry) { e.Directives[0].Dimensions[0] = []string{metrics.DimAPI} }, `"Api" has no value`},
		{"an empty dimension value", func(e *metrics.Entry) { e.Dimensions[0].Value = "" }, "value must be"},
		{"a dimension value too long", func(e *metrics.Entry) { e.Dimensions[0].Value = strings.Repeat("v", 1025) }, "value must be"},
		{"a dimension twice in a set", func(e *metrics.Entry) {
			e.Directives[0].Dimensions[0] = []string{metrics.DimFunction, metrics.DimFunction}
		}, "twice in a set"},
		{"31 dimensions", func(e *metrics.Entry) {
			names := many(31, func(i int) string { return "D" + strings.Repeat("x", i) })
			for _, n := range names {
				e.Dimensions = append(e.Dimensions, metrics.Dimension{Name: n, Value: "v"})
			}
			e.Directives[0].Dimensions[0] = names
		}, "at most 30"},
		{"a dimension named _aws", func(e *metrics.Entry) { e.Dimensions[0].Name = "_aws" }, "EMF metadata"},
		{"a dimension given twice", func(e *metrics.Entry) { e.Dimensions = append(e.Dimensions, fn) }, "a dimension"},
		{"a metric named as a dimension", func(e *metrics.Entry) { e.Directives[0].Metrics[0].Name = metrics.DimFunction }, "the name of a dimension"},
		{"a metric with two values", func(e *metrics.Entry) {
			e.Directives = append(e.Directives, metrics.Directive{Dimensions: [][]string{{}}, Metrics: []metrics.Metric{metrics.Count(metrics.Sends, 2)}})
		}, "two values"},
		{"a metric without a name", func(e *metrics.Entry) { e.Directives[0].Metrics[0].Name = "" }, "a name"},
		{"an unknown unit", func(e *metrics.Entry) { e.Directives[0].Metrics[0].Unit = "Fen" }, "CloudWatch unit"},
		{"not a number", func(e *metrics.Entry) { e.Directives[0].Metrics[0].Value = math.NaN() }, "finite"},
		{"infinite", func(e *metrics.Entry) { e.Directives[0].Metrics[0].Value = math.Inf(1) }, "finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ok()
			tc.change(&e)
			if err := e.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestExtract: documents that break a rule of the specification are
// refused, each for its reason; extra members of the line are not.
func TestExtract(t *testing.T) {
	const dir = `{"Namespace":"WxRedpack","Dimensions":[["Function"]],"Metrics":[{"Name":"Sends","Unit":"Count"}]}`
	doc := func(aws string, members string) string {
		return `{"msg":"request","Function":"send","Sends":1` + members + `,"_aws":` + aws + `}`
	}
	valid := doc(`{"Timestamp":1796112000123,"CloudWatchMetrics":[`+dir+`]}`, "")
	if _, err := metrics.Extract([]byte(valid)); err != nil {
		t.Fatalf("the valid document: %v", err)
	}
	got, err := metrics.Extract([]byte(doc(`{"Timestamp":1796112000123,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],`+
		`"Metrics":[{"Name":"Latency","Unit":"Milliseconds","StorageResolution":1}]}]}`, `,"Latency":[1.5,2]`)))
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0].Values, []float64{1.5, 2}) || got[0].Unit != metrics.UnitMilliseconds {
		t.Errorf("an array of values: %+v, %v", got, err)
	}
	if _, err := metrics.Extract([]byte(`{"msg":"request","function":"send"}`)); !errors.Is(err, metrics.ErrNotEMF) {
		t.Errorf("a line without _aws: %v, want ErrNotEMF", err)
	}
	for _, tc := range []struct {
		name, line, want string
	}{
		{"not an object", `[` + valid + `]`, "one JSON object"},
		{"two objects", valid + valid, "one JSON object"},
		{"_aws not an object", doc(`[]`, ""), "_aws"},
		{"no Timestamp", doc(`{"CloudWatchMetrics":[`+dir+`]}`, ""), "required"},
		{"no CloudWatchMetrics", doc(`{"Timestamp":1796112000123}`, ""), "required"},
		{"Timestamp in seconds with a fraction", doc(`{"Timestamp":1796112000.123,"CloudWatchMetrics":[`+dir+`]}`, ""), "milliseconds"},
		{"Timestamp a string", doc(`{"Timestamp":"2026-12-01T08:00:00Z","CloudWatchMetrics":[`+dir+`]}`, ""), "milliseconds"},
		{"an unknown member of _aws", doc(`{"Timestamp":1,"CloudWatchMetrics":[`+dir+`],"Extra":1}`, ""), "_aws"},
		{"a member in another case", doc(`{"timestamp":1,"CloudWatchMetrics":[`+dir+`]}`, ""), "_aws"},
		{"no Namespace", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"Sends"}]}]}`, ""), "required"},
		{"empty Namespace", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"","Dimensions":[[]],"Metrics":[{"Name":"Sends"}]}]}`, ""), "Namespace"},
		{"no Dimensions", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Metrics":[{"Name":"Sends"}]}]}`, ""), "required"},
		{"a dimension set of strings", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":["Function"],"Metrics":[{"Name":"Sends"}]}]}`, ""), "_aws"},
		{"a null dimension set", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[null],"Metrics":[{"Name":"Sends"}]}]}`, ""), "null"},
		{"a dimension not a member", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Api"]],"Metrics":[{"Name":"Sends"}]}]}`, ""), "not a top-level string"},
		{"a dimension not a string", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Sends"]],"Metrics":[{"Name":"Sends"}]}]}`, ""), "not a top-level string"},
		{"a dimension twice", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function","Function"]],"Metrics":[{"Name":"Sends"}]}]}`, ""), "twice"},
		{"no Metrics", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[]}]}`, ""), "0 metrics"},
		{"a metric without a Name", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Unit":"Count"}]}]}`, ""), "without a Name"},
		{"a metric not a member", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Replays"}]}]}`, ""), "no top-level member"},
		{"a metric a string", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Function"}]}]}`, ""), "not a number"},
		{"a metric an empty array", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"V"}]}]}`, `,"V":[]`), "1 to 100 numbers"},
		{"an unknown unit", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Sends","Unit":"Fen"}]}]}`, ""), "not a CloudWatch unit"},
		{"a bad StorageResolution", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Sends","StorageResolution":5}]}]}`, ""), "StorageResolution"},
		{"an unknown member of a definition", doc(`{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Sends","Value":1}]}]}`, ""), "_aws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := metrics.Extract([]byte(tc.line)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Extract = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
