package handler_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// The fault matrix: every fault the simulator injects, every credentials
// fault and deadline exhaustion, through every event source, with the real
// retry policy (three tries, at least a second apart).
//
// Each case has its own world (simulator, Secrets Manager, logs), and each
// subtest starts its case on a goroutine of its own before t.Parallel, then
// waits for it and checks the answer. (t.Parallel alone would run only
// -parallel cases at a time, GOMAXPROCS by default.)
//
// The production timeouts still run on the real clock: a TLS handshake
// has 5 s, a try 10 s, an invocation its deadline. Cases that compete for
// the CPU with a hundred others (their TLS handshakes, credential parsing,
// and the race detector's cost on all of it) blow them on a loaded
// two-core runner, and then answer TIMEOUT or NETWORK_ERROR for a fault
// that should have ended otherwise. So:
//
//   - The cases other than the deadline rows run matrixParallel at a
//     time. Their waits between tries (and the credential store's before
//     a resend) are recorded, not slept: the retry policy is checked on
//     the waits it asked for (each WeChat's second, doubling for
//     FREQ_LIMIT), and a case is a few milliseconds of CPU instead of
//     seconds of waiting, so running a few at a time is as fast as
//     running a hundred, and leaves each its share of the CPU.
//   - The deadline rows (mxCase.realTime) come first: what they check is
//     measured on the real clock (the deadline cuts their tries, and the
//     answer must come within the tenth of the deadline the handler
//     keeps). Their worlds are set up and warmed matrixParallel at a time
//     while nothing else runs; then all their invocations start together,
//     each a few requests on a kept-alive connection. During the first
//     half of their deadline, where nothing of theirs is tight, the other
//     cases start matrixBeside at a time; then no more start until the
//     deadline rows have answered, so that the last tenth of their
//     deadline, where the answer must come, has the CPU to itself.

// openID is the re_openid validMini sends: it must appear in no log.
const openID = "oxTWIuGaIt6gTKsQRLau2M0yL16E"

// mxWant is what one case must end in. Counts are exact, except that
// smCalls -1 is not checked and payments -2 means 0 or 1.
type mxWant struct {
	outcome   string // success, failed or unknown
	status    int    // the API Gateway status (and the request log line's)
	code      string // error.code; "" for success
	retryable bool   // error.retryable
	field     string // CONFIG_ERROR: what error.message must name
	// requests is how many requests the simulator saw during the
	// invocation, all of them carrying the case's billno (Requests ==
	// RequestsFor(billno)); minRequests, when > 0, makes it a range.
	requests, minRequests int
	payments              int // Payments(billno); -2 means 0 or 1
	smCalls               int // Secrets Manager calls during the invocation
	backup                int // requests to the backup endpoint
	// statuses, when set, replaces status by a set (deadline cases).
	statuses []int
	codes    []string
	// waits, when set, are the client's waits between tries, exactly;
	// otherwise there is one wxpay.MinRetryInterval before each try after
	// the first (of the call the request log line reports).
	waits []time.Duration
}

// mxCase is one row of the matrix, run through one source.
type mxCase struct {
	name    string
	op      handler.Operation // SendMini when nil
	opts    []wxpaytest.Option
	warm    bool                           // one good invocation (another billno) first
	before  func(w *world, billno string)  // after the warm-up, before the invocation
	timeout time.Duration                  // the invocation's deadline; 20 s when 0
	check   func(t *testing.T, r mxResult) // extra checks
	want    mxWant
	// realTime makes the waits between tries real ones and runs the case
	// with the deadline rows, first (see above): for the deadline rows.
	realTime bool
}

// mxResult is what a case's run observed.
type mxResult struct {
	w         *world
	billno    string
	source    string
	out       []byte
	err       error
	elapsed   time.Duration
	requests  int // simulator requests during the invocation
	reqFor    int // of them, those carrying billno
	openid    string
	op        handler.Operation
	smCalls   int // Secrets Manager calls during the invocation
	backup    int // backup requests during the invocation
	merchants []*wxpaytest.MerchantFiles
	warmErr   string
	// waits and storeWaits are the waits the clients and the credential
	// store asked for during the invocation.
	waits, storeWaits []time.Duration
	trace             *connTrace
}

// connTrace records when the invocation's HTTP requests (to Secrets
// Manager and WeChat Pay) got their connections, handshakes and answers:
// a failing case shows it, so that a slow handshake or a lost answer is
// told from a wrong verdict.
type connTrace struct {
	start time.Time
	mu    sync.Mutex
	buf   strings.Builder
}

func newConnTrace() *connTrace { return &connTrace{start: time.Now()} }

func (c *connTrace) event(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(&c.buf, "%8.3fs ", time.Since(c.start).Seconds())
	fmt.Fprintf(&c.buf, format, args...)
	c.buf.WriteByte('\n')
}

