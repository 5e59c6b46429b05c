package handler_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/metrics"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// emfLines returns the log lines in text whose msg is msg, each with the
// metrics CloudWatch extracts from it as "Name{Dim=value,...}" → value
// (nil for a line without _aws). Every datum must be in the namespace
// WxRedpack, stamped between from and to, with the unit want says.
func emfLines(t *testing.T, text, msg string, from, to time.Time) (lines []map[string]any, data []map[string]float64) {
	t.Helper()
	for l := range strings.Lines(text) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] != msg {
			continue
		}
		got, err := metrics.Extract([]byte(l))
		if errors.Is(err, metrics.ErrNotEMF) {
			lines, data = append(lines, m), append(data, nil)
			continue
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, l)
		}
		values := map[string]float64{}
		for _, d := range got {
			if d.Namespace != "WxRedpack" || len(d.Values) != 1 || d.Time.Before(from.Truncate(time.Millisecond)) || d.Time.After(to) {
				t.Errorf("datum %+v: want one value in WxRedpack between %v and %v", d, from, to)
			}
			unit := metrics.UnitCount
			if d.Name == "OldestUnsettledAgeSeconds" {
				unit = metrics.UnitSeconds
			}
			if d.Unit != unit {
				t.Errorf("%s in %q, want %s", d.Name, d.Unit, unit)
			}
			var dims []string
			for _, k := range slices.Sorted(maps.Keys(d.Dimensions)) {
				dims = append(dims, k+"="+d.Dimensions[k])
			}
			values[d.Name+"{"+strings.Join(dims, ",")+"}"] = d.Values[0]
		}
		lines, data = append(lines, m), append(data, values)
	}
	return lines, data
}

// sendData is what a sendmini request line carries: Sends by Function,
// Api and Outcome and by Function (unless replayed), and Replays,
// Conflicts and Unknowns by Function.
func sendData(outcome string, replays, conflicts, unknowns float64) map[string]float64 {
	m := map[string]float64{
		"Replays{Function=sendmini}":   replays,
		"Conflicts{Function=sendmini}": conflicts,
		"Unknowns{Function=sendmini}":  unknowns,
	}
	if outcome != "" {
		m["Sends{Api=sendminiprogramhb,Function=sendmini,Outcome="+outcome+"}"] = 1
		m["Sends{Function=sendmini}"] = 1
	}
	return m
}

// TestSendMetrics: each request through a sendmini handler with a memory
// ledger writes exactly one request line, its fields as before, and the
// line carries the request's EMF metrics: a success, a WeChat refusal and
// an unknown outcome count in Sends by outcome (Unknowns too), a replay in
// Replays only, a conflict in Sends (failed) and Conflicts; an invalid
// request carries none. Through every source. A query's line carries
// none.
func TestSendMetrics(t *testing.T) {
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			mem := ledger.NewMemory()
			w, _ := ledgerWorld(t, mem)
			w.settings.MaxAttempts = 1 // one try: the fault decides the outcome
			h := w.handler(handler.SendMini)
			query := w.handler(handler.Query)
			paid, unknown, refused := "EMFPAID"+strings.ToUpper(source), "EMFUNKNOWN"+strings.ToUpper(source), "EMFREFUSED"+strings.ToUpper(source)
			w.sim.FailBillno(unknown, wxpaytest.Fault{Kind: wxpaytest.FaultSystemError})
			w.sim.FailBillno(refused, wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"})
			for _, tc := range []struct {
				name, body, billno, outcome, errCode string
				want                                 map[string]float64 // nil: no metrics
			}{
				{"success", validMini(paid, nil), paid, "success", "", sendData("success", 0, 0, 0)},
				{"invalid request", validMini("EMFINVALID1", map[string]any{"total_amount": 1}), "EMFINVALID1", "failed", "INVALID_REQUEST", nil},
				{"refused by WeChat", validMini(refused, nil), refused, "failed", "NOTENOUGH", sendData("failed", 0, 0, 0)},
				{"unknown", validMini(unknown, nil), unknown, "unknown", "SYSTEMERROR", sendData("unknown", 0, 0, 1)},
				{"replay", validMini(paid, nil), paid, "success", "", sendData("", 1, 0, 0)},
				{"conflict", validMini(paid, map[string]any{"total_amount": 150}), paid, "failed", "BILLNO_CONFLICT", sendData("failed", 0, 1, 0)},
			} {
				before := len(w.logs.String())
				start := time.Now()
				invoke(t, h, eventFor(t, source, "POST", "/redpacks/mini", tc.body))
				lines, data := emfLines(t, w.logs.String()[before:], "request", start, time.Now())
				if len(lines) != 1 {
					t.Errorf("%s: %d request lines, want 1", tc.name, len(lines))
					continue
				}
				l := lines[0]
				if l["function"] != "sendmini" || l["api"] != "sendminiprogramhb" || l["mch_billno"] != tc.billno || l["outcome"] != tc.outcome ||
					l["err_code"] != tc.errCode || l["re_openid"] != handler.MaskOpenID(openID) || l["latency_ms"] == nil || l["status"] == nil || l["attempts"] == nil {
					t.Errorf("%s: request line %v", tc.name, l)
				}
				if !maps.Equal(data[0], tc.want) || (tc.want == nil) != (data[0] == nil) {
					t.Errorf("%s: metrics\n%v\nwant\n%v", tc.name, data[0], tc.want)
				}
				if tc.want != nil && (l["Function"] != "sendmini" || l["_aws"] == nil) {
					t.Errorf("%s: no Function dimension or _aws member: %v", tc.name, l)
				}
			}
			if n := w.sim.Payments(paid); n != 1 {
				t.Errorf("paid %d times", n)
			}

			before := len(w.logs.String())
			invoke(t, query, []byte(`{"mch_billno":"`+paid+`","appid":"wx8888888888888888"}`))
			if _, data := emfLines(t, w.logs.String()[before:], "request", time.Now(), time.Now()); len(data) != 1 || data[0] != nil {
				t.Errorf("query: metrics %v, want one line without", data)
			}
		})
	}
}

