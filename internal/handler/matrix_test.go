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
// Retries wait WeChat's minimum of one second, so the cases run at once:
// each has its own world (simulator, Secrets Manager, logs), and each
// subtest starts its case on a goroutine of its own before t.Parallel, then
// waits for it and checks the answer. (t.Parallel alone would run only
// -parallel cases at a time, GOMAXPROCS by default: two on a two-core
// runner, and the matrix would take minutes of waiting.) matrixParallel
// bounds the cases in flight.

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
	trace     *diagLog
}

type diagLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func diagTrace(p **diagLog, start time.Time) *httptrace.ClientTrace {
	d := &diagLog{}
	*p = d
	f := func(format string, args ...any) {
		d.mu.Lock()
		defer d.mu.Unlock()
		fmt.Fprintf(&d.buf, "%8.3fs ", time.Since(start).Seconds())
		fmt.Fprintf(&d.buf, format, args...)
		d.buf.WriteString("\n")
	}
	return &httptrace.ClientTrace{
		GetConn:              func(h string) { f("GetConn %s", h) },
		GotConn:              func(i httptrace.GotConnInfo) { f("GotConn reused=%v", i.Reused) },
		ConnectStart:         func(n, a string) { f("ConnectStart") },
		ConnectDone:          func(n, a string, err error) { f("ConnectDone %v", err) },
		TLSHandshakeStart:    func() { f("TLSStart") },
		TLSHandshakeDone:     func(_ tls.ConnectionState, err error) { f("TLSDone %v", err) },
		WroteRequest:         func(i httptrace.WroteRequestInfo) { f("WroteRequest %v", i.Err) },
		GotFirstResponseByte: func() { f("FirstByte") },
	}
}

func (d *diagLog) String() string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.String()
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
		{"FaultFreqLimit", wxpaytest.Fault{Kind: wxpaytest.FaultFreqLimit},
			mxSuccess(2), mxWant{outcome: "failed", status: 429, code: "FREQ_LIMIT", retryable: true, requests: 3, payments: 0, smCalls: 1}},
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
	rows = append(rows, mxCase{
		name:   "FaultErrCode FREQ_LIMIT twice",
		before: scripted(wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "FREQ_LIMIT"}, wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "FREQ_LIMIT"}),
		want:   mxSuccess(3),
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
		{name: "deadline/slow answer", warm: true, timeout: deadline, before: scripted(persistent(slow)...), check: check, want: slowPaid},
		{name: "deadline/slow service", warm: true, timeout: deadline, before: scripted(persistent(slowService)...), check: check, want: slowUnpaid},
		{name: "deadline/SYSTEMERROR every try", warm: true, timeout: deadline, before: scripted(persistent(sysErr)...), check: check, want: busy},
		{name: "deadline/SYSTEMERROR then slow", warm: true, timeout: deadline, before: scripted(sysErr, slow, slow, slow), check: check, want: mixed},
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

// runCase runs c through source in a world of its own and reports what
// happened. It runs on its own goroutine: no t.Fatal here.
func runCase(t *testing.T, pki wxpaytest.Option, c mxCase, source, billno string, payload []byte, openid string) mxResult {
	w := newWorld(t, append([]wxpaytest.Option{pki}, c.opts...)...)
	r := mxResult{w: w, billno: billno, source: source, openid: openid, op: c.op}
	r.merchants = append(r.merchants, w.sim.Merchant())
	h := w.handler(c.op)
	if c.warm {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// (Warm rows are sendmini's.)
		out, err := lambdaInvoke(ctx, h, []byte(validMini("WARM"+billno, nil)))
		cancel()
		if err != nil || strings.Contains(string(out), `"error"`) {
			r.warmErr = fmt.Sprintf("warm-up failed: %s %v", out, err)
			return r
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
			return r
		}
	}
	if c.before != nil {
		c.before(w, billno)
	}
	if m := w.sim.Merchant(); m.APIKey != r.merchants[0].APIKey || !slices.Equal(m.KeyPEM, r.merchants[0].KeyPEM) {
		r.merchants = append(r.merchants, m)
	}
	reqs, reqFor, calls, backup := w.sim.Requests(), w.sim.RequestsFor(billno), w.sm.Calls(), w.sim.BackupRequests()
	timeout := c.timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	ctx = httptrace.WithClientTrace(ctx, diagTrace(&r.trace, start))
	r.out, r.err = lambdaInvoke(ctx, h, payload)
	r.elapsed = time.Since(start)
	r.requests = w.sim.Requests() - reqs
	r.reqFor = w.sim.RequestsFor(billno) - reqFor
	r.smCalls = w.sm.Calls() - calls
	r.backup = w.sim.BackupRequests() - backup
	// Close the world now: its counters, ledger and logs stay readable,
	// and hundreds of cases do not keep their sockets open until the end.
	w.sim.Close()
	w.sm.Close()
	return r
}

// matrixParallel bounds the cases in flight. Most of a case is waiting
// (WeChat's one second between tries), so this is well above the cores.
const matrixParallel = 128

func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault matrix waits for real retries; skipped with -short")
	}
	var rows []mxCase
	rows = append(rows, faultRows()...)
	rows = append(rows, failoverRows()...)
	rows = append(rows, credentialRows()...)
	rows = append(rows, deadlineRows()...)
	rows = append(rows, functionRows()...)

	pki := sharedPKI(t)
	sem := make(chan struct{}, matrixParallel)
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
	for i, c := range rows {
		if c.op == nil {
			c.op = handler.SendMini
		}
		for _, source := range sources {
			billno := fmt.Sprintf("MX%03d%s", i, strings.ToUpper(source[:1]))
			t.Run(c.name+"/"+source, func(t *testing.T) {
				payload, openid := mxEvent(t, c.op, source, billno)
				// The case starts at once on its own goroutine; the
				// subtest then waits for it in parallel with the others.
				done := make(chan mxResult, 1)
				go func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					done <- runCase(t, pki, c, source, billno, payload, openid)
				}()
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
	var lines int
	logs := w.logs.String()
	for _, line := range w.logs.lines(t) {
		if line["msg"] != "request" || line["mch_billno"] != r.billno {
			continue
		}
		lines++
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
		t.Logf("elapsed %v trace:\n%s", r.elapsed, r.trace)
		t.Logf("answer: %s\nlogs:\n%s", r.out, logs)
	}
	return lines
}