func (c *connTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GetConn:              func(hostPort string) { c.event("get connection to %s", hostPort) },
		GotConn:              func(i httptrace.GotConnInfo) { c.event("got connection (reused %v)", i.Reused) },
		ConnectDone:          func(_, _ string, err error) { c.event("connected (%v)", err) },
		TLSHandshakeStart:    func() { c.event("TLS handshake") },
		TLSHandshakeDone:     func(_ tls.ConnectionState, err error) { c.event("TLS handshake done (%v)", err) },
		WroteRequest:         func(i httptrace.WroteRequestInfo) { c.event("request written (%v)", i.Err) },
		GotFirstResponseByte: func() { c.event("first answer byte") },
	}
}

func (c *connTrace) String() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// Expectations shared by many rows.
func mxSuccess(requests int) mxWant {
	return mxWant{outcome: "success", status: 200, requests: requests, payments: 1, smCalls: 1}
}

func mxUnknown(status int, code string, retryable bool, requests, payments int) mxWant {
	return mxWant{outcome: "unknown", status: status, code: code, retryable: retryable, requests: requests, payments: payments, smCalls: 1}
}

func mxFailed(status int, code string, retryable bool) mxWant {
	return mxWant{outcome: "failed", status: status, code: code, retryable: retryable, requests: 1, payments: 0, smCalls: 1}
}

// persistent is a script that spoils every try of a billno (more than
// MaxAttempts, so the last try is faulted too).
func persistent(f wxpaytest.Fault) []wxpaytest.Fault { return []wxpaytest.Fault{f, f, f, f} }

func scripted(faults ...wxpaytest.Fault) func(w *world, billno string) {
	return func(w *world, billno string) { w.sim.FailBillno(billno, faults...) }
}

// faultRows is every FaultKind, faulting the first try only ("once":
// the retry with the same billno succeeds, or the answer is final) and
// every try ("persistent").
func faultRows() []mxCase {
	type kind struct {
		name             string
		f                wxpaytest.Fault
		once, persistent mxWant
	}
	const delay = 100 * time.Millisecond
	kinds := []kind{
		{"FaultNone slow", wxpaytest.Fault{Kind: wxpaytest.FaultNone, Delay: delay},
			mxSuccess(1), mxSuccess(1)},
		{"FaultSystemError", wxpaytest.Fault{Kind: wxpaytest.FaultSystemError},
			mxSuccess(2), mxUnknown(503, "SYSTEMERROR", true, 3, 0)},
		{"FaultSystemErrorAfterPay", wxpaytest.Fault{Kind: wxpaytest.FaultSystemErrorAfterPay},
			mxSuccess(2), mxUnknown(503, "SYSTEMERROR", true, 3, 1)},
		{"FaultProcessing", wxpaytest.Fault{Kind: wxpaytest.FaultProcessing},
			mxUnknown(503, "PROCESSING", false, 1, 0), mxUnknown(503, "PROCESSING", false, 1, 0)},
		{"FaultProcessingAfterPay", wxpaytest.Fault{Kind: wxpaytest.FaultProcessingAfterPay},
			mxUnknown(503, "PROCESSING", false, 1, 1), mxUnknown(503, "PROCESSING", false, 1, 1)},
		{"FaultDelay", wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: delay},
			mxSuccess(1), mxSuccess(1)},
		{"FaultResetBeforeLedger", wxpaytest.Fault{Kind: wxpaytest.FaultResetBeforeLedger},
			mxSuccess(2), mxUnknown(502, wxpay.CodeNetwork, true, 3, 0)},
		{"FaultResetAfterLedger", wxpaytest.Fault{Kind: wxpaytest.FaultResetAfterLedger},
			mxSuccess(2), mxUnknown(502, wxpay.CodeNetwork, true, 3, 1)},
		{"FaultHTTP5xx 502", wxpaytest.Fault{Kind: wxpaytest.FaultHTTP5xx, Status: 502},
			mxSuccess(2), mxUnknown(502, wxpay.CodeHTTPStatus, true, 3, 0)},
		{"FaultHTTP5xx 503", wxpaytest.Fault{Kind: wxpaytest.FaultHTTP5xx, Status: 503},
			mxSuccess(2), mxUnknown(502, wxpay.CodeHTTPStatus, true, 3, 0)},
		{"FaultHTMLPage", wxpaytest.Fault{Kind: wxpaytest.FaultHTMLPage},
			mxSuccess(2), mxUnknown(502, wxpay.CodeBadResponse, true, 3, 0)},
		{"FaultGarbledXML", wxpaytest.Fault{Kind: wxpaytest.FaultGarbledXML},
			mxSuccess(2), mxUnknown(502, wxpay.CodeBadResponse, true, 3, 1)},
		{"FaultTruncatedXML", wxpaytest.Fault{Kind: wxpaytest.FaultTruncatedXML},
			mxSuccess(2), mxUnknown(502, wxpay.CodeBadResponse, true, 3, 1)},
		// FREQ_LIMIT is retried with growing waits: 1 s, then 2 s.
		{"FaultFreqLimit", wxpaytest.Fault{Kind: wxpaytest.FaultFreqLimit},
			mxSuccess(2), mxWant{outcome: "failed", status: 429, code: "FREQ_LIMIT", retryable: true, requests: 3, payments: 0, smCalls: 1,
				waits: []time.Duration{time.Second, 2 * time.Second}}},
		// An err_code nobody documents: money may have moved.
		{"FaultErrCode WEIRD_CODE", wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "WEIRD_CODE"},
			mxSuccess(2), mxUnknown(502, "WEIRD_CODE", true, 3, 0)},
	}
	var rows []mxCase
	for _, k := range kinds {
		rows = append(rows,
			mxCase{name: k.name + "/once", before: scripted(k.f), want: k.once},
			mxCase{name: k.name + "/persistent", before: scripted(persistent(k.f)...), want: k.persistent})
	}

	// WeChat's refusals: final at once, whatever follows.
	refusals := []struct {
		code   string
		status int
	}{
		{"NOTENOUGH", 422}, {"SENDNUM_LIMIT", 422}, {"SENDAMOUNT_LIMIT", 422}, {"RCVDAMOUNT_LIMIT", 422},
		{"MONEY_LIMIT", 422}, {"SEND_FAILED", 422},
		{"NO_AUTH", 403}, {"API_METHOD_CLOSED", 403}, {"ACCEPTMODE_ERROR", 403},
		{"ILLEGAL_APPID", 400}, {"OPENID_ERROR", 400}, {"MSGAPPID_ERROR", 400}, {"PARAM_ERROR", 400}, {"XML_ERROR", 400},
		{"FATAL_ERROR", 409},
		{"CA_ERROR", 500}, {"SIGN_ERROR", 500},
	}
	for _, r := range refusals {
		want := mxFailed(r.status, r.code, false)
		if r.code == "CA_ERROR" || r.code == "SIGN_ERROR" {
			// The store fetches the secret again (the merchant may have
			// rotated it), finds it unchanged, and the refusal stands.
			want.smCalls = 2
		}
		rows = append(rows, mxCase{
			name:   "FaultErrCode " + r.code,
			before: scripted(persistent(wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: r.code})...),
			want:   want,
		})
	}
	// FREQ_LIMIT as an err_code, scripted twice: retried with growing
	// waits (1 s, then 2 s), the third try succeeds.
	freqTwice := mxSuccess(3)
	freqTwice.waits = []time.Duration{time.Second, 2 * time.Second}
	rows = append(rows, mxCase{
		name:   "FaultErrCode FREQ_LIMIT twice",
		before: scripted(wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "FREQ_LIMIT"}, wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "FREQ_LIMIT"}),
		want:   freqTwice,
	})
	return rows
}

