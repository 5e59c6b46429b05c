package functions_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/runtimeapi"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// unlimited lifts the simulator's daily limits so that a benchmark may
// send as many red packets to the sample's user as b.N asks.
var unlimited = wxpaytest.WithLimits(wxpaytest.Limits{UserDailyCount: -1, UserDailyAmount: -1, MerchantDailyAmount: -1})

// marks records when, since the last reset, Secrets Manager first answered
// GetSecretValue and the simulator first answered a request.
type marks struct {
	mu             sync.Mutex
	secret, wechat time.Time
}

func (m *marks) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secret, m.wechat = time.Time{}, time.Time{}
}

func (m *marks) mark(which *time.Time) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if which.IsZero() {
		*which = now
	}
}

func (m *marks) get() (secret, wechat time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.secret, m.wechat
}

// newTimedStack is a stack whose simulator and Secrets Manager endpoint
// note when they answer: the simulator through its Logf (called as it
// writes an answer), Secrets Manager through a front that serves the fake.
func newTimedStack(b *testing.B) (*stack, *marks) {
	m := &marks{}
	st := newStack(b, unlimited, wxpaytest.WithLogf(func(format string, _ ...any) {
		if strings.HasPrefix(format, "wxpaytest: %s") { // a request line, not a server error
			m.mark(&m.wechat)
		}
	}))
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.sm.ServeHTTP(w, r)
		if r.Header.Get("X-Amz-Target") == "secretsmanager.GetSecretValue" {
			m.mark(&m.secret)
		}
	}))
	b.Cleanup(front.Close)
	st.smURL = front.URL
	return st, m
}

// coldRun is one cold start: a new process, its first event waiting for
// it, until the answer. Times are from process start.
type coldRun struct {
	poll   time.Duration // the first /next poll: runtime and handler initialised
	secret time.Duration // GetSecretValue answered (zero for hello)
	wechat time.Duration // the simulator answered the one call
	answer time.Duration // the answer reached the Runtime API
}

func runCold(b *testing.B, bin string, env []string, payload []byte, m *marks) (coldRun, []byte) {
	b.Helper()
	m.reset()
	rt, err := runtimeapi.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	polled := make(chan time.Time, 1)
	start := time.Now()
	p, err := rt.StartProcess(bin, env)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// The Runtime API stand-in counts polls; watch for the first
		// (resolution: tens of microseconds).
		for rt.Polls() == 0 {
			select {
			case <-stop:
				return
			default:
			}
			time.Sleep(20 * time.Microsecond)
		}
		polled <- time.Now()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), invokeWait)
	defer cancel()
	res, err := rt.Invoke(ctx, payload, fnTimeout)
	end := time.Now()
	if err != nil || res.Err != nil {
		b.Fatalf("%s: %v %v\noutput:\n%s", filepath.Base(bin), err, res.Err, p.Output())
	}
	var pollAt time.Time
	select {
	case pollAt = <-polled:
	case <-time.After(5 * time.Second):
		b.Fatal("answered, but the first poll was never seen")
	}
	secretAt, wechatAt := m.get()
	since := func(t time.Time) time.Duration {
		if t.IsZero() {
			return 0
		}
		return t.Sub(start)
	}
	return coldRun{poll: pollAt.Sub(start), secret: since(secretAt), wechat: since(wechatAt), answer: end.Sub(start)}, res.Payload
}

