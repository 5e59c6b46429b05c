package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

const secretID = "wxpay/test"

// world is one simulated WeChat Pay, one Secrets Manager holding the
// merchant's secret, and the logs the handlers write.
type world struct {
	sim      *wxpaytest.Server
	sm       *smtest.Server
	logs     *syncBuffer
	settings handler.Settings
	// waits, when set before handler, is the Sleep of the handlers'
	// WeChat Pay clients (the wait between tries) and credential stores
	// (the wait before resending with rotated credentials), in place of
	// wxpay.Sleep, and the stores' clock.
	waits *waitLog
}

func newWorld(t testing.TB, opts ...wxpaytest.Option) *world {
	t.Helper()
	sim := wxpaytest.NewServer(opts...)
	t.Cleanup(sim.Close)
	sm := smtest.NewServer()
	t.Cleanup(sm.Close)
	sm.Put(secretID, string(sim.Merchant().SecretJSON()))
	cfg := sim.ClientConfig()
	return &world{
		sim:  sim,
		sm:   sm,
		logs: &syncBuffer{},
		settings: handler.Settings{
			BaseURL:     cfg.BaseURL,
			BackupURL:   cfg.BackupURL,
			RootCAs:     cfg.RootCAs,
			MaxAttempts: 3,
		},
	}
}

// handler builds op's handler as a function does at start-up, with a store
// reading the world's Secrets Manager through the real SDK client.
func (w *world) handler(op handler.Operation) *handler.Handler {
	logger := handler.NewLogger(w.logs, "DEBUG")
	cfg := credstore.Config{
		SecretID: secretID,
		SecretsManager: secretsmanager.New(secretsmanager.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(w.sm.URL()),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "test", Source: "test"}, nil
			}),
			RetryMaxAttempts: 1,
		}),
		NewClient: w.settings.NewClient,
		Logger:    logger,
	}
	if w.waits != nil {
		settings := w.settings
		settings.Sleep = w.waits.clientSleep
		cfg.NewClient = settings.NewClient
		cfg.Sleep = w.waits.storeSleep
		cfg.Now = w.waits.storeNow
	}
	return handler.New(op, credstore.New(cfg), w.settings, logger)
}

// waitLog records the waits of a world's clients and stores. With real
// set it also waits, as wxpay.Sleep does; otherwise a wait returns at
// once (with the context's error, if it has ended): the retry policy is
// checked on what it asked for, and a case's tries follow each other
// without a second of nothing in between. The stores' clock then stands
// still at the waitLog's creation, so that the wait before a resend is
// the whole of WeChat's second rather than what the refresh left of it
// (the store's TTL and quiet periods are minutes: a case never reaches
// them either way).
type waitLog struct {
	real   bool
	frozen time.Time

	mu     sync.Mutex
	client []time.Duration // between tries of one call
	store  []time.Duration // before a resend with rotated credentials
}

func newWaitLog(real bool) *waitLog { return &waitLog{real: real, frozen: time.Now()} }

func (l *waitLog) storeNow() time.Time {
	if l.real {
		return time.Now()
	}
	return l.frozen
}

func (l *waitLog) clientSleep(ctx context.Context, d time.Duration) error {
	return l.sleep(ctx, &l.client, d)
}

func (l *waitLog) storeSleep(ctx context.Context, d time.Duration) error {
	return l.sleep(ctx, &l.store, d)
}

func (l *waitLog) sleep(ctx context.Context, to *[]time.Duration, d time.Duration) error {
	l.mu.Lock()
	*to = append(*to, d)
	l.mu.Unlock()
	if l.real {
		return wxpay.Sleep(ctx, d)
	}
	return ctx.Err()
}

// waits returns the client and store waits so far.
func (l *waitLog) waits() (client, store []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.client), slices.Clone(l.store)
}

// invoke runs payload through h the way Lambda does (the production JSON
// path of aws-lambda-go) and returns the raw answer.
func invoke(t testing.TB, h *handler.Handler, payload []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := lambda.NewHandler(h).Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	return out
}

// reply is an answer reduced to what every source has: a status (200 for
// a direct invoke that succeeded, the error's for one that failed), a JSON
// body, and for SQS the reported message ids.
type reply struct {
	status   int
	body     map[string]any
	failures []string
}