// failoverRows: the primary endpoint down.
func failoverRows() []mxCase {
	down := func(primary, backup bool) func(w *world, _ string) {
		return func(w *world, _ string) {
			w.sim.SetPrimaryDown(primary)
			w.sim.SetBackupDown(backup)
		}
	}
	viaBackup := mxSuccess(1)
	viaBackup.backup = 1
	warmViaBackup := viaBackup
	warmViaBackup.smCalls = 0 // fetched during the warm-up
	return []mxCase{
		{name: "primary down/backup up", opts: []wxpaytest.Option{wxpaytest.WithBackup()}, before: down(true, false), want: viaBackup},
		{name: "primary down while warm/backup up", opts: []wxpaytest.Option{wxpaytest.WithBackup()}, warm: true, before: down(true, false), want: warmViaBackup},
		{name: "primary and backup down", opts: []wxpaytest.Option{wxpaytest.WithBackup()}, before: down(true, true),
			want: mxUnknown(502, wxpay.CodeNetwork, true, 0, 0)},
	}
}

// credentialRows: Secrets Manager faults, malformed secrets and rotations.
func credentialRows() []mxCase {
	config := func(status int, retryable bool, field string) mxWant {
		return mxWant{outcome: "failed", status: status, code: handler.CodeConfig, retryable: retryable, field: field, requests: 0, payments: 0, smCalls: 1}
	}
	// editSecret replaces (or, with nil, removes) one field of the secret.
	editSecret := func(field string, value any) func(w *world, _ string) {
		return func(w *world, _ string) {
			var m map[string]any
			if err := json.Unmarshal(w.sim.Merchant().SecretJSON(), &m); err != nil {
				panic(err)
			}
			if value == nil {
				delete(m, field)
			} else {
				m[field] = value
			}
			b, _ := json.Marshal(m)
			w.sm.Put(secretID, string(b))
		}
	}
	smDown := config(503, true, "secret")
	smDown.smCalls = -1 // the connection is dropped, perhaps before the call is counted
	rotated := func(opts wxpaytest.RotateOptions, store bool) func(w *world, _ string) {
		return func(w *world, _ string) {
			m := w.sim.Rotate(opts)
			if store {
				w.sm.Put(secretID, string(m.SecretJSON()))
			}
		}
	}
	// After a rotation the secret holds the new credentials: the refused
	// try, one Secrets Manager call, the same request again, paid once.
	refreshed := mxWant{outcome: "success", status: 200, requests: 2, payments: 1, smCalls: 1}
	rotatedLogs := func(t *testing.T, r mxResult) {
		logs := r.w.logs.String()
		for _, msg := range []string{"wxpay: credentials rotated", "wxpay: retrying with rotated credentials"} {
			if !strings.Contains(logs, msg) {
				t.Errorf("no log line %q", msg)
			}
		}
		// The resend keeps WeChat's second after the refused try (the
		// store's clock stands still: the refresh took none of it).
		if !slices.Equal(r.storeWaits, []time.Duration{wxpay.MinRetryInterval}) {
			t.Errorf("the store waited %v before resending, want [%v]", r.storeWaits, wxpay.MinRetryInterval)
		}
	}
	stale := func(code string) mxWant {
		// Rotated at WeChat, not (yet) in the secret: the refresh finds
		// the same secret and the refusal stands.
		return mxWant{outcome: "failed", status: 500, code: code, requests: 1, payments: 0, smCalls: 1}
	}
	return []mxCase{
		{name: "secrets manager down", before: func(w *world, _ string) { w.sm.SetDown(true) }, want: smDown},
		{name: "secrets manager throttled", before: func(w *world, _ string) { w.sm.Fail(1, "ThrottlingException") }, want: config(503, true, "ThrottlingException")},
		{name: "secrets manager internal error", before: func(w *world, _ string) { w.sm.Fail(1, "InternalServiceError") }, want: config(503, true, "secret")},
		{name: "secrets manager access denied", before: func(w *world, _ string) { w.sm.Fail(1, "AccessDeniedException") }, want: config(500, false, "AccessDeniedException")},
		{name: "secret not found", before: func(w *world, _ string) { w.sm.Delete(secretID) }, want: config(500, false, "ResourceNotFoundException")},
		{name: "secret not JSON", before: func(w *world, _ string) { w.sm.Put(secretID, "not json {") }, want: config(500, false, "secret")},
		{name: "secret without mch_id", before: editSecret("mch_id", nil), want: config(500, false, "secret.mch_id")},
		{name: "secret with a short apiv2_key", before: editSecret("apiv2_key", "SHORTKEYVALUE123"), want: config(500, false, "secret.apiv2_key")},
		{name: "secret with a broken apiclient_cert", before: editSecret("apiclient_cert", "-----BEGIN CERTIFICATE-----\nQUJDREVGR0hJSktMTU5PUA==\n-----END CERTIFICATE-----\n"), want: config(500, false, "secret.apiclient_cert")},
		{name: "secret with a broken apiclient_key", before: editSecret("apiclient_key", "-----BEGIN PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUA==\n-----END PRIVATE KEY-----\n"), want: config(500, false, "secret.apiclient_key")},
		{name: "rotated certificate and key/CA_ERROR then refresh", warm: true, before: rotated(wxpaytest.RotateOptions{RevokeOld: true}, true), check: rotatedLogs, want: refreshed},
		{name: "rotated key/SIGN_ERROR then refresh", warm: true, before: rotated(wxpaytest.RotateOptions{KeepCertificate: true}, true), check: rotatedLogs, want: refreshed},
		{name: "rotated certificate not in the secret", warm: true, before: rotated(wxpaytest.RotateOptions{RevokeOld: true}, false), want: stale("CA_ERROR")},
		{name: "rotated key not in the secret", warm: true, before: rotated(wxpaytest.RotateOptions{KeepCertificate: true}, false), want: stale("SIGN_ERROR")},
	}
}