// BenchmarkColdStart measures, per function, a cold start through the
// Runtime API: process start to the first answer, the secret fetched from
// Secrets Manager and one call to the simulator, against a hello-world
// aws-lambda-go bootstrap built the same way that answers its first event
// after the same single mutual TLS call (internal/hellobootstrap).
//
// Metrics (means): cold-ms, the function's cold start; init-ms, process
// start to the first /next poll (Go runtime, AWS SDK configuration,
// handler); secret-ms, from there to GetSecretValue answered (the event
// handed over, the SDK's first call); wechat-ms, from there to the
// simulator's answer (secret parsed, client built, TLS handshake, the
// call); answer-ms, from there to the answer at the Runtime API;
// hello-ms and hello-init-ms, the baseline's; x-hello, cold-ms / hello-ms.
func BenchmarkColdStart(b *testing.B) {
	bins := bootstraps(b)
	hello := helloBootstrap(b)
	for _, fn := range functionNames {
		b.Run(fn, func(b *testing.B) {
			st, m := newTimedStack(b)
			payload := func(i int) []byte {
				return mustJSON(b, directRequest(b, fn, fmt.Sprintf("COLD%s%08d", strings.ToUpper(fn), i), nil))
			}
			if fn == "query" {
				const billno = "COLDQUERY0000001"
				seedRecord(b, st, billno)
				q := mustJSON(b, directRequest(b, fn, billno, nil))
				payload = func(int) []byte { return q }
			}
			helloEnv := helloEnv(b, st)
			var fnSum, helloSum coldRun
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				calls, reqs := st.sm.Calls(), st.sim.Requests()
				r, ans := runCold(b, bins[fn], st.env(), payload(i), m)
				var body answerBody
				if err := json.Unmarshal(ans, &body); err != nil || body.Error != nil || body.MchBillno == "" {
					b.Fatalf("%s: cold answer %s", fn, ans)
				}
				if st.sm.Calls()-calls != 1 || st.sim.Requests()-reqs != 1 || r.secret == 0 || r.wechat == 0 {
					b.Fatalf("%s: %d GetSecretValue calls and %d simulator requests; want 1 and 1", fn, st.sm.Calls()-calls, st.sim.Requests()-reqs)
				}
				b.StopTimer()
				reqs = st.sim.Requests()
				h, hans := runCold(b, hello, helloEnv, []byte(`{"hello":"world"}`), m)
				if !strings.Contains(string(hans), `"hello"`) || st.sim.Requests()-reqs != 1 || h.wechat == 0 {
					b.Fatalf("hello: answer %s after %d simulator requests; want 1", hans, st.sim.Requests()-reqs)
				}
				b.StartTimer()
				fnSum = coldRun{fnSum.poll + r.poll, fnSum.secret + r.secret, fnSum.wechat + r.wechat, fnSum.answer + r.answer}
				helloSum = coldRun{helloSum.poll + h.poll, 0, helloSum.wechat + h.wechat, helloSum.answer + h.answer}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
			b.ReportMetric(float64(fnSum.answer.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(ms(fnSum.answer), "cold-ms")
			b.ReportMetric(ms(fnSum.poll), "init-ms")
			b.ReportMetric(ms(fnSum.secret-fnSum.poll), "secret-ms")
			b.ReportMetric(ms(fnSum.wechat-fnSum.secret), "wechat-ms")
			b.ReportMetric(ms(fnSum.answer-fnSum.wechat), "answer-ms")
			b.ReportMetric(ms(helloSum.answer), "hello-ms")
			b.ReportMetric(ms(helloSum.poll), "hello-init-ms")
			b.ReportMetric(float64(fnSum.answer)/float64(helloSum.answer), "x-hello")
		})
	}
}

// helloEnv is the baseline's environment: the merchant certificate as
// files, the simulator's CA as SSL_CERT_FILE, and the gethbinfo URL.
func helloEnv(b *testing.B, st *stack) []string {
	dir := b.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, st.merchant.CertPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(key, st.merchant.KeyPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	return []string{
		"HELLO_URL=" + st.sim.URL + wxpay.PathGetHBInfo,
		"HELLO_CERT_FILE=" + cert,
		"HELLO_KEY_FILE=" + key,
		"SSL_CERT_FILE=" + st.caFile,
		"AWS_LAMBDA_LOG_LEVEL=INFO",
	}
}

// warmInvocations is how many warm invocations BenchmarkPeakRSS makes at
// least, whatever b.N.
const warmInvocations = 1000

// BenchmarkPeakRSS runs one bootstrap per function through a cold start
// and then max(b.N, 1000) warm direct invocations (each a call to the
// simulator), and reports the process's peak resident set (VmHWM), and
// the TLS handshakes and Secrets Manager calls the warm invocations made,
// which must be none. ns/op is one warm invocation.
func BenchmarkPeakRSS(b *testing.B) {
	bins := bootstraps(b)
	for _, fn := range functionNames {
		b.Run(fn, func(b *testing.B) {
			st := newStack(b, unlimited)
			payload := func(i int) []byte {
				return mustJSON(b, directRequest(b, fn, fmt.Sprintf("RSS%s%08d", strings.ToUpper(fn), i), nil))
			}
			if fn == "query" {
				const billno = "RSSQUERY0000001"
				seedRecord(b, st, billno)
				q := mustJSON(b, directRequest(b, fn, billno, nil))
				payload = func(int) []byte { return q }
			}
			p := startProc(b, fn, bins[fn], st.env())
			invoke := func(i int) {
				var body answerBody
				ans := p.invoke(b, payload(i)).Payload
				if err := json.Unmarshal(ans, &body); err != nil || body.Error != nil {
					b.Fatalf("invocation %d: %s", i, ans)
				}
			}
			invoke(0) // cold
			hs, calls := st.sim.Handshakes(), st.sm.Calls()
			n := max(b.N, warmInvocations)
			b.ResetTimer()
			start := time.Now()
			for i := 1; i <= n; i++ {
				invoke(i)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			hwm, err := vmHWM(p.p.Pid())
			if err != nil {
				b.Fatal(err)
			}
			newHS, newCalls := st.sim.Handshakes()-hs, st.sm.Calls()-calls
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
			b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
			b.ReportMetric(float64(n), "warm-invocations")
			b.ReportMetric(float64(newHS), "new-handshakes")
			b.ReportMetric(float64(newCalls), "new-sm-calls")
			if newHS != 0 || newCalls != 0 {
				b.Errorf("%d warm invocations made %d TLS handshakes and %d GetSecretValue calls; want none", n, newHS, newCalls)
			}
		})
	}
}

// vmHWM reads a process's peak resident set size, in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
