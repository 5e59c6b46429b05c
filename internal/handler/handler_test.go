package handler_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// sourceOf names the source of a sample by its file name.
func sourceOf(file string) string {
	switch {
	case strings.HasPrefix(file, "apigw-rest"):
		return "rest"
	case strings.HasPrefix(file, "apigw-http"):
		return "http"
	case strings.HasPrefix(file, "sqs"):
		return "sqs"
	}
	return "direct"
}

// TestEvents sends every sample in events/ through its function's handler,
// the way Lambda would, against the simulator; then again, to see the
// repeat answered from WeChat's ledger with no second payment.
func TestEvents(t *testing.T) {
	w := newWorld(t)
	ops := []handler.Operation{handler.SendGroup, handler.SendMini, handler.Send, handler.Query}
	for _, op := range ops {
		h := w.handler(op)
		files, _ := filepath.Glob(filepath.Join("..", "..", "events", op.Name(), "*.json"))
		if len(files) < 4 {
			t.Fatalf("events/%s has %d samples, want one per source", op.Name(), len(files))
		}
		for _, path := range files {
			file := filepath.Base(path)
			t.Run(op.Name()+"/"+file, func(t *testing.T) {
				payload := readEvent(t, filepath.Join(op.Name(), file))
				source := sourceOf(file)
				requests := requestsIn(t, payload)
				first := decodeReply(t, source, invoke(t, h, payload))
				handshakes := w.sim.SettledHandshakes()
				second := decodeReply(t, source, invoke(t, h, payload))
				// (An SQS batch's records run in parallel, on as many
				// connections as the overlap needs.)
				if n := w.sim.Handshakes() - handshakes; n != 0 && source != "sqs" {
					t.Errorf("a warm invocation made %d new TLS handshakes, want 0", n)
				}
				for _, r := range []reply{first, second} {
					if source == "sqs" {
						if len(r.failures) != 0 {
							t.Fatalf("SQS failures %v; logs:\n%s", r.failures, w.logs)
						}
						continue
					}
					if r.status != http.StatusOK {
						t.Fatalf("status %d, body %v", r.status, r.body)
					}
					if r.body["mch_billno"] != requests[0]["mch_billno"] {
						t.Errorf("mch_billno = %v, want %v", r.body["mch_billno"], requests[0]["mch_billno"])
					}
				}
				if op == handler.Query {
					if source == "sqs" {
						return
					}
					if first.body["status"] != wxpay.StatusSent {
						t.Errorf("status = %v, want SENT", first.body["status"])
					}
					return
				}
				for _, req := range requests {
					billno := req["mch_billno"].(string)
					if n := w.sim.Payments(billno); n != 1 {
						t.Errorf("payments for %s = %d, want exactly 1", billno, n)
					}
				}
				if source == "sqs" {
					return
				}
				if first.body["send_listid"] == "" || first.body["send_listid"] != second.body["send_listid"] {
					t.Errorf("send_listid %v then %v: a repeat must answer the original red packet", first.body["send_listid"], second.body["send_listid"])
				}
				if op == handler.SendMini {
					checkJSAPI(t, w.sim.Merchant().APIKey, requests[0]["wxappid"].(string), first.body)
				}
			})
		}
	}
	if got := w.sm.Calls(); got != len(ops) {
		t.Errorf("Secrets Manager calls = %d, want one per function (%d)", got, len(ops))
	}
	assertNoSecrets(t, w.logs.String(), w.sim.Merchant())
}

// checkJSAPI verifies sendmini's wx.sendBizRedPacket parameters.
func checkJSAPI(t *testing.T, key, appID string, body map[string]any) {
	t.Helper()
	j, ok := body["jsapi"].(map[string]any)
	if !ok {
		t.Fatalf("no jsapi in %v", body)
	}
	p := wxpay.JSAPIParams{}
	for k, dst := range map[string]*string{"timeStamp": &p.TimeStamp, "nonceStr": &p.NonceStr, "package": &p.Package, "signType": &p.SignType, "paySign": &p.PaySign} {
		s, _ := j[k].(string)
		if s == "" {
			t.Errorf("jsapi.%s is empty", k)
		}
		*dst = s
	}
	if p.Package != wxpay.EncodeURIComponent(body["package"].(string)) {
		t.Errorf("jsapi.package %q is not the URL-encoded package %q", p.Package, body["package"])
	}
	if p.SignType != "MD5" {
		t.Errorf("signType = %q", p.SignType)
	}
	if want := wxpay.PaySign(appID, p, p.Package, key); p.PaySign != want {
		t.Errorf("paySign = %s, want %s", p.PaySign, want)
	}
}