// deadlineRows: invocations whose deadline (2.5 s; the handler keeps a
// tenth of it to answer) runs out during slow or failing tries. The answer
// comes before the deadline, unknown, and money moves at most once.
func deadlineRows() []mxCase {
	const deadline = 2500 * time.Millisecond
	slow := wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: 5 * time.Second}
	slowService := wxpaytest.Fault{Kind: wxpaytest.FaultNone, Delay: 5 * time.Second}
	sysErr := wxpaytest.Fault{Kind: wxpaytest.FaultSystemError}
	within := func(r mxResult) string {
		if r.elapsed >= deadline {
			return fmt.Sprintf("answered after %v, past the %v deadline", r.elapsed, deadline)
		}
		return ""
	}
	check := func(t *testing.T, r mxResult) {
		if msg := within(r); msg != "" {
			t.Error(msg)
		}
	}
	timeout := mxWant{outcome: "unknown", status: 504, code: wxpay.CodeTimeout, retryable: true, requests: 1, smCalls: 0}
	slowPaid := timeout
	slowPaid.payments = 1
	slowUnpaid := timeout
	slowUnpaid.payments = 0
	// SYSTEMERROR on every try: the try at 1 s leaves no room for a third
	// (a wait of 1 s plus half a second for the try).
	busy := mxWant{outcome: "unknown", status: 503, code: "SYSTEMERROR", retryable: true, minRequests: 1, requests: 2, payments: 0, smCalls: 0}
	// SYSTEMERROR, then a slow answer: the deadline ends the second try.
	mixed := mxWant{outcome: "unknown", statuses: []int{503, 504}, codes: []string{"SYSTEMERROR", wxpay.CodeTimeout}, retryable: true,
		minRequests: 1, requests: 2, payments: -2, smCalls: 0}
	return []mxCase{
		{name: "deadline/slow answer", warm: true, timeout: deadline, before: scripted(persistent(slow)...), check: check, want: slowPaid, realTime: true},
		{name: "deadline/slow service", warm: true, timeout: deadline, before: scripted(persistent(slowService)...), check: check, want: slowUnpaid, realTime: true},
		{name: "deadline/SYSTEMERROR every try", warm: true, timeout: deadline, before: scripted(persistent(sysErr)...), check: check, want: busy, realTime: true},
		{name: "deadline/SYSTEMERROR then slow", warm: true, timeout: deadline, before: scripted(sysErr, slow, slow, slow), check: check, want: mixed, realTime: true},
	}
}

