package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// fuzzSeeds are every sample event of every function plus edge cases.
func fuzzSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "*", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no sample events: %v", err)
	}
	var seeds [][]byte
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	mini := validMini("FUZZ1", nil)
	for _, s := range []string{
		``, ` `, `null`, `true`, `0`, `"x"`, `[]`, `{}`, `[{}]`, `{"Records":[]}`, `{"Records":null}`,
		`{"Records":[{}]}`, `{"Records":[{"eventSource":"aws:sqs"}]}`,
		`{"Records":[{"eventSource":"aws:sqs","messageId":"a","body":"{}"},{"eventSource":"aws:kinesis","messageId":"b","body":"x"}]}`,
		`{"requestContext":{},"httpMethod":"POST","body":null}`,
		`{"requestContext":{},"httpMethod":"POST","body":"e30=","isBase64Encoded":true}`,
		`{"requestContext":{},"httpMethod":"POST","body":"!!!","isBase64Encoded":true}`,
		`{"version":"2.0","requestContext":{"http":{}},"body":"{}"}`,
		`{"version":"2.0","requestContext":{"http":{"method":"POST"}},"body":` + strconv.Quote(mini) + `}`,
		`{"version":"1.0","requestContext":{"http":{"method":"POST"}},"body":` + strconv.Quote(mini) + `}`,
		mini,
		validMini("FUZZ2", map[string]any{"total_amount": rawJSON("1e2")}),
		validMini("FUZZ3", map[string]any{"total_amount": rawJSON("-0")}),
		validMini("FUZZ4", map[string]any{"total_amount": rawJSON("100000000000000000000000")}),
		validMini("FUZZ5", map[string]any{"wishing": "a]]>b\r\nc"}),
		validMini("FUZZ6", map[string]any{"remark": "\u0000"}),
		validMini("FUZZ7", map[string]any{"send_name": "\xff\xfe"}),
		validMini("FUZZ8", map[string]any{"mch_billno": rawJSON("null")}),
		validMini("FUZZ9", map[string]any{"scene_id": "PRODUCT_1", "total_amount": 30}),
		strings.Repeat("[", 10000),
		`{"mch_billno":"FUZZ10","appid":"wx8888888888888888"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// simRequestLog collects the simulator's one line per request, which ends
// in the answer's err_code (or SUCCESS, or HTTP 4xx for the gateway).
type simRequestLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *simRequestLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// take returns the lines logged since the last take.
func (l *simRequestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	l.lines = nil
	return lines
}

// refusedAsInvalid reports whether a simulator log line is WeChat
// refusing a request as malformed: what validation must prevent.
func refusedAsInvalid(line string) bool {
	for _, code := range []string{"-> XML_ERROR", "-> SIGN_ERROR", "-> PARAM_ERROR", "-> CA_ERROR", "-> HTTP 4"} {
		if strings.HasSuffix(line, code) || strings.Contains(line, code+" ") {
			return true
		}
	}
	return false
}

// takeLogs returns what was written to b and empties it.
func takeLogs(b *syncBuffer) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// secretNeedles are the strings assertNoSecrets looks for, computed once.
func secretNeedles(m *wxpaytest.MerchantFiles) []string {
	needles := []string{m.APIKey, "PRIVATE KEY", "BEGIN CERTIFICATE"}
	for _, line := range strings.Split(string(m.KeyPEM)+"\n"+string(m.CertPEM), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			needles = append(needles, line)
		}
	}
	return needles
}

// FuzzInvoke: whatever the payload, every function's Invoke returns, never
// panics, and answers JSON of the expected shape; an invalid request never
// reaches WeChat (the simulator never answers one as malformed, and every
// red packet in its ledger passes validation); a 400 sends nothing; and
// no log line carries secret material.
func FuzzInvoke(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	simLog := &simRequestLog{}
	w := newWorld(f, unlimited, wxpaytest.WithLogf(simLog.logf))
	w.settings.DefaultAppID = "wx8888888888888888"
	handlers := make([]*handler.Handler, len(benchOps))
	for i, op := range benchOps {
		handlers[i] = w.handler(op)
	}
	needles := secretNeedles(w.sim.Merchant())
	var ledger int // ledger entries already checked (one per payment)

	f.Fuzz(func(t *testing.T, payload []byte) {
		for i, h := range handlers {
			op := benchOps[i]
			before := w.sim.Requests()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := h.Invoke(ctx, payload)
			cancel()
			if err != nil {
				t.Fatalf("%s: Invoke returned an error: %v", op.Name(), err)
			}
			sent := w.sim.Requests() - before
			checkFuzzAnswer(t, op, out, sent)
		}
		for _, line := range simLog.take() {
			if refusedAsInvalid(line) {
				t.Errorf("an invalid request reached WeChat: %s", line)
			}
		}
		if w.sim.TotalPayments() > ledger {
			records := w.sim.Records()
			for _, rec := range records[ledger:] {
				if err := validRecord(rec); err != nil {
					t.Errorf("ledger entry %s (%s) would not pass validation: %v", rec.MchBillno, rec.API, err)
				}
				if n := w.sim.Payments(rec.MchBillno); n != 1 {
					t.Errorf("Payments(%s) = %d", rec.MchBillno, n)
				}
			}
			ledger = len(records)
		}
		logs := takeLogs(w.logs)
		for _, n := range needles {
			// (Logs echo the caller's billno: a payload carrying a needle
			// itself proves nothing.)
			if strings.Contains(logs, n) && !bytes.Contains(payload, []byte(n)) {
				t.Fatalf("secret material %.12q... in the logs", n)
			}
		}
	})
}

// checkFuzzAnswer checks one answer's shape, and that a refused request
// sent nothing.
func checkFuzzAnswer(t *testing.T, op handler.Operation, out []byte, sent int) {
	t.Helper()
	apiAnswer := func(status int, headers map[string]string, body string) {
		if headers["Content-Type"] != "application/json" {
			t.Errorf("%s: Content-Type %q", op.Name(), headers["Content-Type"])
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%s: body %q is not a JSON object: %v", op.Name(), body, err)
		}
		checkFuzzBody(t, op, status, m, sent)
	}
	var shape struct {
		StatusCode        *int                          `json:"statusCode"`
		Headers           map[string]string             `json:"headers"`
		Body              string                        `json:"body"`
		BatchItemFailures *[]events.SQSBatchItemFailure `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(out, &shape); err != nil {
		t.Fatalf("%s: the answer %s is not a JSON object: %v", op.Name(), out, err)
	}
	switch {
	case shape.StatusCode != nil:
		apiAnswer(*shape.StatusCode, shape.Headers, shape.Body)
	case bytes.HasPrefix(out, []byte(`{"batchItemFailures":`)):
		if shape.BatchItemFailures == nil {
			t.Errorf("%s: batchItemFailures is null", op.Name())
		}
	default:
		// A direct invoke's answer: the contract's body, success or error.
		if !bytes.HasPrefix(out, []byte(`{"mch_billno":`)) && !bytes.HasPrefix(out, []byte(`{"error":`)) {
			t.Fatalf("%s: answer of no known shape: %s", op.Name(), out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("%s: direct answer %s is not a JSON object: %v", op.Name(), out, err)
		}
		status := 200
		if m["error"] != nil {
			status = 0 // a direct invoke carries no status
		}
		checkFuzzBody(t, op, status, m, sent)
	}
}

// checkFuzzBody checks a contract body: success with a billno, or the
// error object; INVALID_REQUEST names a field and sent nothing.
func checkFuzzBody(t *testing.T, op handler.Operation, status int, m map[string]any, sent int) {
	t.Helper()
	e, isErr := m["error"].(map[string]any)
	if !isErr {
		if status != 200 {
			t.Errorf("%s: status %d without an error object: %v", op.Name(), status, m)
		}
		if s, _ := m["mch_billno"].(string); s == "" {
			t.Errorf("%s: success without mch_billno: %v", op.Name(), m)
		}
		if sent == 0 {
			t.Errorf("%s: success, but WeChat was never called: %v", op.Name(), m)
		}
		return
	}
	code, _ := e["code"].(string)
	outcome, _ := e["outcome"].(string)
	if code == "" || !slices.Contains([]string{"failed", "unknown", "not_found"}, outcome) {
		t.Errorf("%s: malformed error %v", op.Name(), e)
	}
	if status == 200 {
		t.Errorf("%s: status 200 with an error: %v", op.Name(), m)
	}
	if code == handler.CodeInvalidRequest {
		if f, _ := e["field"].(string); f == "" {
			t.Errorf("%s: INVALID_REQUEST names no field: %v", op.Name(), e)
		}
		if outcome != "failed" {
			t.Errorf("%s: INVALID_REQUEST with outcome %s", op.Name(), outcome)
		}
		if sent != 0 {
			t.Errorf("%s: answered INVALID_REQUEST after sending %d requests to WeChat", op.Name(), sent)
		}
	}
}

// validRecord checks a ledger entry as the client validates a request.
func validRecord(r wxpaytest.Record) error {
	switch r.API {
	case "sendgroupredpack":
		return (&wxpay.SendGroupRequest{MchBillno: r.MchBillno, WxAppID: r.WxAppID, SendName: r.SendName, ReOpenID: r.ReOpenID,
			TotalAmount: r.TotalAmount, TotalNum: r.TotalNum, AmtType: wxpay.AmtTypeAllRand, Wishing: r.Wishing, ActName: r.ActName,
			Remark: r.Remark, SceneID: r.SceneID}).Validate()
	case "sendminiprogramhb":
		return (&wxpay.SendMiniRequest{MchBillno: r.MchBillno, WxAppID: r.WxAppID, SendName: r.SendName, ReOpenID: r.ReOpenID,
			TotalAmount: r.TotalAmount, TotalNum: r.TotalNum, Wishing: r.Wishing, ActName: r.ActName, Remark: r.Remark,
			SceneID: r.SceneID}).Validate()
	case "sendredpack":
		return (&wxpay.SendRequest{MchBillno: r.MchBillno, WxAppID: r.WxAppID, SendName: r.SendName, ReOpenID: r.ReOpenID,
			TotalAmount: r.TotalAmount, TotalNum: r.TotalNum, Wishing: r.Wishing, ClientIP: r.ClientIP, ActName: r.ActName,
			Remark: r.Remark, SceneID: r.SceneID}).Validate()
	}
	return fmt.Errorf("unknown API %q", r.API)
}

// FuzzDecodeRequest: a direct invoke's body is either refused as
// INVALID_REQUEST naming a field, or it is a request the client accepts
// as is: it decodes strictly into the API's request type, validates, and
// its signed <xml> body carries exactly the caller's values. The handler
// has no credentials (a store without a secret), so a request that passed
// validation answers CONFIG_ERROR and nothing is ever sent.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	logger := handler.NewLogger(io.Discard, "ERROR")
	handlers := make([]*handler.Handler, len(benchOps))
	for i, op := range benchOps {
		handlers[i] = handler.New(op, credstore.New(credstore.Config{Logger: slog.New(slog.DiscardHandler)}), handler.Settings{}, logger)
	}
	m, err := wxpaytest.NewMerchant(wxpaytest.DefaultMchID, nil)
	if err != nil {
		f.Fatal(err)
	}
	creds, err := m.Credentials()
	if err != nil {
		f.Fatal(err)
	}
	client, err := wxpay.NewClient(wxpay.Config{Credentials: creds})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		for i, h := range handlers {
			op := benchOps[i]
			raw, err := h.Invoke(context.Background(), body)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.HasPrefix(raw, []byte(`{"statusCode":`)) || bytes.HasPrefix(raw, []byte(`{"batchItemFailures":`)) {
				continue // the body looked like another event source
			}
			var ans struct {
				Error *struct {
					Code, Field string
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &ans); err != nil || ans.Error == nil {
				t.Fatalf("%s: answer %s: %v", op.Name(), raw, err)
			}
			switch ans.Error.Code {
			case handler.CodeInvalidRequest:
				if ans.Error.Field == "" {
					t.Errorf("%s: INVALID_REQUEST names no field: %s", op.Name(), raw)
				}
			case handler.CodeConfig:
				// Validation passed: the client must send exactly this.
				if !checkAccepted(t, client, creds.APIKey, op, body) {
					t.Errorf("%s: accepted a key that is a field name only up to case: %q", op.Name(), body)
				}
			default:
				t.Errorf("%s: answer %s, want INVALID_REQUEST or CONFIG_ERROR", op.Name(), raw)
			}
		}
	})
}

