package functions_test

// Helpers of the end-to-end tests and benchmarks: building the bootstraps,
// the simulator and Secrets Manager fake they talk to, a running bootstrap
// behind the Runtime API stand-in, events and answers.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/runtimeapi"
	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

const (
	// moduleRoot is where go.mod is, seen from this package's directory
	// (go test runs in it).
	moduleRoot = ".."
	// secretID is the secret the bootstraps are configured with.
	secretID = "wxpay/e2e"
	// fnTimeout is the function's configured timeout: the deadline the
	// bootstrap sees for each invocation.
	fnTimeout = 15 * time.Second
	// invokeWait bounds how long a test waits for one answer.
	invokeWait = 30 * time.Second
)

// functionNames are the four functions, as named under functions/ and
// events/.
var functionNames = []string{"sendgroup", "sendmini", "send", "query"}

// bootstrapNames are the bootstraps bootstraps builds: the four functions
// and the reconciler (functions/reconcile, which has no sample events).
var bootstrapNames = append(slices.Clone(functionNames), "reconcile")

// binDir is the temporary directory the bootstraps are built into,
// removed by TestMain.
var binDir struct {
	once sync.Once
	path string
	err  error
}

func buildDir() (string, error) {
	binDir.once.Do(func() {
		binDir.path, binDir.err = os.MkdirTemp("", "wxredpack-bootstraps-")
	})
	return binDir.path, binDir.err
}

func removeBuildDir() {
	if binDir.path != "" {
		_ = os.RemoveAll(binDir.path)
	}
}

var builds struct {
	once sync.Once
	bins map[string]string
	err  error
}

// oneBuild is a command built at most once per test binary.
type oneBuild struct {
	once sync.Once
	path string
	err  error
}

// get builds pkg (the first time) into the bootstraps' temporary
// directory, as runtimeapi.Build builds for Lambda, and returns its path.
func (b *oneBuild) get(tb testing.TB, pkg string) string {
	tb.Helper()
	skipShort(tb)
	b.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			b.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		b.path, b.err = runtimeapi.Build(ctx, moduleRoot, pkg, dir)
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

var helloBuild, simBuild oneBuild

// skipShort skips end-to-end tests and benchmarks under -short: they
// build and run real binaries.
func skipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end: builds and runs the bootstrap binaries; skipped with -short")
	}
}

// bootstraps builds the bootstraps (bootstrapNames) once per test binary,
// in parallel, as the Makefile does but for this machine
// (runtimeapi.Build), and returns their paths by function name.
func bootstraps(tb testing.TB) map[string]string {
	tb.Helper()
	skipShort(tb)
	builds.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			builds.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			errs []error
		)
		bins := make(map[string]string, len(bootstrapNames))
		for _, name := range bootstrapNames {
			wg.Go(func() {
				path, err := runtimeapi.Build(ctx, moduleRoot, "./functions/"+name, dir)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				bins[name] = path
			})
		}
		wg.Wait()
		builds.bins, builds.err = bins, errors.Join(errs...)
		tb.Logf("built %d bootstraps in %v", len(bins), time.Since(start).Round(time.Millisecond))
	})
	if builds.err != nil {
		tb.Fatal(builds.err)
	}
	return builds.bins
}

// helloBootstrap builds internal/hellobootstrap, the cold-start baseline,
// the same way.
func helloBootstrap(tb testing.TB) string {
	tb.Helper()
	return helloBuild.get(tb, "./internal/hellobootstrap")
}

// stack is what a function talks to: the WeChat Pay simulator and the
// Secrets Manager fake holding the simulator's merchant as secretID.
type stack struct {
	sim      *wxpaytest.Server
	sm       *smtest.Server
	merchant *wxpaytest.MerchantFiles
	caFile   string
	// smURL is the Secrets Manager endpoint the functions are given
	// (sm's own unless a benchmark puts a front in).
	smURL string
}