// functionRows run a few faults through the other three functions: the
// same retry policy and billno rule hold for each.
func functionRows() []mxCase {
	sysErrAfterPay := wxpaytest.Fault{Kind: wxpaytest.FaultSystemErrorAfterPay}
	resetAfter := wxpaytest.Fault{Kind: wxpaytest.FaultResetAfterLedger}
	poor := wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"}
	var rows []mxCase
	for _, op := range []handler.Operation{handler.SendGroup, handler.Send} {
		rows = append(rows,
			mxCase{name: op.Name() + "/FaultSystemErrorAfterPay/once", op: op, before: scripted(sysErrAfterPay), want: mxSuccess(2)},
			mxCase{name: op.Name() + "/FaultResetAfterLedger/persistent", op: op, before: scripted(persistent(resetAfter)...),
				want: mxUnknown(502, wxpay.CodeNetwork, true, 3, 1)},
			mxCase{name: op.Name() + "/FaultErrCode NOTENOUGH", op: op, before: scripted(persistent(poor)...), want: mxFailed(422, "NOTENOUGH", false)},
		)
	}
	// A query reads a red packet sent before (the one payment).
	queried := mxSuccess(2)
	queried.payments = 1
	rows = append(rows,
		mxCase{name: "query/FaultSystemError/once", op: handler.Query, before: scripted(wxpaytest.Fault{Kind: wxpaytest.FaultSystemError}), want: queried},
		mxCase{name: "query/FaultGarbledXML/persistent", op: handler.Query, before: scripted(persistent(wxpaytest.Fault{Kind: wxpaytest.FaultGarbledXML})...),
			want: mxUnknown(502, wxpay.CodeBadResponse, true, 3, 1)},
	)
	return rows
}

// mxEvent is op's request for billno in the shape of source, and the
// re_openid it carries.
func mxEvent(t *testing.T, op handler.Operation, source, billno string) ([]byte, string) {
	t.Helper()
	switch op {
	case handler.SendMini:
		return eventFor(t, source, "POST", "/redpacks/mini", validMini(billno, nil)), openID
	case handler.Query:
		const appID = "wx8888888888888888"
		path := "/redpacks/" + billno
		switch source {
		case "rest":
			return []byte(fmt.Sprintf(`{"resource":"/redpacks/{mch_billno}","path":%q,"httpMethod":"GET","pathParameters":{"mch_billno":%q},"queryStringParameters":{"appid":%q},"requestContext":{"requestId":"q","httpMethod":"GET"},"body":null}`, path, billno, appID)), ""
		case "http":
			return []byte(fmt.Sprintf(`{"version":"2.0","routeKey":"GET /redpacks/{mch_billno}","rawPath":%q,"pathParameters":{"mch_billno":%q},"queryStringParameters":{"appid":%q},"requestContext":{"requestId":"q","http":{"method":"GET","path":%q}}}`, path, billno, appID, path)), ""
		}
		return eventFor(t, source, "GET", path, fmt.Sprintf(`{"mch_billno":%q,"appid":%q}`, billno, appID)), ""
	}
	req := requestsIn(t, readEvent(t, op.Name()+"/direct.json"))[0]
	req["mch_billno"] = billno
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	route := map[string]string{"sendgroup": "/redpacks/group", "send": "/redpacks"}[op.Name()]
	openid, _ := req["re_openid"].(string)
	return eventFor(t, source, "POST", route, string(body)), openid
}

// sharedPKI returns an option giving a world the CAs and merchant
// credentials every matrix world shares. Issuing a merchant (its PKCS#12
// files above all) is most of what starting a simulator costs, and the
// matrix starts hundreds; each world still has its own ledger, faults,
// revocations and rotations.
func sharedPKI(t testing.TB) wxpaytest.Option {
	t.Helper()
	serverCA, err := wxpaytest.NewCA("matrix server CA")
	if err != nil {
		t.Fatal(err)
	}
	merchantCA, err := wxpaytest.NewCA("matrix merchant CA")
	if err != nil {
		t.Fatal(err)
	}
	m, err := merchantCA.IssueMerchant(wxpaytest.MerchantSpec{MchID: wxpaytest.DefaultMchID})
	if err != nil {
		t.Fatal(err)
	}
	return wxpaytest.WithConfig(func(c *wxpaytest.Config) {
		c.ServerCA, c.MerchantCA, c.Merchant = serverCA, merchantCA, m
	})
}

// mxRun is one case between its set-up and its invocation.
type mxRun struct {
	c       mxCase
	r       mxResult
	h       *handler.Handler
	payload []byte
}