// exactFields are the JSON names of each API's request type.
var exactFields = map[string]map[string]bool{
	"sendgroup": jsonNames(wxpay.SendGroupRequest{}),
	"sendmini":  jsonNames(wxpay.SendMiniRequest{}),
	"send":      jsonNames(wxpay.SendRequest{}),
	"query":     jsonNames(wxpay.QueryRequest{}),
}

func jsonNames(v any) map[string]bool {
	names := map[string]bool{}
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}

// checkAccepted checks a body the handler accepted: its keys are the
// API's exact field names, it decodes strictly into the request type and
// validates, and its signed <xml> body carries the body's values. It
// returns false, having checked nothing else, when the handler accepted a
// key that is a field name only up to case.
func checkAccepted(t *testing.T, client *wxpay.Client, key string, op handler.Operation, body []byte) bool {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("%s: accepted %q, which is not a JSON object: %v", op.Name(), body, err)
	}
	for k := range keys {
		if !exactFields[op.Name()][k] {
			return false
		}
	}
	strict := func(v any) {
		d := json.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			t.Fatalf("%s: accepted %q, which does not decode strictly: %v", op.Name(), body, err)
		}
	}
	var (
		xmlBody []byte
		err     error
	)
	switch op {
	case handler.SendGroup:
		var r wxpay.SendGroupRequest
		strict(&r)
		xmlBody, err = client.BuildSendGroup(&r)
	case handler.SendMini:
		var r wxpay.SendMiniRequest
		strict(&r)
		xmlBody, err = client.BuildSendMini(&r)
	case handler.Send:
		var r wxpay.SendRequest
		strict(&r)
		xmlBody, err = client.BuildSend(&r)
	case handler.Query:
		var r wxpay.QueryRequest
		strict(&r)
		xmlBody, err = client.BuildQuery(&r)
	}
	if err != nil {
		t.Fatalf("%s: accepted %q, which the client refuses: %v", op.Name(), body, err)
	}
	params, err := wxpay.DecodeXML(xmlBody)
	if err != nil {
		t.Fatalf("%s: the signed body does not decode: %v\n%s", op.Name(), err, xmlBody)
	}
	if !wxpay.VerifySign(params, key) {
		t.Errorf("%s: the signature of %s does not verify after the XML round trip", op.Name(), xmlBody)
	}
	var fields map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&fields); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		want := fmt.Sprint(v)
		if v == nil {
			want = ""
		}
		if params[k] != want {
			t.Errorf("%s: %s is %q in the signed body, %q in the request", op.Name(), k, params[k], want)
		}
	}
	return true
}

