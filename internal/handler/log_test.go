package handler_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

// TestLogger: slog.JSONHandler's lines with the Lambda request id last, in
// groups too, at the configured level.
func TestLogger(t *testing.T) {
	at := time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.UTC)
	record := func() slog.Record {
		r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
		r.AddAttrs(slog.String("function", "sendmini"), slog.Int("status", 200), slog.Float64("latency_ms", 0.125))
		return r
	}
	withID := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	cases := []struct {
		name string
		ctx  context.Context
		with func(slog.Handler) slog.Handler
		want string
	}{
		{"request line", withID, nil,
			`{"time":"2026-11-23T08:00:00.123456789Z","level":"INFO","msg":"request","function":"sendmini","status":200,"latency_ms":0.125,"requestId":"req-1"}`},
		{"no Lambda context", context.Background(), nil,
			`{"time":"2026-11-23T08:00:00.123456789Z","level":"INFO","msg":"request","function":"sendmini","status":200,"latency_ms":0.125}`},
		{"attributes and a group", withID, func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("api", "x")}).WithGroup("g")
		},
			`{"time":"2026-11-23T08:00:00.123456789Z","level":"INFO","msg":"request","api":"x","g":{"function":"sendmini","status":200,"latency_ms":0.125,"requestId":"req-1"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			h := handler.NewLogger(&b, "info").Handler()
			if tc.with != nil {
				h = tc.with(h)
			}
			if err := h.Handle(tc.ctx, record()); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want+"\n" {
				t.Errorf("line\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		level          string
		debug, info, e bool
	}{{"DEBUG", true, true, true}, {"INFO", false, true, true}, {"ERROR", false, false, true}, {"nonsense", false, true, true}} {
		h := handler.NewLogger(&bytes.Buffer{}, tc.level).Handler()
		if h.Enabled(withID, slog.LevelDebug) != tc.debug || h.Enabled(withID, slog.LevelInfo) != tc.info || h.Enabled(withID, slog.LevelError) != tc.e {
			t.Errorf("%s logger: wrong levels enabled", tc.level)
		}
	}
}
