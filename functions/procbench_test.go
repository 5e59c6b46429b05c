package functions_test

// BenchmarkProcessBoundary: the functions measured as Lambda runs them,
// every party in its own process. The WeChat Pay simulator and its fake
// Secrets Manager run as the standalone cmd/wxpaysim; the real bootstrap
// and the floor (internal/hellobootstrap) run under the Runtime API
// stand-in and reach the simulator over loopback.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/runtimeapi"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

const (
	// pbWarmBatch is how many warm invocations of the function, and then
	// of the floor, one round makes: short, so that a burst of the
	// machine's other work falls on both alike more often than not.
	pbWarmBatch = 50
	// pbRoundsPerOp is how many rounds one b.N iteration makes.
	pbRoundsPerOp = 5
	// pbColdPerOp is how many cold starts of each one b.N iteration makes.
	pbColdPerOp = 2
	// pbWarmUp is how many warm invocations of each process are made,
	// unmeasured, before the first round.
	pbWarmUp = 20
	// pbSecretID is the secret the standalone simulator's Secrets Manager
	// holds.
	pbSecretID = "wxpay/procbench"
)

// wxpaysimBinary builds cmd/wxpaysim once per test binary, into the
// bootstraps' temporary directory.
func wxpaysimBinary(tb testing.TB) string {
	tb.Helper()
	return simBuild.get(tb, "./cmd/wxpaysim")
}

// pbOutput collects a process's output, safe to read while it writes.
type pbOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *pbOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *pbOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// simProcess is cmd/wxpaysim running as its own process.
type simProcess struct {
	// env is what it printed to export: WXPAY_BASE_URL,
	// WXPAY_BACKUP_BASE_URL, SSL_CERT_FILE,
	// AWS_ENDPOINT_URL_SECRETS_MANAGER, WXPAY_SECRET_ID.
	env map[string]string
	// cert and key are the merchant's PEM files it wrote into its -dir.
	cert, key string
	// client signs requests with the merchant's credentials, for the
	// floor to post the bytes a function would.
	client *wxpay.Client
}

// startSimProcess runs cmd/wxpaysim on free loopback ports with fresh
// credentials in a temporary directory and its fake Secrets Manager, and
// reads the environment it prints. It is stopped (SIGTERM) at cleanup.
func startSimProcess(tb testing.TB) *simProcess {
	tb.Helper()
	bin := wxpaysimBinary(tb)
	dir := tb.TempDir()
	cmd := exec.Command(bin,
		"-addr", "127.0.0.1:0", "-backup-addr", "127.0.0.1:0",
		"-dir", dir, "-fresh",
		"-secrets-addr", "127.0.0.1:0", "-secret-id", pbSecretID)
	out := &pbOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	const ready = "Serving until interrupted."
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), ready) {
		select {
		case err := <-done:
			done <- err
			tb.Fatalf("wxpaysim exited before serving: %v\n%s", err, out.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("wxpaysim not serving after a minute:\n%s", out.String())
		}
	}
	s := &simProcess{
		env:  map[string]string{},
		cert: filepath.Join(dir, wxpaytest.FileCert),
		key:  filepath.Join(dir, wxpaytest.FileKey),
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.env[k] = v
			}
		}
	}
	for _, k := range []string{"WXPAY_BASE_URL", "WXPAY_BACKUP_BASE_URL", "SSL_CERT_FILE", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "WXPAY_SECRET_ID"} {
		if s.env[k] == "" {
			tb.Fatalf("wxpaysim printed no %s:\n%s", k, out.String())
		}
	}
	certPEM, err1 := os.ReadFile(s.cert)
	keyPEM, err2 := os.ReadFile(s.key)
	apiKey, err3 := os.ReadFile(filepath.Join(dir, wxpaytest.FileAPIKey))
	if err := errors.Join(err1, err2, err3); err != nil {
		tb.Fatal(err)
	}
	cert, err := wxpay.LoadPEM(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	creds := &wxpay.Credentials{MchID: wxpaytest.DefaultMchID, APIKey: strings.TrimSpace(string(apiKey)), Certificate: cert}
	if s.client, err = wxpay.NewClient(wxpay.Config{Credentials: creds}); err != nil {
		tb.Fatal(err)
	}
	return s
}