// TestFieldNamesAreExact: a field name is WeChat's, byte for byte. One
// that matches only up to case is a second value for the field (which
// would win, last in the object), so it is refused, and nothing is sent.
func TestFieldNamesAreExact(t *testing.T) {
	w := newWorld(t)
	h := w.handler(handler.SendMini)
	with := func(billno, extra string) string {
		return strings.TrimSuffix(validMini(billno, nil), "}") + "," + extra + "}"
	}
	cases := []struct{ name, billno, body string }{
		{"upper-case repeat", "EXACT1", with("EXACT1", `"TOTAL_AMOUNT":20000`)},
		{"mixed-case repeat", "EXACT2", with("EXACT2", `"Re_OpenID":"oSomeoneElse0000000000000000"`)},
		{"long s (U+017F)", "EXACT3", with("EXACT3", `"ſend_name":"EVIL"`)},
		{"Kelvin sign (U+212A)", "EXACT4", with("EXACT4", `"remar\u212a":"kelvin"`)},
		{"upper-case only", "EXACT5", `{"MCH_BILLNO":"EXACT5","wxappid":"wx8888888888888888","send_name":"a","re_openid":"oxTWIuGaIt6gTKsQRLau2M0yL16E","total_amount":100,"total_num":1,"wishing":"a","act_name":"a","remark":"a"}`},
		{"empty key", "EXACT6", with("EXACT6", `"":1`)},
		{"repeated empty key", "", `{"":1,"":2}`},
	}
	var failures []string
	for _, tc := range cases {
		r := decodeReply(t, "direct", invoke(t, h, []byte(tc.body)))
		if r.errorField("code") != handler.CodeInvalidRequest || r.errorField("field") == nil {
			msg := fmt.Sprintf("%s: answered %v", tc.name, r.body["error"])
			if r.body["error"] == nil {
				rec, _ := w.sim.Record(tc.billno)
				msg = fmt.Sprintf("%s: SENT, paid %d fen to %s, send_name %q, remark %q", tc.name, rec.TotalAmount, rec.ReOpenID, rec.SendName, rec.Remark)
			}
			failures = append(failures, msg)
		}
	}
	if n := w.sim.Requests(); n != 0 {
		failures = append(failures, fmt.Sprintf("%d requests reached WeChat", n))
	}
	if len(failures) > 0 {
		t.Errorf("field names must be exact:\n%s", strings.Join(failures, "\n"))
	}
}