func newStack(tb testing.TB, opts ...wxpaytest.Option) *stack {
	tb.Helper()
	sim := wxpaytest.NewServer(opts...)
	tb.Cleanup(sim.Close)
	sm := smtest.NewServer()
	tb.Cleanup(sm.Close)
	m := sim.Merchant()
	sm.Put(secretID, string(m.SecretJSON()))
	caFile := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, sim.CAPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return &stack{sim: sim, sm: sm, merchant: m, caFile: caFile, smURL: sm.URL()}
}

// env is a bootstrap's environment against this stack, as a deployed
// function's plus the endpoint overrides sam local invoke would pass;
// extra entries win over the defaults (the last of a repeated key counts).
func (s *stack) env(extra ...string) []string {
	env := []string{
		"WXPAY_SECRET_ID=" + secretID,
		"WXPAY_BASE_URL=" + s.sim.URL,
		"WXPAY_BACKUP_BASE_URL=" + s.sim.BackupURL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + s.smURL,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"SSL_CERT_FILE=" + s.caFile,
		"AWS_LAMBDA_LOG_LEVEL=INFO",
	}
	return append(env, extra...)
}

// secrets are strings no process output may contain.
func (s *stack) secrets() []string {
	return []string{s.merchant.APIKey, "PRIVATE KEY", "BEGIN CERTIFICATE"}
}

// proc is one bootstrap process behind its own Runtime API, with what
// was invoked, for the log checks.
type proc struct {
	name    string
	rt      *runtimeapi.Server
	p       *runtimeapi.Process
	invs    []invocation
	out     string
	stopped bool
}

// invocation is one Invoke: the request id the Runtime API gave it and
// the request log lines it must produce.
type invocation struct {
	id    string
	lines []logLine
}

// logLine is what a request log line says of one request.
type logLine struct {
	billno, outcome string
}

// anyBillno in a logLine matches any mch_billno: an invalid request may
// not have a readable one.
const anyBillno = "*"

func startProc(tb testing.TB, name, bin string, env []string) *proc {
	tb.Helper()
	rt, err := runtimeapi.Start()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := rt.StartProcess(bin, env)
	if err != nil {
		rt.Close()
		tb.Fatal(err)
	}
	pr := &proc{name: name, rt: rt, p: p}
	tb.Cleanup(func() { pr.stop() })
	return pr
}

// invoke sends one event and returns the answer; lines are the request
// log lines the invocation must write.
func (p *proc) invoke(tb testing.TB, payload []byte, lines ...logLine) runtimeapi.Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), invokeWait)
	defer cancel()
	r, err := p.rt.Invoke(ctx, payload, fnTimeout)
	if err != nil {
		tb.Fatalf("%s: %v\noutput:\n%s", p.name, err, p.p.Output())
	}
	if r.Err != nil {
		tb.Fatalf("%s: invocation error %v (the handler must answer every event)\noutput:\n%s", p.name, r.Err, p.p.Output())
	}
	if r.RequestID == "" {
		tb.Fatalf("%s: no request id in the result", p.name)
	}
	p.invs = append(p.invs, invocation{id: r.RequestID, lines: lines})
	return r
}

// stop ends the process (once) and returns everything it wrote; Stop
// waits for the process, so the output is complete.
func (p *proc) stop() string {
	if !p.stopped {
		p.stopped = true
		p.p.Stop()
		_ = p.rt.Close()
		p.out = p.p.Output()
	}
	return p.out
}

