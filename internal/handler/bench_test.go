package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// The project's performance targets, measured here and reported with
// b.ReportMetric (never asserted on time: CI machines vary):
//
//   - a warm invocation of each function through its handler (event in,
//     answer out, against the simulator over mutual TLS) costs at most
//     1.10x the floor, a bare http.Client POST of the same prepared bytes
//     on a kept-alive connection (BenchmarkWarmVsFloor's x-floor);
//   - an SQS batch of 10, with the simulator adding 50 ms to every call,
//     takes at most 1.5x one call (BenchmarkSQSBatch10's x-one-call);
//   - 1,000 warm invocations make no TLS handshake to WeChat and no
//     Secrets Manager call (TestWarmInvocationsReuse, a test).

// benchOps are the functions, in the order they are reported.
var benchOps = []handler.Operation{handler.SendGroup, handler.SendMini, handler.Send, handler.Query}

// unlimited lifts the per-user daily limits, so that thousands of red
// packets to the sample openids are not refused.
var unlimited = wxpaytest.WithLimits(wxpaytest.Limits{UserDailyCount: -1, UserDailyAmount: -1})

// warmFixture is one function's handler, warmed up, with its sample
// event, and the floor: the same request's signed bytes and a bare client.
type warmFixture struct {
	invoke  func(ctx context.Context) error // one invocation through the handler
	client  func(ctx context.Context) error // the same request through wxpay.Client alone
	floor   func() error                    // one bare POST of the prepared bytes
	payload []byte
}

