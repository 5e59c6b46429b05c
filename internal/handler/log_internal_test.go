package handler

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// logBoth writes r through lineHandler and through a plain
// slog.JSONHandler given the request id as an attribute, and returns both
// lines.
func logBoth(t *testing.T, ctx context.Context, r slog.Record) (fast, want string) {
	t.Helper()
	var got, std bytes.Buffer
	logger := NewLogger(&got, "DEBUG")
	if err := logger.Handler().Handle(ctx, r.Clone()); err != nil {
		t.Fatal(err)
	}
	std2 := r.Clone()
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		std2.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	if err := slog.NewJSONHandler(&std, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(ctx, std2); err != nil {
		t.Fatal(err)
	}
	return got.String(), std.String()
}

var lineSeedStrings = []string{"", "request", "恭喜发财", "q\"b\\s/", "\b\f\n\r\t\x00\x1f", "<&>", "\u2028\u2029", "bad \xff utf-8"}

// FuzzLineHandlerMatchesJSONHandler: whatever lineHandler writes itself is
// what slog.JSONHandler writes, byte for byte.
func FuzzLineHandlerMatchesJSONHandler(f *testing.F) {
	for i, s := range lineSeedStrings {
		f.Add(s, "key", int64(i)-3, float64(i)*1.25, int64(1795420800123456789)+int64(i)*999999, i%5)
	}
	f.Add("m", "", int64(0), 1e21, int64(0), 0)
	f.Add("m", "k", int64(math.MaxInt64), 1e-7, int64(-1), 1)
	f.Add("m", "k", int64(math.MinInt64), math.Inf(1), int64(1), 2)
	f.Add("m", "k", int64(7), math.NaN(), int64(1e9), 3)
	f.Add("m", "k", int64(7), -0.001, int64(1e9), 4)
	f.Fuzz(func(t *testing.T, s, key string, n int64, x float64, nanos int64, variant int) {
		levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2}
		when := time.Unix(0, nanos).In(time.FixedZone("", (variant%3)*3600))
		r := slog.NewRecord(when, levels[(variant%5+5)%5], s, 0)
		r.AddAttrs(
			slog.String(key, s), slog.Int64("n", n), slog.Float64("x", x), slog.Bool("b", n%2 == 0),
			slog.Duration("d", time.Duration(n)), slog.Uint64("u", uint64(n)), slog.String("s", s),
		)
		if variant%8 == 7 {
			// Kinds left to slog.JSONHandler, now and then.
			r.AddAttrs(slog.Any("err", s), slog.Group("g", slog.String("k", s)))
		}
		ctx := context.Background()
		if variant%4 < 2 {
			ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: s})
		}
		fast, want := logBoth(t, ctx, r)
		if fast != want {
			t.Fatalf("lineHandler wrote\n%s\nslog.JSONHandler\n%s", fast, want)
		}
	})
}

// TestLineHandlerPaths: the request line takes the fast path; attributes
// and groups on the logger are honoured through slog.JSONHandler.
func TestLineHandlerPaths(t *testing.T) {
	r := slog.NewRecord(time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.UTC), slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("function", "sendmini"), slog.Int("status", 200), slog.Float64("latency_ms", 0.125))
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	var b bytes.Buffer
	h := NewLogger(&b, "INFO").Handler()
	line, ok := appendRecord(nil, r, true, "req-1")
	if !ok {
		t.Fatal("the request line was left to slog.JSONHandler")
	}
	const want = `{"time":"2026-11-23T08:00:00.123456789Z","level":"INFO","msg":"request","function":"sendmini","status":200,"latency_ms":0.125,"requestId":"req-1"}` + "\n"
	if string(line) != want {
		t.Errorf("line\n%s\nwant\n%s", line, want)
	}
	if err := h.WithAttrs([]slog.Attr{slog.String("api", "x")}).WithGroup("g").Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	const wantNested = `{"time":"2026-11-23T08:00:00.123456789Z","level":"INFO","msg":"request","api":"x","g":{"function":"sendmini","status":200,"latency_ms":0.125,"requestId":"req-1"}}` + "\n"
	if b.String() != wantNested {
		t.Errorf("nested line\n%s\nwant\n%s", b.String(), wantNested)
	}
	if h.Enabled(ctx, slog.LevelDebug) || !h.Enabled(ctx, slog.LevelInfo) {
		t.Error("INFO logger: wrong levels enabled")
	}
}