// TestReconcileMetricsLines: through the reconciler function's handler, a
// pass's invocation line carries NeedsAttention and the gauges
// UnknownOverOneHour and OldestUnsettledAgeSeconds, and each distinct
// move has a line "reconcile: transitions" with Transitions by From and
// To; the check of one billno carries no gauge; a refused invocation no
// metrics.
func TestReconcileMetricsLines(t *testing.T) {
	w := newRCWorld(t)
	sent := time.Now()
	w.sendUnknown(t, "RCEMF0001", wxpaytest.FaultSystemErrorAfterPay)
	w.sendUnknown(t, "RCEMF0002", wxpaytest.FaultSystemError)
	w.advance(2 * time.Hour)

	before := len(w.logs.String())
	start := time.Now()
	if s := w.reconcile(t, `{}`); rcCount(s, "checked") != 2 || rcCount(s, "settled") != 1 {
		t.Fatalf("pass: %v", s)
	}
	logs := w.logs.String()[before:]
	lines, data := emfLines(t, logs, "reconcile", start, time.Now())
	if len(lines) != 1 || data[0] == nil {
		t.Fatalf("%d invocation lines, metrics %v:\n%s", len(lines), data, logs)
	}
	age := data[0]["OldestUnsettledAgeSeconds{}"]
	if lo, hi := (2 * time.Hour).Seconds(), (2*time.Hour + time.Since(sent)).Seconds(); age < lo || age > hi+0.001 {
		t.Errorf("OldestUnsettledAgeSeconds %v, want between %v and %v", age, lo, hi)
	}
	delete(data[0], "OldestUnsettledAgeSeconds{}")
	if want := map[string]float64{"NeedsAttention{}": 0, "UnknownOverOneHour{}": 2}; !maps.Equal(data[0], want) {
		t.Errorf("invocation line metrics %v, want %v and the age", data[0], want)
	}
	if lines[0]["checked"] != 2.0 || lines[0]["function"] != "reconcile" || lines[0]["needs_attention"] != 0.0 {
		t.Errorf("invocation line %v", lines[0])
	}
	lines, data = emfLines(t, logs, "reconcile: transitions", start, time.Now())
	if len(lines) != 1 || !maps.Equal(data[0], map[string]float64{"Transitions{From=UNKNOWN,To=SENT}": 1}) || lines[0]["function"] != "reconcile" {
		t.Errorf("transition lines %v, metrics %v; want UNKNOWN to SENT once", lines, data)
	}

	// The operator's check sends the billno WeChat has no record of
	// again: its move, no gauge.
	w.advance(10 * time.Minute)
	before = len(w.logs.String())
	start = time.Now()
	w.reconcile(t, `{"mch_billno": "RCEMF0002"}`)
	logs = w.logs.String()[before:]
	if _, data = emfLines(t, logs, "reconcile", start, time.Now()); len(data) != 1 || !maps.Equal(data[0], map[string]float64{"NeedsAttention{}": 0}) {
		t.Errorf("check: invocation metrics %v, want NeedsAttention only:\n%s", data, logs)
	}
	if _, data = emfLines(t, logs, "reconcile: transitions", start, time.Now()); len(data) != 1 || !maps.Equal(data[0], map[string]float64{"Transitions{From=UNKNOWN,To=SENT}": 1}) {
		t.Errorf("check: transition metrics %v, want UNKNOWN to SENT:\n%s", data, logs)
	}

	// A refused invocation: no metrics.
	before = len(w.logs.String())
	w.reconcile(t, `{"mch_billno": 12}`)
	if lines, data = emfLines(t, w.logs.String()[before:], "reconcile", time.Now(), time.Now()); len(data) != 1 || data[0] != nil {
		t.Errorf("refused: %v, want one line without metrics", lines)
	}
}