// checkOutput stops p and checks what it wrote: every line is a JSON
// object; every line with a requestId names one of the invocations; each
// invocation wrote exactly its request lines (billno and outcome), with
// its own requestId; and no secret appears anywhere.
func checkOutput(tb testing.TB, p *proc, secrets ...string) {
	tb.Helper()
	out := p.stop()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			tb.Errorf("%s: output contains %q", p.name, redact(s))
		}
	}
	ids := make(map[string]bool, len(p.invs))
	for _, inv := range p.invs {
		ids[inv.id] = true
	}
	got := make(map[string][]logLine)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		n++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Errorf("%s: output line is not JSON: %s", p.name, line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				tb.Errorf("%s: log line without %q: %s", p.name, k, line)
			}
		}
		id, hasID := rec["requestId"].(string)
		if hasID && !ids[id] {
			tb.Errorf("%s: log line with requestId %q, which the Runtime API never issued: %s", p.name, id, line)
		}
		if rec["msg"] != "request" {
			continue
		}
		if !hasID {
			tb.Errorf("%s: request line without requestId: %s", p.name, line)
			continue
		}
		billno, _ := rec["mch_billno"].(string)
		outcome, _ := rec["outcome"].(string)
		got[id] = append(got[id], logLine{billno: billno, outcome: outcome})
	}
	if n == 0 && len(p.invs) > 0 {
		tb.Errorf("%s: no output at all after %d invocations", p.name, len(p.invs))
	}
	for _, inv := range p.invs {
		have := slices.Clone(got[inv.id])
		var missing []logLine
		for _, w := range inv.lines {
			i := slices.IndexFunc(have, func(h logLine) bool {
				return (w.billno == anyBillno || h.billno == w.billno) && h.outcome == w.outcome
			})
			if i < 0 {
				missing = append(missing, w)
				continue
			}
			have = slices.Delete(have, i, i+1)
		}
		if len(missing) > 0 || len(have) > 0 {
			tb.Errorf("%s: invocation %s: request log lines %+v; missing %+v, unexpected %+v", p.name, inv.id, got[inv.id], missing, have)
		}
	}
}

// redact shows a secret only by its length and ends, in a failure message.
func redact(s string) string {
	if len(s) <= 8 {
		return s
	}
	return fmt.Sprintf("%s...%s (%d bytes)", s[:2], s[len(s)-2:], len(s))
}

// eventPath is a sample event's path.
func eventPath(fn, file string) string { return filepath.Join(moduleRoot, "events", fn, file) }