// validMini is a sendmini request body with fields replaced or removed
// (a nil value removes the field).
func validMini(billno string, change map[string]any) string {
	fields := map[string]any{
		"mch_billno": billno, "wxappid": "wx8888888888888888", "send_name": "天虹百货",
		"re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E", "total_amount": 100, "total_num": 1,
		"wishing": "恭喜发财", "act_name": "新年红包", "remark": "快来抢",
	}
	for k, v := range change {
		if v == nil {
			delete(fields, k)
		} else {
			fields[k] = v
		}
	}
	var b strings.Builder
	b.WriteString("{")
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		switch v := fields[k].(type) {
		case string:
			fmt.Fprintf(&b, "%q:%q", k, v)
		case rawJSON:
			fmt.Fprintf(&b, "%q:%s", k, v)
		default:
			fmt.Fprintf(&b, "%q:%v", k, v)
		}
	}
	b.WriteString("}")
	return b.String()
}

// rawJSON is a field value written as is.
type rawJSON string

var sources = []string{"rest", "http", "sqs", "direct"}

// TestInvalidInput: every invalid request, through every source, is
// refused with 400 naming the field, and WeChat never sees it.
func TestInvalidInput(t *testing.T) {
	w := newWorld(t)
	h := w.handler(handler.SendMini)
	cases := []struct {
		name, body, field string
	}{
		{"caller mch_id", validMini("B1", map[string]any{"mch_id": "1900000109"}), "mch_id"},
		{"caller nonce_str", validMini("B1", map[string]any{"nonce_str": "abc"}), "nonce_str"},
		{"caller sign", validMini("B1", map[string]any{"sign": "ABC"}), "sign"},
		{"unknown field", validMini("B1", map[string]any{"client_ip": "1.2.3.4"}), "client_ip"},
		{"fraction amount", validMini("B1", map[string]any{"total_amount": rawJSON("100.5")}), "total_amount"},
		{"string amount", validMini("B1", map[string]any{"total_amount": "100"}), "total_amount"},
		{"negative amount", validMini("B1", map[string]any{"total_amount": -100}), "total_amount"},
		{"missing billno", validMini("", map[string]any{"mch_billno": nil}), "mch_billno"},
		{"billno too long", validMini(strings.Repeat("1", 29), nil), "mch_billno"},
		{"billno symbols", validMini("B-1", nil), "mch_billno"},
		{"two recipients", validMini("B1", map[string]any{"total_num": 2}), "total_num"},
		{"no scene below 1 yuan", validMini("B1", map[string]any{"total_amount": 50}), "scene_id"},
		{"bad scene", validMini("B1", map[string]any{"scene_id": "PRODUCT_9"}), "scene_id"},
		{"long wishing", validMini("B1", map[string]any{"wishing": strings.Repeat("福", 43)}), "wishing"},
		{"other notify_way", validMini("B1", map[string]any{"notify_way": "JSAPI"}), "notify_way"},
		{"repeated key", `{"mch_billno":"B1","mch_billno":"B2"}`, "mch_billno"},
		{"key in another case", strings.Replace(validMini("B1", nil), "}", `,"TOTAL_AMOUNT":15000}`, 1), "TOTAL_AMOUNT"},
		{"key folded to the field", strings.Replace(validMini("B1", map[string]any{"send_name": nil}), "}", `,"ſend_name":"x"}`, 1), "ſend_name"},
		{"empty key", strings.Replace(validMini("B1", nil), "}", `,"":1}`, 1), "body"},
		{"not JSON", `{"mch_billno":`, "body"},
		{"array", `[1,2]`, "body"},
		{"trailing data", validMini("B1", nil) + `{}`, "body"},
		{"empty", ``, "body"},
		{"over 64 KiB", validMini("B1", map[string]any{"remark": strings.Repeat("x", 65<<10)}), "body"},
	}
	for _, tc := range cases {
		for _, source := range sources {
			t.Run(tc.name+"/"+source, func(t *testing.T) {
				r := decodeReply(t, source, invoke(t, h, eventFor(t, source, "POST", "/redpacks/mini", tc.body)))
				if source == "sqs" {
					if !slices.Equal(r.failures, []string{"m-1"}) {
						t.Errorf("failures = %v, want the record reported", r.failures)
					}
					return
				}
				if source != "direct" && r.status != http.StatusBadRequest {
					t.Errorf("status = %d, want 400", r.status)
				}
				if r.errorField("code") != handler.CodeInvalidRequest || r.errorField("field") != tc.field || r.errorField("outcome") != "failed" {
					t.Errorf("error = %v, want INVALID_REQUEST naming %s", r.body["error"], tc.field)
				}
			})
		}
	}
	if n := w.sim.Requests(); n != 0 {
		t.Errorf("the simulator saw %d requests; invalid input must never reach WeChat", n)
	}
	if n := w.sm.Calls(); n != 0 {
		t.Errorf("Secrets Manager calls = %d; invalid input needs no credentials", n)
	}
}