// prepare sets c up in a world of its own: the warm-up, the red packet a
// query reads, the case's before. It runs on the case's own goroutine: no
// t.Fatal here; a failure is r.warmErr.
func prepare(t *testing.T, pki wxpaytest.Option, c mxCase, source, billno string, payload []byte, openid string) *mxRun {
	w := newWorld(t, append([]wxpaytest.Option{pki}, c.opts...)...)
	w.waits = newWaitLog(c.realTime)
	run := &mxRun{c: c, payload: payload, r: mxResult{w: w, billno: billno, source: source, openid: openid, op: c.op}}
	r := &run.r
	r.merchants = append(r.merchants, w.sim.Merchant())
	run.h = w.handler(c.op)
	if c.warm {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// (Warm rows are sendmini's.)
		out, err := lambdaInvoke(ctx, run.h, []byte(validMini("WARM"+billno, nil)))
		cancel()
		if err != nil || strings.Contains(string(out), `"error"`) {
			r.warmErr = fmt.Sprintf("warm-up failed: %s %v", out, err)
			return run
		}
	}
	if c.op == handler.Query {
		// Something to read: a red packet sent with the billno.
		client, err := w.sim.NewClient()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err = client.SendMiniProgramHB(ctx, &wxpay.SendMiniRequest{MchBillno: billno, WxAppID: "wx8888888888888888",
				SendName: "天虹百货", ReOpenID: openID, TotalAmount: 100, TotalNum: 1, Wishing: "恭喜发财", ActName: "新年红包", Remark: "快来抢"})
			cancel()
			client.CloseIdleConnections()
		}
		if err != nil {
			r.warmErr = fmt.Sprintf("sending the red packet to query: %v", err)
			return run
		}
	}
	if c.before != nil {
		c.before(w, billno)
	}
	if m := w.sim.Merchant(); m.APIKey != r.merchants[0].APIKey || !slices.Equal(m.KeyPEM, r.merchants[0].KeyPEM) {
		r.merchants = append(r.merchants, m)
	}
	return run
}

// invoke runs the prepared case's invocation and reports what happened.
// Like prepare, it runs on the case's own goroutine.
func (run *mxRun) invoke() mxResult {
	r, w, billno := run.r, run.r.w, run.r.billno
	if r.warmErr != "" {
		return r
	}
	client0, store0 := w.waits.waits()
	reqs, reqFor, calls, backup := w.sim.Requests(), w.sim.RequestsFor(billno), w.sm.Calls(), w.sim.BackupRequests()
	timeout := run.c.timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r.trace = newConnTrace()
	ctx = httptrace.WithClientTrace(ctx, r.trace.clientTrace())
	start := time.Now()
	r.out, r.err = lambdaInvoke(ctx, run.h, run.payload)
	r.elapsed = time.Since(start)
	r.requests = w.sim.Requests() - reqs
	r.reqFor = w.sim.RequestsFor(billno) - reqFor
	r.smCalls = w.sm.Calls() - calls
	r.backup = w.sim.BackupRequests() - backup
	clientWaits, storeWaits := w.waits.waits()
	r.waits, r.storeWaits = clientWaits[len(client0):], storeWaits[len(store0):]
	// Close the world now: its counters, ledger and logs stay readable,
	// and hundreds of cases do not keep their sockets open until the end.
	w.sim.Close()
	w.sm.Close()
	return r
}

// matrixParallel bounds the cases being set up or run at once (see
// above). Each is CPU-bound for its few milliseconds: a few per core keep
// the cores busy, and no more, so that each case's TLS handshakes and
// tries are far inside the production timeouts however loaded the
// machine. matrixBeside is the bound while the deadline rows wait for
// their deadline: one case per core of a CI runner, few enough to be done
// long before the deadline rows' answers are due.
const (
	matrixParallel = 8
	matrixBeside   = 2
)

// admission bounds how many cases run at once, with a bound that changes.
type admission struct {
	mu       sync.Mutex
	changed  sync.Cond
	limit, n int
}

func newAdmission(limit int) *admission {
	a := &admission{limit: limit}
	a.changed.L = &a.mu
	return a
}

func (a *admission) acquire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.n >= a.limit {
		a.changed.Wait()
	}
	a.n++
}

func (a *admission) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n--
	a.changed.Broadcast()
}

// setLimit changes the bound; cases already running go on.
func (a *admission) setLimit(limit int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limit = limit
	a.changed.Broadcast()
}