func readEvent(tb testing.TB, fn, file string) []byte {
	tb.Helper()
	b, err := os.ReadFile(eventPath(fn, file))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// eventFiles are the sample events of fn, sorted (the SQS batch last).
func eventFiles(tb testing.TB, fn string) []string {
	tb.Helper()
	m, err := filepath.Glob(eventPath(fn, "*.json"))
	if err != nil || len(m) == 0 {
		tb.Fatalf("no events for %s: %v", fn, err)
	}
	files := make([]string, len(m))
	for i, p := range m {
		files[i] = filepath.Base(p)
	}
	slices.Sort(files)
	return files
}

// Event shapes, told apart by the sample's file name.
const (
	kindAPIGW  = "apigw"
	kindSQS    = "sqs"
	kindDirect = "direct"
)

func kindOf(file string) string {
	switch {
	case strings.HasPrefix(file, "apigw-"):
		return kindAPIGW
	case strings.HasPrefix(file, "sqs"):
		return kindSQS
	}
	return kindDirect
}

// eventRequest is one request an event carries.
type eventRequest struct {
	messageID string // SQS records only
	fields    map[string]any
}

func (r eventRequest) str(key string) string {
	s, _ := r.fields[key].(string)
	return s
}

func (r eventRequest) billno() string { return r.str("mch_billno") }

// requestsIn returns the requests in an event of any shape.
func requestsIn(tb testing.TB, payload []byte) []eventRequest {
	tb.Helper()
	var env struct {
		RequestContext        json.RawMessage   `json:"requestContext"`
		Body                  *string           `json:"body"`
		IsBase64Encoded       bool              `json:"isBase64Encoded"`
		PathParameters        map[string]string `json:"pathParameters"`
		QueryStringParameters map[string]string `json:"queryStringParameters"`
		Records               []struct {
			MessageID string `json:"messageId"`
			Body      string `json:"body"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		tb.Fatalf("event: %v", err)
	}
	object := func(b []byte) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			tb.Fatalf("event request: %v: %s", err, b)
		}
		return m
	}
	switch {
	case len(env.Records) > 0:
		reqs := make([]eventRequest, len(env.Records))
		for i, rec := range env.Records {
			reqs[i] = eventRequest{messageID: rec.MessageID, fields: object([]byte(rec.Body))}
		}
		return reqs
	case env.RequestContext != nil && env.PathParameters["mch_billno"] != "":
		return []eventRequest{{fields: map[string]any{
			"mch_billno": env.PathParameters["mch_billno"], "appid": env.QueryStringParameters["appid"],
		}}}
	case env.RequestContext != nil:
		if env.Body == nil {
			tb.Fatalf("API Gateway event without a body")
		}
		b := []byte(*env.Body)
		if env.IsBase64Encoded {
			var err error
			if b, err = base64.StdEncoding.DecodeString(*env.Body); err != nil {
				tb.Fatal(err)
			}
		}
		return []eventRequest{{fields: object(b)}}
	}
	return []eventRequest{{fields: object(payload)}}
}

// answerBody is a function's JSON body, success and failure fields alike.
type answerBody struct {
	MchBillno   string             `json:"mch_billno"`
	MchID       string             `json:"mch_id"`
	WxAppID     string             `json:"wxappid"`
	ReOpenID    string             `json:"re_openid"`
	TotalAmount int64              `json:"total_amount"`
	SendListID  string             `json:"send_listid"`
	Package     string             `json:"package"`
	JSAPI       *wxpay.JSAPIParams `json:"jsapi"`
	DetailID    string             `json:"detail_id"`
	Status      string             `json:"status"`
	Error       *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Outcome   string `json:"outcome"`
		Retryable bool   `json:"retryable"`
		Field     string `json:"field"`
	} `json:"error"`
}

// listID is the red packet's WeChat number: send_listid, or a query's
// detail_id.
func (b answerBody) listID() string {
	if b.SendListID != "" {
		return b.SendListID
	}
	return b.DetailID
}

// decodeAnswer reads an API Gateway (status > 0) or direct (status 0)
// answer.
func decodeAnswer(tb testing.TB, kind string, payload []byte) (int, answerBody) {
	tb.Helper()
	raw := payload
	status := 0
	if kind == kindAPIGW {
		var resp struct {
			StatusCode      int               `json:"statusCode"`
			Headers         map[string]string `json:"headers"`
			Body            string            `json:"body"`
			IsBase64Encoded bool              `json:"isBase64Encoded"`
		}
		if err := json.Unmarshal(payload, &resp); err != nil {
			tb.Fatalf("API Gateway answer: %v: %s", err, payload)
		}
		if resp.IsBase64Encoded {
			tb.Errorf("API Gateway answer is base64-encoded: %s", payload)
		}
		if ct := resp.Headers["Content-Type"]; ct != "application/json" {
			tb.Errorf("Content-Type %q, want application/json", ct)
		}
		status, raw = resp.StatusCode, []byte(resp.Body)
	}
	var body answerBody
	if err := json.Unmarshal(raw, &body); err != nil {
		tb.Fatalf("answer body is not JSON: %v: %s", err, raw)
	}
	return status, body
}

// decodeBatch reads an SQS batch answer's failed message ids.
func decodeBatch(tb testing.TB, payload []byte) []string {
	tb.Helper()
	var resp struct {
		BatchItemFailures *[]struct {
			ItemIdentifier string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		tb.Fatalf("SQS answer: %v: %s", err, payload)
	}
	if resp.BatchItemFailures == nil {
		tb.Fatalf("SQS answer without batchItemFailures: %s", payload)
	}
	ids := []string{}
	for _, f := range *resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// verifyJSAPI checks a sendmini answer's wx.sendBizRedPacket parameters:
// the URL-encoded package, MD5, and a paySign recomputed with the key.
func verifyJSAPI(tb testing.TB, body answerBody, appID, apiKey string) {
	tb.Helper()
	j := body.JSAPI
	if j == nil {
		tb.Errorf("%s: sendmini answer without jsapi", body.MchBillno)
		return
	}
	if body.Package == "" || j.Package != wxpay.EncodeURIComponent(body.Package) {
		tb.Errorf("%s: jsapi.package %q, want the URL-encoded package %q", body.MchBillno, j.Package, body.Package)
	}
	if j.SignType != "MD5" || j.NonceStr == "" || j.TimeStamp == "" {
		tb.Errorf("%s: jsapi %+v: want signType MD5, a nonceStr and a timeStamp", body.MchBillno, *j)
	}
	if sec, err := strconv.ParseInt(j.TimeStamp, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		tb.Errorf("%s: jsapi.timeStamp %q is not the current Unix time in seconds", body.MchBillno, j.TimeStamp)
	}
	if want := wxpay.PaySign(appID, *j, j.Package, apiKey); j.PaySign != want {
		tb.Errorf("%s: paySign %s does not verify (want %s over the encoded package)", body.MchBillno, j.PaySign, want)
	}
}

// restEvent returns fn's REST API sample event with body as its JSON body.
func restEvent(tb testing.TB, fn string, body map[string]any) []byte {
	tb.Helper()
	var ev map[string]any
	if err := json.Unmarshal(readEvent(tb, fn, "apigw-rest.json"), &ev); err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	ev["body"] = string(b)
	ev["isBase64Encoded"] = false
	return mustJSON(tb, ev)
}

// queryEvent returns the query function's REST sample event for billno.
func queryEvent(tb testing.TB, billno string) []byte {
	tb.Helper()
	var ev map[string]any
	if err := json.Unmarshal(readEvent(tb, "query", "apigw-rest.json"), &ev); err != nil {
		tb.Fatal(err)
	}
	ev["path"] = "/redpacks/" + billno
	ev["pathParameters"] = map[string]any{"mch_billno": billno}
	return mustJSON(tb, ev)
}

// sqsEvent returns fn's SQS sample event holding one record per body,
// with the given message ids.
func sqsEvent(tb testing.TB, fn string, ids []string, bodies []map[string]any) []byte {
	tb.Helper()
	var ev struct {
		Records []map[string]any `json:"Records"`
	}
	if err := json.Unmarshal(readEvent(tb, fn, "sqs.json"), &ev); err != nil {
		tb.Fatal(err)
	}
	tmpl := ev.Records[0]
	records := make([]map[string]any, len(bodies))
	for i, body := range bodies {
		rec := make(map[string]any, len(tmpl))
		for k, v := range tmpl {
			rec[k] = v
		}
		rec["messageId"] = ids[i]
		rec["body"] = string(mustJSON(tb, body))
		delete(rec, "md5OfBody")
		records[i] = rec
	}
	return mustJSON(tb, map[string]any{"Records": records})
}

// directRequest is fn's direct sample request with billno, plus extra
// fields.
func directRequest(tb testing.TB, fn, billno string, extra map[string]any) map[string]any {
	tb.Helper()
	var req map[string]any
	if err := json.Unmarshal(readEvent(tb, fn, "direct.json"), &req); err != nil {
		tb.Fatal(err)
	}
	req["mch_billno"] = billno
	for k, v := range extra {
		req[k] = v
	}
	return req
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seedRecord sends a normal red packet with the simulator's own client, so
// that the query function has a record to read; it returns the send's
// result.
func seedRecord(tb testing.TB, st *stack, billno string) *wxpay.SendResult {
	tb.Helper()
	var req wxpay.SendRequest
	if err := json.Unmarshal(readEvent(tb, "send", "direct.json"), &req); err != nil {
		tb.Fatal(err)
	}
	req.MchBillno = billno
	c, err := st.sim.NewClient()
	if err != nil {
		tb.Fatal(err)
	}
	defer c.CloseIdleConnections()
	res, err := c.SendRedpack(context.Background(), &req)
	if err != nil {
		tb.Fatalf("seeding %s: %v", billno, err)
	}
	return res
}

// openIDs are the full re_openid values of the sample events, which no
// log may contain.
func openIDs(tb testing.TB) []string {
	tb.Helper()
	seen := map[string]bool{}
	for _, fn := range functionNames {
		for _, file := range eventFiles(tb, fn) {
			for _, r := range requestsIn(tb, readEvent(tb, fn, file)) {
				if id := r.str("re_openid"); id != "" {
					seen[id] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