// TestInvalidUTF8: a direct invoke's raw bytes that are not UTF-8 are
// refused rather than sent with U+FFFD in their place.
func TestInvalidUTF8(t *testing.T) {
	w := newWorld(t)
	h := w.handler(handler.SendMini)
	body := strings.Replace(validMini("UTF1", nil), "快来抢", "\xff\xfe", 1)
	r := decodeReply(t, "direct", invoke(t, h, []byte(body)))
	if r.errorField("code") != handler.CodeInvalidRequest || r.errorField("field") != "body" || !strings.Contains(r.errorField("message").(string), "UTF-8") {
		t.Errorf("answer %v, want INVALID_REQUEST: body is not valid UTF-8", r.body)
	}
	if w.sim.Requests() != 0 {
		t.Errorf("the simulator saw %d requests", w.sim.Requests())
	}
}

// TestOutcomes: WeChat's refusals, unknown outcomes and configuration
// faults map to the contract's statuses through every source.
func TestOutcomes(t *testing.T) {
	cases := []struct {
		name      string
		fault     *wxpaytest.Fault
		secret    string // replaces the secret when set
		smFail    string // Secrets Manager error code
		status    int
		code      string
		outcome   string
		retryable bool
		maxPaid   int
	}{
		{name: "NOTENOUGH", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"}, status: 422, code: "NOTENOUGH", outcome: "failed"},
		{name: "SEND_FAILED", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "SEND_FAILED"}, status: 422, code: "SEND_FAILED", outcome: "failed"},
		{name: "FATAL_ERROR", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "FATAL_ERROR"}, status: 409, code: "FATAL_ERROR", outcome: "failed"},
		{name: "FREQ_LIMIT", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultFreqLimit}, status: 429, code: "FREQ_LIMIT", outcome: "failed", retryable: true},
		{name: "NO_AUTH", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NO_AUTH"}, status: 403, code: "NO_AUTH", outcome: "failed"},
		{name: "SYSTEMERROR", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultSystemError}, status: 503, code: "SYSTEMERROR", outcome: "unknown", retryable: true},
		{name: "SYSTEMERROR after pay", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultSystemErrorAfterPay}, status: 503, code: "SYSTEMERROR", outcome: "unknown", retryable: true, maxPaid: 1},
		{name: "PROCESSING", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultProcessing}, status: 503, code: "PROCESSING", outcome: "unknown"},
		{name: "garbled XML", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultGarbledXML}, status: 502, code: wxpay.CodeBadResponse, outcome: "unknown", retryable: true, maxPaid: 1},
		{name: "HTTP 502", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultHTTP5xx, Status: 502}, status: 502, code: wxpay.CodeHTTPStatus, outcome: "unknown", retryable: true},
		{name: "reset after ledger", fault: &wxpaytest.Fault{Kind: wxpaytest.FaultResetAfterLedger}, status: 502, code: wxpay.CodeNetwork, outcome: "unknown", retryable: true, maxPaid: 1},
		{name: "secret not JSON", secret: "not json", status: 500, code: handler.CodeConfig, outcome: "failed"},
		{name: "secret without key", secret: `{"mch_id":"1900000109"}`, status: 500, code: handler.CodeConfig, outcome: "failed"},
		{name: "access denied", smFail: "AccessDeniedException", status: 500, code: handler.CodeConfig, outcome: "failed"},
		{name: "throttled", smFail: "ThrottlingException", status: 503, code: handler.CodeConfig, outcome: "failed", retryable: true},
	}
	for _, tc := range cases {
		for _, source := range sources {
			t.Run(tc.name+"/"+source, func(t *testing.T) {
				w := newWorld(t)
				w.settings.MaxAttempts = 1 // one try: the retry policy is pkg/wxpay's to test
				h := w.handler(handler.SendMini)
				billno := "OUT" + strings.NewReplacer(" ", "", "_", "").Replace(strings.ToUpper(tc.name))
				if len(billno) > 28 {
					billno = billno[:28]
				}
				if tc.fault != nil {
					w.sim.FailBillno(billno, *tc.fault)
				}
				if tc.secret != "" {
					w.sm.Put(secretID, tc.secret)
				}
				if tc.smFail != "" {
					w.sm.Fail(1, tc.smFail)
				}
				r := decodeReply(t, source, invoke(t, h, eventFor(t, source, "POST", "/redpacks/mini", validMini(billno, nil))))
				if paid := w.sim.Payments(billno); paid > tc.maxPaid {
					t.Errorf("payments = %d, want at most %d", paid, tc.maxPaid)
				}
				if source == "sqs" {
					if !slices.Equal(r.failures, []string{"m-1"}) {
						t.Errorf("failures = %v, want the record reported", r.failures)
					}
					if !strings.Contains(w.logs.String(), `"err_code":"`+tc.code+`"`) {
						t.Errorf("no log line with err_code %s:\n%s", tc.code, w.logs)
					}
					return
				}
				if source != "direct" && r.status != tc.status {
					t.Errorf("status = %d, want %d (%v)", r.status, tc.status, r.body)
				}
				if r.errorField("code") != tc.code || r.errorField("outcome") != tc.outcome || r.errorField("retryable") != tc.retryable {
					t.Errorf("error = %v, want code %s outcome %s retryable %v", r.body["error"], tc.code, tc.outcome, tc.retryable)
				}
				if r.body["mch_billno"] != billno {
					t.Errorf("mch_billno = %v, want %s: a caller needs it to retry or query", r.body["mch_billno"], billno)
				}
				assertNoSecrets(t, w.logs.String(), w.sim.Merchant())
			})
		}
	}
}

