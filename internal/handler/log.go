package handler

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/redpacket-lambda/wxredpack/internal/metrics"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// NewLogger returns the functions' logger: slog.JSONHandler's JSON lines on
// w at level, each with the Lambda request id when the context carries
// one. Level names are those of Lambda's log-level setting (DEBUG, INFO,
// WARN, ERROR).
func NewLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		lv = slog.LevelInfo
	}
	return slog.New(requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})})
}

// requestIDHandler adds the Lambda request id to every record whose
// context has one.
type requestIDHandler struct{ slog.Handler }

// Handle writes r with the attribute requestId, last, when ctx carries a
// Lambda context.
func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs returns a handler adding attrs to every record.
func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup returns a handler nesting later attributes under name.
func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// logAnswer writes the one line each request gets. It never includes the
// request body, credentials or the full openid. A send's line carries its
// CloudWatch metrics too (sendMetrics), in the Embedded Metric Format: a
// line below the log level carries none.
func (h *Handler) logAnswer(ctx context.Context, src Source, a answer, start time.Time) {
	level := slog.LevelInfo
	switch {
	case a.outcome == wxpay.OutcomeUnknown || a.status >= 500:
		level = slog.LevelError
	case a.outcome != wxpay.OutcomeSuccess:
		level = slog.LevelWarn
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	now := h.now()
	attrs := []slog.Attr{
		slog.String("function", h.op.Name()),
		slog.String("api", h.op.API()),
		slog.String("source", string(src)),
		slog.String("mch_billno", a.billno),
		slog.String("re_openid", MaskOpenID(a.openid)),
		slog.String("outcome", string(a.outcome)),
		slog.String("err_code", a.code),
		slog.Int("status", a.status),
		slog.Int("attempts", a.attempts),
		slog.Float64("latency_ms", float64(now.Sub(start).Microseconds())/1000),
	}
	if a.send {
		attrs = append(attrs, h.sendMetrics(a, now).Attrs()...)
	}
	h.log.LogAttrs(ctx, level, "request", attrs...)
}

// sendMetrics are the metrics of a send request's answer a, at now
// (namespace metrics.Namespace):
//
//   - Sends (Count) 1, by Function, Api and Outcome (success, failed,
//     unknown) and by Function: every send request answered, the send
//     path's refusals (BILLNO_CONFLICT, IN_PROGRESS, LEDGER_UNAVAILABLE)
//     and CONFIG_ERROR included, as failed; not a replay;
//   - Replays, Conflicts and Unknowns (Count), by Function: 1 when the
//     answer is a replay from the ledger, a BILLNO_CONFLICT, an unknown
//     outcome; else 0, so that each has a value for every send.
//
// An invalid request (INVALID_REQUEST) is not a send: its line has no
// metrics.
func (h *Handler) sendMetrics(a answer, now time.Time) metrics.Entry {
	byFunction := []string{metrics.DimFunction}
	e := metrics.Entry{Namespace: metrics.Namespace, Time: now, Dimensions: []metrics.Dimension{{Name: metrics.DimFunction, Value: h.op.Name()}}}
	if !a.replayed {
		e.Dimensions = append(e.Dimensions,
			metrics.Dimension{Name: metrics.DimAPI, Value: h.op.API()},
			metrics.Dimension{Name: metrics.DimOutcome, Value: string(a.outcome)})
		e.Directives = append(e.Directives, metrics.Directive{
			Dimensions: [][]string{{metrics.DimFunction, metrics.DimAPI, metrics.DimOutcome}, byFunction},
			Metrics:    []metrics.Metric{metrics.Count(metrics.Sends, 1)},
		})
	}
	e.Directives = append(e.Directives, metrics.Directive{
		Dimensions: [][]string{byFunction},
		Metrics: []metrics.Metric{
			metrics.Count(metrics.Replays, one(a.replayed)),
			metrics.Count(metrics.Conflicts, one(a.code == payout.CodeBillnoConflict)),
			metrics.Count(metrics.Unknowns, one(a.outcome == wxpay.OutcomeUnknown)),
		},
	})
	return e
}

// one is 1 for true, 0 for false: a count of one event.
func one(b bool) int {
	if b {
		return 1
	}
	return 0
}

// MaskOpenID keeps the first and last four characters of an openid, enough
// to tell users apart in logs without recording who they are.
func MaskOpenID(openid string) string {
	if len(openid) <= 8 {
		return strings.Repeat("*", len(openid))
	}
	var b strings.Builder
	b.Grow(len(openid))
	b.WriteString(openid[:4])
	for range len(openid) - 8 {
		b.WriteByte('*')
	}
	b.WriteString(openid[len(openid)-4:])
	return b.String()
}