// newWarmFixture prepares op in w: its apigw-rest sample (compacted), the handler
// warmed by one invocation, and the floor's request bytes, built by the
// same client code (BuildSendMini and the like) and posted by a plain
// http.Client on wxpay's keep-alive mutual TLS transport.
func newWarmFixture(tb testing.TB, w *world, op handler.Operation) *warmFixture {
	tb.Helper()
	// The sample as API Gateway delivers it: compact JSON.
	var compact bytes.Buffer
	if err := json.Compact(&compact, readEvent(tb, filepath.Join(op.Name(), "apigw-rest.json"))); err != nil {
		tb.Fatal(err)
	}
	payload := compact.Bytes()
	if op == handler.Query {
		// Something to read: the red packet the sendmini sample sends.
		send := w.handler(handler.SendMini)
		if r := decodeReply(tb, "rest", invoke(tb, send, readEvent(tb, filepath.Join("sendmini", "apigw-rest.json")))); r.status != 200 {
			tb.Fatalf("sendmini: %d %v", r.status, r.body)
		}
	}
	lh := lambda.NewHandler(w.handler(op))
	f := &warmFixture{payload: payload}
	f.invoke = func(ctx context.Context) error {
		out, err := lh.Invoke(ctx, payload)
		if err != nil {
			return err
		}
		// Status 200 appears in the first bytes of an API Gateway answer.
		if !bytes.Contains(out, []byte(`"statusCode":200`)) {
			return fmt.Errorf("answer %s", out)
		}
		return nil
	}

	client, err := w.sim.NewClient()
	if err != nil {
		tb.Fatal(err)
	}
	req := requestsIn(tb, payload)[0]
	raw, _ := json.Marshal(req)
	var body []byte
	var path string
	switch op {
	case handler.SendGroup:
		var r wxpay.SendGroupRequest
		mustJSON(tb, raw, &r)
		body, err = client.BuildSendGroup(&r)
		f.client = func(ctx context.Context) error { _, err := client.SendGroupRedpack(ctx, &r); return err }
		path = wxpay.PathSendGroupRedpack
	case handler.SendMini:
		var r wxpay.SendMiniRequest
		mustJSON(tb, raw, &r)
		body, err = client.BuildSendMini(&r)
		f.client = func(ctx context.Context) error { _, err := client.SendMiniProgramHB(ctx, &r); return err }
		path = wxpay.PathSendMiniProgramHB
	case handler.Send:
		var r wxpay.SendRequest
		mustJSON(tb, raw, &r)
		body, err = client.BuildSend(&r)
		f.client = func(ctx context.Context) error { _, err := client.SendRedpack(ctx, &r); return err }
		path = wxpay.PathSendRedpack
	case handler.Query:
		var r wxpay.QueryRequest
		mustJSON(tb, raw, &r)
		body, err = client.BuildQuery(&r)
		f.client = func(ctx context.Context) error { _, err := client.QueryRedpack(ctx, &r); return err }
		path = wxpay.PathGetHBInfo
	}
	if err != nil {
		tb.Fatal(err)
	}
	transport := wxpay.NewTransport(w.sim.Merchant().TLSCertificate(), w.sim.RootCAs(), 0)
	tb.Cleanup(transport.CloseIdleConnections)
	bare := &http.Client{Transport: transport}
	url := w.sim.URL + path
	f.floor = func() error {
		resp, err := bare.Post(url, "text/xml; charset=utf-8", bytes.NewReader(body))
		if err != nil {
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || !bytes.Contains(data, []byte("<result_code><![CDATA[SUCCESS]]></result_code>")) && !bytes.Contains(data, []byte("<result_code>SUCCESS</result_code>")) {
			return fmt.Errorf("floor answer %d %s", resp.StatusCode, data)
		}
		return nil
	}

	// Warm both paths: credentials fetched, connections open.
	ctx := context.Background()
	if err := f.invoke(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := f.floor(); err != nil {
		tb.Fatal(err)
	}
	return f
}

// BenchmarkWarmInvoke is one warm invocation of each function through its
// handler: the apigw-rest sample in, the API Gateway answer out. A repeat
// of the sample's billno is answered from WeChat's ledger, as a retried
// request is.
func BenchmarkWarmInvoke(b *testing.B) {
	for _, op := range benchOps {
		b.Run(op.Name(), func(b *testing.B) {
			w := newWorld(b, unlimited)
			f := newWarmFixture(b, w, op)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := f.invoke(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFloor is the floor: the same request's prepared bytes POSTed by
// a bare http.Client on a kept-alive mutual TLS connection.
func BenchmarkFloor(b *testing.B) {
	for _, op := range benchOps {
		b.Run(op.Name(), func(b *testing.B) {
			w := newWorld(b, unlimited)
			f := newWarmFixture(b, w, op)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := f.floor(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWarmVsFloor measures in one run, interleaved in short rounds
// so that the machine's noise falls on all alike (and each runs warm, as in
// a Lambda execution environment): invocations through the handler, the
// same request through wxpay.Client alone, and the floor. It reports each
// one's time per operation, the invocation's ratio to the floor, x-floor
// (target: at most 1.10), and the client's, client-x-floor, which splits
// the difference between the client and the handler.
func BenchmarkWarmVsFloor(b *testing.B) {
	const round = 10
	for _, op := range benchOps {
		b.Run(op.Name(), func(b *testing.B) {
			w := newWorld(b, unlimited)
			f := newWarmFixture(b, w, op)
			ctx := context.Background()
			var warm, client, floor time.Duration
			timed := func(total *time.Duration, call func() error) {
				start := time.Now()
				for range round {
					if err := call(); err != nil {
						b.Fatal(err)
					}
				}
				*total += time.Since(start)
			}
			n := 0
			for b.Loop() {
				timed(&floor, f.floor)
				timed(&client, func() error { return f.client(ctx) })
				timed(&warm, func() error { return f.invoke(ctx) })
				n += round
			}
			b.ReportMetric(float64(warm.Nanoseconds())/float64(n), "warm-ns/op")
			b.ReportMetric(float64(client.Nanoseconds())/float64(n), "client-ns/op")
			b.ReportMetric(float64(floor.Nanoseconds())/float64(n), "floor-ns/op")
			b.ReportMetric(float64(warm)/float64(floor), "x-floor")
			b.ReportMetric(float64(client)/float64(floor), "client-x-floor")
		})
	}
}

// BenchmarkSQSBatch10: an SQS batch of 10 records (10 red packets) while
// the simulator holds every request 50 ms before processing it, against
// one direct invocation under the same delay, alternately in one run. The
// records run in parallel (bounded by WXPAY_SQS_CONCURRENCY), so the batch
// should take about one call's time: x-one-call (target: at most 1.5).
func BenchmarkSQSBatch10(b *testing.B) {
	const delay = 50 * time.Millisecond
	slow := wxpaytest.Fault{Kind: wxpaytest.FaultNone, Delay: delay}
	w := newWorld(b, unlimited)
	lh := lambda.NewHandler(w.handler(handler.SendMini))
	ctx := context.Background()
	batchOf := func(prefix string) []byte {
		var sb strings.Builder
		sb.WriteString(`{"Records":[`)
		for i := range 10 {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, `{"messageId":"m-%d","body":%q,"eventSource":"aws:sqs"}`, i, validMini(fmt.Sprintf("%sR%d", prefix, i), nil))
		}
		sb.WriteString("]}")
		return []byte(sb.String())
	}
	runBatch := func(payload []byte) error {
		w.sim.ClearFaults()
		w.sim.FailNext(10, slow)
		out, err := lh.Invoke(ctx, payload)
		if err != nil {
			return err
		}
		if !bytes.Equal(out, []byte(`{"batchItemFailures":[]}`)) {
			return fmt.Errorf("batch answer %s; logs:\n%s", out, w.logs)
		}
		return nil
	}
	runOne := func(payload []byte) error {
		w.sim.ClearFaults()
		w.sim.FailNext(1, slow)
		out, err := lh.Invoke(ctx, payload)
		if err != nil {
			return err
		}
		if bytes.Contains(out, []byte(`"error"`)) {
			return fmt.Errorf("answer %s", out)
		}
		return nil
	}
	// Warm up: credentials, and the ten connections a batch runs on.
	if err := runBatch(batchOf("WARMBATCH")); err != nil {
		b.Fatal(err)
	}
	if err := runOne([]byte(validMini("ONEWARM", nil))); err != nil {
		b.Fatal(err)
	}
	var batch, one time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		batchPayload, onePayload := batchOf(fmt.Sprintf("BATCH%d", i)), []byte(validMini(fmt.Sprintf("ONE%d", i), nil))
		b.StartTimer()
		start := time.Now()
		if err := runBatch(batchPayload); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := runOne(onePayload); err != nil {
			b.Fatal(err)
		}
		batch += mid.Sub(start)
		one += time.Since(mid)
	}
	n := float64(b.N)
	b.ReportMetric(float64(batch.Nanoseconds())/n, "batch-ns/op")
	b.ReportMetric(float64(one.Nanoseconds())/n, "one-call-ns/op")
	b.ReportMetric(float64(batch)/float64(one), "x-one-call")
}

// TestWarmInvocationsReuse: per 1,000 warm invocations (all four
// functions, every one a new red packet or a query), no new TLS handshake
// to WeChat and no Secrets Manager call.
func TestWarmInvocationsReuse(t *testing.T) {
	const n = 1000
	w := newWorld(t, unlimited)
	type fn struct {
		h    *handler.Handler
		base map[string]any // the function's sample request
	}
	fns := make(map[string]fn)
	for _, op := range benchOps {
		f := fn{h: w.handler(op)}
		f.base = requestsIn(t, readEvent(t, filepath.Join(op.Name(), "direct.json")))[0]
		fns[op.Name()] = f
	}
	eventOf := func(name, billno string) []byte {
		f := fns[name]
		if name == "query" {
			path := "/redpacks/" + billno
			return []byte(fmt.Sprintf(`{"resource":"/redpacks/{mch_billno}","path":%q,"httpMethod":"GET","pathParameters":{"mch_billno":%q},"queryStringParameters":{"appid":"wx8888888888888888"},"requestContext":{"requestId":"q"},"body":null}`, path, billno))
		}
		req := make(map[string]any, len(f.base))
		for k, v := range f.base {
			req[k] = v
		}
		req["mch_billno"] = billno
		body, _ := json.Marshal(req)
		return eventFor(t, "rest", "POST", "/redpacks", string(body))
	}
	call := func(name, billno string) {
		t.Helper()
		r := decodeReply(t, "rest", invoke(t, fns[name].h, eventOf(name, billno)))
		if r.status != 200 {
			t.Fatalf("%s %s: %d %v", name, billno, r.status, r.body)
		}
	}
	// Warm up each function: one Secrets Manager call and one handshake
	// each (every function is its own execution environment).
	for _, name := range []string{"sendgroup", "sendmini", "send", "query"} {
		if name == "query" {
			call(name, "REUSEWARMsendmini")
		} else {
			call(name, "REUSEWARM"+name)
		}
	}
	handshakes, calls := w.sim.Handshakes(), w.sm.Calls()
	paid := w.sim.TotalPayments()
	names := []string{"sendgroup", "sendmini", "send", "query"}
	prefix := map[string]string{"sendgroup": "REUSEG", "sendmini": "REUSEM", "send": "REUSES"}
	for i := range n {
		name := names[i%len(names)]
		billno := fmt.Sprintf("%s%d", prefix[name], i)
		if name == "query" {
			billno = fmt.Sprintf("REUSES%d", i-1) // the send of the previous iteration
		}
		call(name, billno)
	}
	if d := w.sim.Handshakes() - handshakes; d != 0 {
		t.Errorf("%d warm invocations made %d new TLS handshakes to WeChat, want 0", n, d)
	}
	if d := w.sm.Calls() - calls; d != 0 {
		t.Errorf("%d warm invocations made %d Secrets Manager calls, want 0", n, d)
	}
	if d := w.sim.TotalPayments() - paid; d != n*3/4 {
		t.Errorf("%d red packets paid, want %d", d, n*3/4)
	}
	assertNoSecrets(t, w.logs.String(), w.sim.Merchant())
}