func (r reply) errorField(key string) any {
	e, _ := r.body["error"].(map[string]any)
	return e[key]
}

// decodeReply reads an answer of the given source.
func decodeReply(t testing.TB, source string, out []byte) reply {
	t.Helper()
	var r reply
	switch source {
	case "rest", "http":
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("API Gateway answer %s: %v", out, err)
		}
		if resp.Headers["Content-Type"] != "application/json" {
			t.Errorf("Content-Type = %q", resp.Headers["Content-Type"])
		}
		r.status = resp.StatusCode
		mustJSON(t, []byte(resp.Body), &r.body)
	case "sqs":
		var resp events.SQSEventResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("SQS answer %s: %v", out, err)
		}
		if resp.BatchItemFailures == nil {
			t.Errorf("batchItemFailures missing in %s", out)
		}
		for _, f := range resp.BatchItemFailures {
			r.failures = append(r.failures, f.ItemIdentifier)
		}
	default:
		mustJSON(t, out, &r.body)
		r.status = 200
		if r.body["error"] != nil {
			r.status = -1 // a direct invoke carries no status
		}
	}
	return r
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
}

// eventFor wraps a request body in the shape of source.
func eventFor(t testing.TB, source, method, path string, body string) []byte {
	t.Helper()
	var ev any
	switch source {
	case "rest":
		ev = events.APIGatewayProxyRequest{
			Resource: path, Path: path, HTTPMethod: method, Body: body,
			RequestContext: events.APIGatewayProxyRequestContext{RequestID: "rest-1", HTTPMethod: method},
		}
	case "http":
		ev = events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: method + " " + path, RawPath: path, Body: body,
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				RequestID: "http-1",
				HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
			},
		}
	case "sqs":
		ev = events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", Body: body, EventSource: "aws:sqs"}}}
	default:
		return []byte(body)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readEvent reads a sample from events/.
func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requestsIn returns the request objects an event file carries.
func requestsIn(t testing.TB, payload []byte) []map[string]any {
	t.Helper()
	var probe struct {
		Records []struct {
			Body string `json:"body"`
		} `json:"Records"`
		Body            *string           `json:"body"`
		IsBase64Encoded bool              `json:"isBase64Encoded"`
		RequestContext  json.RawMessage   `json:"requestContext"`
		PathParameters  map[string]string `json:"pathParameters"`
		Query           map[string]string `json:"queryStringParameters"`
	}
	mustJSON(t, payload, &probe)
	var out []map[string]any
	switch {
	case probe.Records != nil:
		for _, r := range probe.Records {
			var m map[string]any
			mustJSON(t, []byte(r.Body), &m)
			out = append(out, m)
		}
	case probe.RequestContext != nil && probe.Body != nil:
		body := []byte(*probe.Body)
		if probe.IsBase64Encoded {
			var err error
			if body, err = decodeBase64(*probe.Body); err != nil {
				t.Fatal(err)
			}
		}
		var m map[string]any
		mustJSON(t, body, &m)
		out = append(out, m)
	case probe.RequestContext != nil:
		out = append(out, map[string]any{"mch_billno": probe.PathParameters["mch_billno"], "appid": probe.Query["appid"]})
	default:
		var m map[string]any
		mustJSON(t, payload, &m)
		out = append(out, m)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of an SQS
// batch's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log lines written so far.
func (b *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// assertNoSecrets fails if text holds any of the merchant's secret material.
func assertNoSecrets(t testing.TB, text string, m *wxpaytest.MerchantFiles) {
	t.Helper()
	needles := []string{m.APIKey, "PRIVATE KEY", "BEGIN CERTIFICATE"}
	for _, line := range strings.Split(string(m.KeyPEM), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			needles = append(needles, line)
		}
	}
	for _, n := range needles {
		if strings.Contains(text, n) {
			t.Errorf("secret material %.12q... found in output", n)
		}
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func lambdaInvoke(ctx context.Context, h *handler.Handler, payload []byte) ([]byte, error) {
	return lambda.NewHandler(h).Invoke(ctx, payload)
}