func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault matrix runs 300 cases, its deadline rows on the real clock; skipped with -short")
	}
	var rows []mxCase
	rows = append(rows, faultRows()...)
	rows = append(rows, failoverRows()...)
	rows = append(rows, credentialRows()...)
	rows = append(rows, deadlineRows()...)
	rows = append(rows, functionRows()...)

	pki := sharedPKI(t)
	var (
		mu                      sync.Mutex
		ran, logLines, logBytes int
	)
	begin := time.Now()
	t.Cleanup(func() {
		// After every case: the logs were captured and checked.
		t.Logf("%d cases (%d rows x %d sources) in %v; %d request log lines, %d bytes of logs checked for secrets",
			ran, len(rows), len(sources), time.Since(begin).Round(time.Millisecond), logLines, logBytes)
		if logLines < ran {
			t.Errorf("%d request log lines for %d cases: the logs were not captured", logLines, ran)
		}
	})

	// The deadline rows' cases (those -run selects) join these as their
	// subtests start; registered closes once they all have. setups bounds
	// their set-ups, others the other cases.
	var (
		prepared, finished sync.WaitGroup
		registered         = make(chan struct{})
		setups             = make(chan struct{}, matrixParallel)
		others             = newAdmission(0)
		realTimeDeadline   time.Duration
	)
	subtest := func(i int, c mxCase, source string) {
		if c.op == nil {
			c.op = handler.SendMini
		}
		billno := fmt.Sprintf("MX%03d%s", i, strings.ToUpper(source[:1]))
		t.Run(c.name+"/"+source, func(t *testing.T) {
			started := false
			if c.realTime {
				prepared.Add(1)
				finished.Add(1)
				defer func() {
					if !started { // mxEvent failed: leave the barrier
						prepared.Done()
						finished.Done()
					}
				}()
			}
			payload, openid := mxEvent(t, c.op, source, billno)
			// The case starts at once on its own goroutine; the
			// subtest then waits for it in parallel with the others.
			done := make(chan mxResult, 1)
			if c.realTime {
				started = true
				go func() {
					defer finished.Done()
					setups <- struct{}{}
					run := prepare(t, pki, c, source, billno, payload, openid)
					<-setups
					// The invocations start together, once all are set up.
					<-registered
					prepared.Done()
					prepared.Wait()
					done <- run.invoke()
				}()
			} else {
				go func() {
					others.acquire()
					defer others.release()
					done <- prepare(t, pki, c, source, billno, payload, openid).invoke()
				}()
			}
			t.Parallel()
			r := <-done
			lines := checkCase(t, c, r)
			mu.Lock()
			ran++
			logLines += lines
			logBytes += len(r.w.logs.String())
			mu.Unlock()
		})
	}
	for i, c := range rows {
		if c.realTime {
			realTimeDeadline = max(realTimeDeadline, c.timeout)
			for _, source := range sources {
				subtest(i, c, source)
			}
		}
	}
	close(registered)
	deadlineRowsDone := make(chan struct{})
	go func() {
		finished.Wait()
		close(deadlineRowsDone)
	}()
	go func() {
		prepared.Wait() // the deadline rows' invocations start
		others.setLimit(matrixBeside)
		half := time.NewTimer(realTimeDeadline / 2)
		defer half.Stop()
		select {
		case <-half.C:
			others.setLimit(0)
			<-deadlineRowsDone
		case <-deadlineRowsDone:
		}
		others.setLimit(matrixParallel)
	}()
	for i, c := range rows {
		if !c.realTime {
			for _, source := range sources {
				subtest(i, c, source)
			}
		}
	}
}