// TestDeadline: a WeChat answer slower than the invocation's deadline is
// an unknown outcome answered before Lambda's own timeout.
func TestDeadline(t *testing.T) {
	w := newWorld(t)
	h := w.handler(handler.SendMini)
	w.sim.FailBillno("SLOW1", wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: 5 * time.Second})
	payload := eventFor(t, "rest", "POST", "/redpacks/mini", validMini("SLOW1", nil))
	ctx, cancel := contextWithTimeout(2 * time.Second)
	defer cancel()
	start := time.Now()
	out, err := lambdaInvoke(ctx, h, payload)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed >= 2*time.Second {
		t.Errorf("answered after %v: the function must keep time to answer before the deadline", elapsed)
	}
	r := decodeReply(t, "rest", out)
	if r.status != http.StatusGatewayTimeout || r.errorField("outcome") != "unknown" || r.errorField("code") != wxpay.CodeTimeout {
		t.Errorf("answer %d %v, want 504 TIMEOUT unknown", r.status, r.body)
	}
}

// TestSQSBatch: in one batch, good records succeed, bad and refused ones
// are reported (and logged with their err_code), and two records with one
// billno pay once.
func TestSQSBatch(t *testing.T) {
	w := newWorld(t)
	h := w.handler(handler.SendMini)
	w.sim.FailBillno("SQSPOOR", wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"})
	bodies := map[string]string{
		"ok-1":    validMini("SQSOK1", nil),
		"ok-2":    validMini("SQSOK2", nil),
		"dup-a":   validMini("SQSDUP", nil),
		"dup-b":   validMini("SQSDUP", nil),
		"invalid": validMini("SQSBAD", map[string]any{"mch_id": "1"}),
		"poor":    validMini("SQSPOOR", nil),
		"garbage": `not json`,
	}
	var b strings.Builder
	b.WriteString(`{"Records":[`)
	ids := []string{"ok-1", "ok-2", "dup-a", "dup-b", "invalid", "poor", "garbage"}
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"messageId":%q,"body":%q,"eventSource":"aws:sqs"}`, id, bodies[id])
	}
	b.WriteString("]}")
	r := decodeReply(t, "sqs", invoke(t, h, []byte(b.String())))
	if want := []string{"invalid", "poor", "garbage"}; !slices.Equal(r.failures, want) {
		t.Errorf("failures = %v, want %v", r.failures, want)
	}
	for _, billno := range []string{"SQSOK1", "SQSOK2", "SQSDUP"} {
		if n := w.sim.Payments(billno); n != 1 {
			t.Errorf("payments for %s = %d, want 1", billno, n)
		}
	}
	var sawPoor bool
	for _, line := range w.logs.lines(t) {
		if line["mch_billno"] == "SQSPOOR" && line["err_code"] == "NOTENOUGH" {
			sawPoor = true
		}
	}
	if !sawPoor {
		t.Errorf("the refused record is not logged with its err_code:\n%s", w.logs)
	}
}

// TestQuery: the query function reads the billno from the path and the
// appid from the query string or the default, and answers 404 for a billno
// WeChat does not know.
func TestQuery(t *testing.T) {
	w := newWorld(t)
	w.settings.DefaultAppID = "wx8888888888888888"
	send := w.handler(handler.SendMini)
	query := w.handler(handler.Query)
	if r := decodeReply(t, "direct", invoke(t, send, []byte(validMini("QRY1", nil)))); r.status != 200 {
		t.Fatalf("send: %v", r.body)
	}
	if err := w.sim.Receive("QRY1", "oxTWIuGaIt6gTKsQRLau2M0yL16E", 100); err != nil {
		t.Fatal(err)
	}
	get := func(billno, rawQuery string) reply {
		ev := fmt.Sprintf(`{"resource":"/redpacks/{mch_billno}","path":"/redpacks/%s","httpMethod":"GET","pathParameters":{"mch_billno":%q},"queryStringParameters":%s,"requestContext":{"requestId":"q"},"body":null}`, billno, billno, rawQuery)
		return decodeReply(t, "rest", invoke(t, query, []byte(ev)))
	}
	r := get("QRY1", `{"appid":"wx8888888888888888"}`)
	if r.status != 200 || r.body["status"] != wxpay.StatusReceived {
		t.Fatalf("query: %d %v", r.status, r.body)
	}
	if list, _ := r.body["hblist"].([]any); len(list) != 1 {
		t.Errorf("hblist = %v, want one receiver", r.body["hblist"])
	}
	if r := get("QRY1", `null`); r.status != 200 {
		t.Errorf("query with the default appid: %d %v", r.status, r.body)
	}
	if r := decodeReply(t, "direct", invoke(t, query, []byte(`{"mch_billno":"QRY1"}`))); r.status != 200 || r.body["status"] != wxpay.StatusReceived {
		t.Errorf("direct query with the default appid: %v", r.body)
	}
	if r := get("NOSUCH1", `null`); r.status != http.StatusNotFound || r.errorField("outcome") != string(wxpay.OutcomeNotFound) {
		t.Errorf("unknown billno: %d %v, want 404 not_found", r.status, r.body)
	}
	if r := decodeReply(t, "rest", invoke(t, query, eventFor(t, "rest", "POST", "/redpacks/QRY1", ""))); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST to the query route: %d, want 405", r.status)
	}
}

// TestConfigFromEnv: a function whose environment is incomplete still
// answers, with CONFIG_ERROR naming the variable.
func TestConfigFromEnv(t *testing.T) {
	t.Setenv("WXPAY_SECRET_ID", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	h := handler.FromEnv(t.Context(), handler.SendMini)
	r := decodeReply(t, "rest", invoke(t, h, eventFor(t, "rest", "POST", "/redpacks/mini", validMini("CFG1", nil))))
	if r.status != 500 || r.errorField("code") != handler.CodeConfig || !strings.Contains(r.errorField("message").(string), "WXPAY_SECRET_ID") {
		t.Errorf("answer %d %v, want 500 CONFIG_ERROR naming WXPAY_SECRET_ID", r.status, r.body)
	}
	t.Setenv("WXPAY_SECRET_ID", "x")
	t.Setenv("WXPAY_PAYSIGN_PACKAGE", "sometimes")
	h = handler.FromEnv(t.Context(), handler.SendMini)
	r = decodeReply(t, "rest", invoke(t, h, eventFor(t, "rest", "POST", "/redpacks/mini", validMini("CFG1", nil))))
	if r.status != 500 || !strings.Contains(r.errorField("message").(string), "WXPAY_PAYSIGN_PACKAGE") {
		t.Errorf("answer %d %v, want 500 naming WXPAY_PAYSIGN_PACKAGE", r.status, r.body)
	}
}

func TestMaskOpenID(t *testing.T) {
	for in, want := range map[string]string{
		"oxTWIuGaIt6gTKsQRLau2M0yL16E": "oxTW********************L16E",
		"short":                        "*****",
		"":                             "",
	} {
		if got := handler.MaskOpenID(in); got != want {
			t.Errorf("MaskOpenID(%q) = %q, want %q", in, got, want)
		}
	}
}