// fnEnv is a bootstrap's environment against the simulator process, as
// stack.env is against the in-process one.
func (s *simProcess) fnEnv() []string {
	return []string{
		"WXPAY_SECRET_ID=" + s.env["WXPAY_SECRET_ID"],
		"WXPAY_BASE_URL=" + s.env["WXPAY_BASE_URL"],
		"WXPAY_BACKUP_BASE_URL=" + s.env["WXPAY_BACKUP_BASE_URL"],
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + s.env["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"SSL_CERT_FILE=" + s.env["SSL_CERT_FILE"],
		"AWS_LAMBDA_LOG_LEVEL=INFO",
	}
}

// floorEnv is the hello bootstrap's environment: a POST to path on the
// same simulator process with the merchant's certificate.
func (s *simProcess) floorEnv(path string) []string {
	return []string{
		"HELLO_URL=" + s.env["WXPAY_BASE_URL"] + path,
		"HELLO_CERT_FILE=" + s.cert,
		"HELLO_KEY_FILE=" + s.key,
		"SSL_CERT_FILE=" + s.env["SSL_CERT_FILE"],
		"AWS_LAMBDA_LOG_LEVEL=INFO",
	}
}

// pbFirstAnswer is one cold start: a new Runtime API and process, its first
// event queued, timed from process start to the answer at the Runtime
// API. check fails the benchmark on a wrong answer.
func pbFirstAnswer(b *testing.B, bin string, env []string, payload []byte, check func([]byte) error) time.Duration {
	b.Helper()
	rt, err := runtimeapi.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), invokeWait)
	defer cancel()
	start := time.Now()
	p, err := rt.StartProcess(bin, env)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	res, err := rt.Invoke(ctx, payload, fnTimeout)
	d := time.Since(start)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if err == nil {
		err = check(res.Payload)
	}
	if err != nil {
		b.Fatalf("%s: cold: %v\noutput:\n%s", filepath.Base(bin), err, p.Output())
	}
	return d
}

// pbWarmBatchRun invokes p once per payload, timing each invocation alone,
// and appends the times to into.
func pbWarmBatchRun(b *testing.B, p *proc, payloads [][]byte, check func(int, []byte) error, into []time.Duration) []time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), invokeWait+time.Duration(len(payloads))*time.Second)
	defer cancel()
	for i, payload := range payloads {
		start := time.Now()
		res, err := p.rt.Invoke(ctx, payload, fnTimeout)
		d := time.Since(start)
		if err == nil && res.Err != nil {
			err = res.Err
		}
		if err == nil {
			err = check(i, res.Payload)
		}
		if err != nil {
			b.Fatalf("%s: warm invocation: %v\noutput (tail):\n%s", p.name, err, pbTail(p.p.Output(), 4000))
		}
		into = append(into, d)
	}
	return into
}

func pbTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pbMedian is the median of ds (sorted in place).
func pbMedian(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

// pbCheckFloor accepts the hello bootstrap's answer to a POST the simulator
// answered 200 with a body.
func pbCheckFloor(ans []byte) error {
	var a struct {
		Hello  string `json:"hello"`
		Status int    `json:"status"`
		Bytes  int64  `json:"bytes"`
	}
	if err := json.Unmarshal(ans, &a); err != nil || a.Hello != "world" || a.Status != 200 || a.Bytes == 0 {
		return fmt.Errorf("floor answer %s", ans)
	}
	return nil
}

// pbCase is what BenchmarkProcessBoundary needs of one function: its
// payloads, how to check an answer, and the floor's path.
type pbCase struct {
	name string // the sub-benchmark; fn when empty
	fn   string
	// ledger runs the function with its ledger in moto_server's DynamoDB.
	ledger    bool
	floorPath string
	// setup runs once the simulator runs (query: seed a record).
	setup func(b *testing.B, sim *simProcess, bins map[string]string)
	// payload is the seq-th event and the billno its answer must carry.
	payload func(b *testing.B, seq int) ([]byte, string)
	// floorBody is the signed XML the function would post for the seq-th
	// event, which the floor posts instead.
	floorBody func(b *testing.B, sim *simProcess, seq int) []byte
	// check accepts a successful answer for billno.
	check func(billno string, ans []byte) error
}

// pbSuccess reads a function's direct answer and refuses an error body
// or an answer for another billno.
func pbSuccess(billno string, ans []byte) (answerBody, error) {
	var body answerBody
	if err := json.Unmarshal(ans, &body); err != nil {
		return body, fmt.Errorf("answer is not JSON: %v: %s", err, ans)
	}
	if body.Error != nil || body.MchBillno != billno {
		return body, fmt.Errorf("answer for %s: %s", billno, ans)
	}
	return body, nil
}

func pbCases() []pbCase {
	// Each sendmini event is the sample with a fresh mch_billno, and a
	// fresh re_openid (of the sample's length) so that the simulator's
	// per-user daily limits (10 red packets), which cmd/wxpaysim has no
	// flag to lift, never refuse one.
	var sendmini struct {
		once sync.Once
		req  map[string]any
	}
	miniRequest := func(b *testing.B, prefix string, seq int) ([]byte, string) {
		sendmini.once.Do(func() { sendmini.req = directRequest(b, "sendmini", "", nil) })
		billno := fmt.Sprintf("%s%010d", prefix, seq)
		req := make(map[string]any, len(sendmini.req))
		for k, v := range sendmini.req {
			req[k] = v
		}
		req["mch_billno"] = billno
		req["re_openid"] = fmt.Sprintf("oxTWIuGaIt6%s%012d", prefix[2:], seq)
		return mustJSON(b, req), billno
	}
	mini := func(b *testing.B, seq int) ([]byte, string) { return miniRequest(b, "PBMINI", seq) }
	miniFloor := func(b *testing.B, sim *simProcess, seq int) []byte {
		payload, _ := miniRequest(b, "PBHELO", seq)
		var r wxpay.SendMiniRequest
		if err := json.Unmarshal(payload, &r); err != nil {
			b.Fatal(err)
		}
		body, err := sim.client.BuildSendMini(&r)
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	checkMini := func(billno string, ans []byte) error {
		body, err := pbSuccess(billno, ans)
		if err == nil && (body.SendListID == "" || body.JSAPI == nil || body.JSAPI.PaySign == "") {
			err = fmt.Errorf("sendmini answer without send_listid or jsapi: %s", ans)
		}
		return err
	}
	const queried = "PBQUERYSEED0000001"
	return []pbCase{
		{
			fn:        "sendmini",
			floorPath: wxpay.PathSendMiniProgramHB,
			payload:   mini,
			floorBody: miniFloor,
			check:     checkMini,
		},
		{
			name:      "sendmini+ledger",
			fn:        "sendmini",
			ledger:    true,
			floorPath: wxpay.PathSendMiniProgramHB,
			payload:   mini,
			floorBody: miniFloor,
			check:     checkMini,
		},
		{
			fn:        "query",
			floorPath: wxpay.PathGetHBInfo,
			setup: func(b *testing.B, sim *simProcess, bins map[string]string) {
				// The record to query, sent by the sendmini bootstrap.
				b.Helper()
				req := directRequest(b, "sendmini", queried, map[string]any{"re_openid": "oxTWIuGaIt6gTKsQPBQUERY00001"})
				pbFirstAnswer(b, bins["sendmini"], sim.fnEnv(), mustJSON(b, req), func(ans []byte) error { return checkMini(queried, ans) })
			},
			payload: func(b *testing.B, _ int) ([]byte, string) {
				return mustJSON(b, directRequest(b, "query", queried, nil)), queried
			},
			floorBody: func(b *testing.B, sim *simProcess, _ int) []byte {
				var r wxpay.QueryRequest
				if err := json.Unmarshal(mustJSON(b, directRequest(b, "query", queried, nil)), &r); err != nil {
					b.Fatal(err)
				}
				body, err := sim.client.BuildQuery(&r)
				if err != nil {
					b.Fatal(err)
				}
				return body
			},
			check: func(billno string, ans []byte) error {
				body, err := pbSuccess(billno, ans)
				if err == nil && (body.Status == "" || body.listID() == "") {
					err = fmt.Errorf("query answer without status or detail_id: %s", ans)
				}
				return err
			},
		},
	}
}

// BenchmarkProcessBoundary measures a function as Lambda runs it, at the
// process boundary: the real bootstrap under the Runtime API stand-in,
// talking over loopback to cmd/wxpaysim running as its own process (its
// WeChat Pay endpoints and its fake Secrets Manager), against a floor,
// internal/hellobootstrap, making one mutual-TLS POST per invocation to
// the same simulator process with the same merchant certificate.
//
// One b.N iteration is pbRoundsPerOp rounds, each pbWarmBatch warm direct
// invocations of the function and then as many of the floor (every other
// round the floor first), then pbColdPerOp cold starts of each, in
// alternating order, so that the machine's noise hits both alike. Every
// answer is checked: an error body fails the benchmark. ns/op is one
// iteration (250 warm invocations of each and two cold starts of each).
//
// Metrics: warm-p50-us and floor-p50-us, the median warm invocation
// (Runtime API in, answer out) of the function and of the floor, and
// warm-x-floor their ratio (target ≤ 1.10); first-ms and floor-first-ms,
// the median cold start (process start to the first answer through the
// Runtime API; the function's includes the secret's fetch), and
// first-x-floor their ratio (target ≤ 1.5); peak-rss-MB, the function
// process's VmHWM after at least 1000 warm invocations (target ≤ 40),
// floor-peak-rss-MB the floor's; warm-invocations and cold-runs, the
// counts behind them.
//
// The floor posts the very bytes the function would: a request signed with
// the merchant's credentials (a fresh billno and user per sendmini
// invocation, the queried billno for query), built before the invocation,
// so that the simulator does the same work for both and warm-x-floor is
// the function's own cost: reading the event, validating, signing,
// reading WeChat's answer, the jsapi signature, the answer and its log
// line. Both sides include the Runtime API round trip (the stand-in runs
// in the benchmark's process) and the wake-ups of three processes on the
// machine's cores.
//
// sendmini+ledger is sendmini with its ledger in moto_server's DynamoDB:
// a read, a conditional create and a conditional update per invocation,
// each a round trip to moto (a Python server, far slower than DynamoDB's
// few milliseconds would be on a real network, but on loopback), so its
// figures show the ledger's cost as this machine measures it, not a
// target.
func BenchmarkProcessBoundary(b *testing.B) {
	bins := bootstraps(b)
	hello := helloBootstrap(b)
	wxpaysimBinary(b)
	for _, c := range pbCases() {
		name := c.name
		if name == "" {
			name = c.fn
		}
		b.Run(name, func(b *testing.B) {
			sim := startSimProcess(b)
			if c.setup != nil {
				c.setup(b, sim, bins)
			}
			seq := 0
			next := func() ([]byte, string) {
				seq++
				return c.payload(b, seq)
			}
			batch := func(n int) ([][]byte, []string) {
				payloads, billnos := make([][]byte, n), make([]string, n)
				for i := range n {
					payloads[i], billnos[i] = next()
				}
				return payloads, billnos
			}
			floorSeq := 0
			floorBatch := func(n int) [][]byte {
				payloads := make([][]byte, n)
				for i := range payloads {
					floorSeq++
					payloads[i] = mustJSON(b, map[string]string{"body": string(c.floorBody(b, sim, floorSeq))})
				}
				return payloads
			}
			floorCheck := func(_ int, ans []byte) error { return pbCheckFloor(ans) }

			fnEnv, floorEnv := sim.fnEnv(), sim.floorEnv(c.floorPath)
			if c.ledger {
				env, _ := ledgerTable(b, "ledger-bench")
				fnEnv = append(fnEnv, env...)
			}
			fnProc := startProc(b, c.fn, bins[c.fn], fnEnv)
			floorProc := startProc(b, "hello", hello, floorEnv)
			warmFn := func(n int, into []time.Duration) []time.Duration {
				payloads, billnos := batch(n)
				return pbWarmBatchRun(b, fnProc, payloads, func(i int, ans []byte) error { return c.check(billnos[i], ans) }, into)
			}
			warmFloor := func(n int, into []time.Duration) []time.Duration {
				return pbWarmBatchRun(b, floorProc, floorBatch(n), floorCheck, into)
			}
			coldFn := func() time.Duration {
				payload, billno := next()
				return pbFirstAnswer(b, bins[c.fn], fnEnv, payload, func(ans []byte) error { return c.check(billno, ans) })
			}
			coldFloor := func() time.Duration {
				return pbFirstAnswer(b, hello, floorEnv, floorBatch(1)[0], pbCheckFloor)
			}

			// Each long-lived process: its own cold start, then a few
			// unmeasured warm invocations.
			warmFn(1, nil)
			warmFloor(1, nil)
			warmFn(pbWarmUp, nil)
			warmFloor(pbWarmUp, nil)
			fnWarmCount := pbWarmUp

			var fnWarm, floorWarm, fnCold, floorCold []time.Duration
			b.ResetTimer()
			for op := range b.N {
				for r := range pbRoundsPerOp {
					if (op*pbRoundsPerOp+r)%2 == 0 {
						fnWarm = warmFn(pbWarmBatch, fnWarm)
						floorWarm = warmFloor(pbWarmBatch, floorWarm)
					} else {
						floorWarm = warmFloor(pbWarmBatch, floorWarm)
						fnWarm = warmFn(pbWarmBatch, fnWarm)
					}
					fnWarmCount += pbWarmBatch
				}
				for k := range pbColdPerOp {
					if (op*pbColdPerOp+k)%2 == 0 {
						fnCold = append(fnCold, coldFn())
						floorCold = append(floorCold, coldFloor())
					} else {
						floorCold = append(floorCold, coldFloor())
						fnCold = append(fnCold, coldFn())
					}
				}
			}
			b.StopTimer()

			// Peak RSS after at least warmInvocations warm invocations
			// (b.N = 1 makes fewer rounds than that).
			for fnWarmCount < warmInvocations {
				n := min(pbWarmBatch, warmInvocations-fnWarmCount)
				warmFn(n, nil)
				fnWarmCount += n
			}
			hwm, err := vmHWM(fnProc.p.Pid())
			if err != nil {
				b.Fatal(err)
			}
			floorHWM, err := vmHWM(floorProc.p.Pid())
			if err != nil {
				b.Fatal(err)
			}

			us := func(d time.Duration) float64 { return float64(d) / 1e3 }
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			fnP50, floorP50 := pbMedian(fnWarm), pbMedian(floorWarm)
			fnFirstMed, floorFirstMed := pbMedian(fnCold), pbMedian(floorCold)
			b.ReportMetric(us(fnP50), "warm-p50-us")
			b.ReportMetric(us(floorP50), "floor-p50-us")
			b.ReportMetric(float64(fnP50)/float64(floorP50), "warm-x-floor")
			b.ReportMetric(ms(fnFirstMed), "first-ms")
			b.ReportMetric(ms(floorFirstMed), "floor-first-ms")
			b.ReportMetric(float64(fnFirstMed)/float64(floorFirstMed), "first-x-floor")
			b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
			b.ReportMetric(float64(floorHWM)/1024, "floor-peak-rss-MB")
			b.ReportMetric(float64(fnWarmCount), "warm-invocations")
			b.ReportMetric(float64(len(fnCold)), "cold-runs")
		})
	}
}