// checkCase asserts everything about one case's run and returns how many
// request log lines it had.
func checkCase(t *testing.T, c mxCase, r mxResult) int {
	t.Helper()
	if r.warmErr != "" {
		t.Fatal(r.warmErr)
	}
	if r.err != nil {
		t.Fatalf("invoke: %v", r.err)
	}
	want := c.want
	got := decodeReply(t, r.source, r.out)
	w := r.w
	outcome := want.outcome
	success := outcome == "success"

	// The answer, by source.
	switch r.source {
	case "sqs":
		if success && len(got.failures) != 0 {
			t.Errorf("batchItemFailures = %v, want none", got.failures)
		}
		if !success && !slices.Equal(got.failures, []string{"m-1"}) {
			t.Errorf("batchItemFailures = %v, want [m-1] (outcome %s)", got.failures, outcome)
		}
	default:
		if r.source != "direct" {
			if want.statuses != nil {
				if !slices.Contains(want.statuses, got.status) {
					t.Errorf("status = %d, want one of %v (%v)", got.status, want.statuses, got.body)
				}
			} else if got.status != want.status {
				t.Errorf("status = %d, want %d (%v)", got.status, want.status, got.body)
			}
		}
		if got.body["mch_billno"] != r.billno {
			t.Errorf("mch_billno = %v, want %s", got.body["mch_billno"], r.billno)
		}
		if success {
			if got.body["error"] != nil {
				t.Fatalf("error %v, want success", got.body["error"])
			}
			switch r.op {
			case handler.Query:
				if got.body["status"] != wxpay.StatusSent {
					t.Errorf("status %v, want SENT", got.body["status"])
				}
			case handler.SendMini:
				if _, ok := got.body["jsapi"].(map[string]any); !ok {
					t.Errorf("no jsapi in %v", got.body)
				}
				fallthrough
			default:
				if s, _ := got.body["send_listid"].(string); s == "" {
					t.Errorf("no send_listid in %v", got.body)
				}
			}
			break
		}
		code, _ := got.errorField("code").(string)
		if want.codes != nil {
			if !slices.Contains(want.codes, code) {
				t.Errorf("error.code = %q, want one of %v", code, want.codes)
			}
		} else if code != want.code {
			t.Errorf("error.code = %q, want %s (%v)", code, want.code, got.body["error"])
		}
		if got.errorField("outcome") != outcome {
			t.Errorf("error.outcome = %v, want %s", got.errorField("outcome"), outcome)
		}
		if got.errorField("retryable") != want.retryable {
			t.Errorf("error.retryable = %v, want %v", got.errorField("retryable"), want.retryable)
		}
		msg, _ := got.errorField("message").(string)
		if want.field != "" && !strings.Contains(msg, want.field) {
			t.Errorf("error.message %q does not name %s", msg, want.field)
		}
		if strings.Contains(msg, "SHORTKEYVALUE123") || strings.Contains(msg, "QUJDREVGR0hJSktMTU5PUA") {
			t.Errorf("error.message %q echoes the secret's value", msg)
		}
	}

	// The simulator: every request carried the billno, as many as the
	// retry policy allows, and money moved at most once.
	reqFor := r.reqFor
	if r.requests != reqFor {
		t.Errorf("the simulator saw %d requests during the invocation, %d of them with %s: a retry changed the billno", r.requests, reqFor, r.billno)
	}
	if want.minRequests > 0 {
		if reqFor < want.minRequests || reqFor > want.requests {
			t.Errorf("RequestsFor(%s) = %d, want %d to %d", r.billno, reqFor, want.minRequests, want.requests)
		}
	} else if reqFor != want.requests {
		t.Errorf("RequestsFor(%s) = %d, want %d", r.billno, reqFor, want.requests)
	}
	paid := w.sim.Payments(r.billno)
	if paid > 1 {
		t.Errorf("PAID TWICE: Payments(%s) = %d", r.billno, paid)
	}
	if want.payments >= 0 && paid != want.payments {
		t.Errorf("Payments(%s) = %d, want %d", r.billno, paid, want.payments)
	}
	for _, rec := range w.sim.Records() {
		if n := w.sim.Payments(rec.MchBillno); n > 1 {
			t.Errorf("PAID TWICE: Payments(%s) = %d", rec.MchBillno, n)
		}
	}
	if want.smCalls >= 0 && r.smCalls != want.smCalls {
		t.Errorf("Secrets Manager calls = %d, want %d", r.smCalls, want.smCalls)
	}
	if r.backup != want.backup {
		t.Errorf("backup requests = %d, want %d", r.backup, want.backup)
	}

	// The request log line says the same, whatever the source.
	var lines, attempts int
	logs := w.logs.String()
	for _, line := range w.logs.lines(t) {
		if line["msg"] != "request" || line["mch_billno"] != r.billno {
			continue
		}
		lines++
		if n, ok := line["attempts"].(float64); ok {
			attempts = int(n)
		}
		if line["outcome"] != outcome {
			t.Errorf("log outcome = %v, want %s", line["outcome"], outcome)
		}
		status := int(line["status"].(float64))
		if want.statuses != nil {
			if !slices.Contains(want.statuses, status) {
				t.Errorf("logged status %d, want one of %v", status, want.statuses)
			}
		} else if status != want.status {
			t.Errorf("logged status %d, want %d", status, want.status)
		}
		if code, _ := line["err_code"].(string); want.codes == nil && code != want.code {
			t.Errorf("logged err_code %q, want %q", code, want.code)
		}
		if line["re_openid"] != handler.MaskOpenID(r.openid) {
			t.Errorf("logged re_openid %v, want it masked", line["re_openid"])
		}
	}
	if lines != 1 {
		t.Errorf("%d request log lines for %s, want 1:\n%s", lines, r.billno, logs)
	}
	if r.source == "sqs" && !success && !strings.Contains(logs, `"msg":"record reported for retry"`) {
		t.Errorf("the reported record is not logged:\n%s", logs)
	}

	// The retry policy: WeChat's second before each try after the first
	// (growing only for FREQ_LIMIT), as many waits as tries after the
	// first, and no wait without a try after it.
	wantWaits := want.waits
	if wantWaits == nil {
		wantWaits = []time.Duration{}
		for range attempts - 1 {
			wantWaits = append(wantWaits, wxpay.MinRetryInterval)
		}
	}
	if !slices.Equal(r.waits, wantWaits) {
		t.Errorf("waits between tries %v, want %v (%d attempts logged)", r.waits, wantWaits, attempts)
	}
	if len(r.storeWaits) > 0 && !strings.Contains(logs, "wxpay: retrying with rotated credentials") {
		t.Errorf("the store waited %v, and resent nothing", r.storeWaits)
	}

	// No secret material in the logs or the answer.
	for _, m := range r.merchants {
		assertNoSecrets(t, logs, m)
		assertNoSecrets(t, string(r.out), m)
	}
	for _, id := range []string{openID, r.openid} {
		if id != "" && strings.Contains(logs, id) {
			t.Errorf("the full re_openid %s is in the logs", id)
		}
	}
	if c.check != nil {
		c.check(t, r)
	}
	if t.Failed() {
		t.Logf("answer after %v: %s\nconnections:\n%slogs:\n%s", r.elapsed, r.out, r.trace, logs)
	}
	return lines
}
