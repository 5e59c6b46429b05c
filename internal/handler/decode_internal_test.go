package handler

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// FuzzObjectKeys: whenever the fast key scanner reads a valid JSON
// document, it finds the keys encoding/json finds, in the same order.
func FuzzObjectKeys(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":"x,}\"","b":{"c":[1,{"d":"}"}]},"e":null}`,
		` { "a" : true , "a" : false } `, `{"a\u0062":1}`, `[1]`, `"x"`,
		`{"total_amount":100,"TOTAL_AMOUNT":1e3}`, `{"a":[],"b":{}}`, `{"":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		fast, ok := objectKeys(body)
		if !ok {
			return
		}
		slow, ok := objectKeysSlow(body)
		if !ok {
			t.Fatalf("fast scanner read %q, encoding/json did not", body)
		}
		if !slices.Equal(fast, slow) && !(len(fast) == 0 && len(slow) == 0) {
			t.Fatalf("keys of %q: fast %q, encoding/json %q", body, fast, slow)
		}
	})
}

// FuzzFastEnvelope: whenever the fast envelope reader reads an event, it
// reads what encoding/json reads, and so tells the same source.
func FuzzFastEnvelope(f *testing.F) {
	paths, _ := filepath.Glob("../../events/*/*.json")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"version":"2.0","requestContext":{"http":{"method":"GET"}}}`,
		`{"httpMethod":"POST","requestContext":{},"body":"{\"a\":1}","isBase64Encoded":false}`,
		`{"httpMethod":"POST","requestContext":null}`, `{"HttpMethod":"POST","requestContext":{}}`,
		`{"httpMethod":"POST","httpMethod":"GET","requestContext":{}}`, `{"body":5}`,
		`{"Records":[{"eventSource":"aws:sqs","messageId":"1","body":"x"}]}`,
		`{"version":"2.0","requestContext":{"http":{"method":"POST","METHOD":"GET"}}}`,
		`{"requestContext":{"http":null},"version":"2.0"}`, `{"body":"\u00e9\n"}`,
		`{"body":"a\"b\\c\/d\be\ff\ng\rh\ti"}`, `{"body":"\\\\\""}`, `{"httpMethod":"P\u004fST"}`,
		`{"pathParameters":{"a":null,"b":"x","b":"y","c":"\u00e9"},"queryStringParameters":{}}`, `{"pathParameters":[]}`,
		`{"queryStringParameters":{"appid":5}}`, `{"pathParameters":{"a\u0062":"x"}}`,
		`{"requestContext":{"requestId":"a","RequestID":"b"}}`, `{"requestContext":{"requestId":"a","requestId":"b"}}`,
		`{"version":"2.0","requestContext":{"http":{"method":"GET"},"http":{"method":"POST"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, ok := fastEnvelope(payload) // must not panic, whatever the input
		if !ok || !json.Valid(payload) {
			return // Lambda delivers only valid JSON
		}
		var slow envelope
		if err := json.Unmarshal(payload, &slow); err != nil {
			t.Fatalf("fast reader read %q, encoding/json refused it: %v", payload, err)
		}
		if a, b := sourceOf(fast), sourceOf(&slow); a != b {
			t.Fatalf("source of %q: fast %s, encoding/json %s", payload, a, b)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(&slow)
		if string(fj) != string(sj) {
			t.Fatalf("envelope of %q:\nfast %s\nslow %s", payload, fj, sj)
		}
	})
}

// TestFastEnvelopeReadsTheSamples: every sample event takes the fast path.
func TestFastEnvelopeReadsTheSamples(t *testing.T) {
	paths, _ := filepath.Glob("../../events/*/*.json")
	if len(paths) == 0 {
		t.Fatal("no samples")
	}
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		if _, ok := fastEnvelope(b); !ok && !strings.HasSuffix(p, "direct.json") {
			t.Errorf("%s: the fast envelope reader declined it", p)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	payload, err := os.ReadFile("../../events/sendmini/apigw-rest.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if src, _ := classify(payload); src != SourceREST {
			b.Fatal(src)
		}
	}
}

// plainDecodeTypes are the request types the fast decoder fills.
var plainDecodeTypes = []func() any{
	func() any { return new(wxpay.SendGroupRequest) },
	func() any { return new(wxpay.SendMiniRequest) },
	func() any { return new(wxpay.SendRequest) },
	func() any { return new(wxpay.QueryRequest) },
}

// FuzzDecodePlainMatchesStrict: whatever the fast decoder accepts, the
// strict path (exact keys, then encoding/json) accepts too, with the same
// request.
func FuzzDecodePlainMatchesStrict(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"mch_billno":"B1","total_amount":100}`, `{"mch_billno":"B1","mch_billno":"B2"}`,
		`{"total_amount":-0}`, `{"total_amount":007}`, `{"total_amount":1e2}`, `{"total_amount":1.0}`,
		`{"total_amount":123456789012345678}`, `{"total_amount":"100"}`, `{"wishing":"\u606d"}`,
		`{"wishing":"恭喜发财"}`, `{"TOTAL_AMOUNT":1}`, `{"mch_billno":null}`, `{"mch_billno":"B1"} x`,
		`{"mch_billno":"B1",}`, `{"mch_id":"1"}`, `{"send_name":"a","wxappid":"wx1","total_num":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // decodeRequest refuses it before either path
		}
		for _, newReq := range plainDecodeTypes {
			fast, strict := newReq(), newReq()
			if !decodePlain(body, fast) {
				continue
			}
			if verr := decodeStrict(body, strict); verr != nil {
				t.Fatalf("%T: fast decoder read %q, the strict path refused it: %v", fast, body, verr)
			}
			if !reflect.DeepEqual(fast, strict) {
				t.Fatalf("%T of %q:\nfast   %+v\nstrict %+v", fast, body, fast, strict)
			}
		}
	})
}

// TestDecodePlain: the fast decoder reads plain bodies and leaves anything
// else to the strict path, which refuses or reads it.
func TestDecodePlain(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"mch_billno":"B1","wxappid":"wx1","total_amount":100,"total_num":1}`, true},
		{" {\n\t\"wishing\" : \"恭喜发财\" ,\r\n\"total_amount\":-5 } \n", true},
		{`{}`, true},
		{`{"wishing":"a\nb"}`, false},     // an escape
		{"{\"wishing\":\"a\tb\"}", false}, // a raw control character: not JSON
		{`{"mch_billno":"B1","mch_billno":"B2"}`, false},
		{`{"Mch_Billno":"B1"}`, false},     // not the exact name
		{`{"mch_id":"1900000109"}`, false}, // supplied by the function
		{`{"total_amount":1e2}`, false},    // not a plain integer
		{`{"total_amount":0100}`, false},   // a leading zero is not JSON
		{`{"total_amount":1234567890123456789}`, false},
		{`{"total_amount":"100"}`, false}, // a string for a number
		{`{"mch_billno":100}`, false},     // a number for a string
		{`{"mch_billno":null}`, false},
		{`{"mch_billno":"B1"}{}`, false}, // trailing data
		{`{"mch_billno":"B1",}`, false},
		{`["mch_billno"]`, false},
		{``, false},
	} {
		var req wxpay.SendMiniRequest
		if got := decodePlain([]byte(tc.body), &req); got != tc.want {
			t.Errorf("decodePlain(%q) = %v, want %v", tc.body, got, tc.want)
		}
	}
	var req wxpay.SendMiniRequest
	if !decodePlain([]byte(`{"mch_billno":"B1","wishing":"恭喜发财","total_amount":100,"total_num":1}`), &req) {
		t.Fatal("declined a plain body")
	}
	want := wxpay.SendMiniRequest{MchBillno: "B1", Wishing: "恭喜发财", TotalAmount: 100, TotalNum: 1}
	if req != want {
		t.Errorf("decoded %+v, want %+v", req, want)
	}
}

// TestUnquote: the event's strings are decoded as encoding/json decodes
// them, or left to it.
func TestUnquote(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		decoded bool
	}{
		{`""`, true},
		{`"plain 文字"`, true},
		{`"{\"mch_billno\": \"B1\"}"`, true},
		{`"a\"b\\c\/d\be\ff\ng\rh\ti"`, true},
		{`"\\\\"`, true},
		{`"\u00e9"`, false},   // encoding/json decodes \u escapes
		{"\"a\x01b\"", false}, // a raw control character: not JSON
		{"\"\xff\"", false},   // not UTF-8: encoding/json substitutes U+FFFD
	} {
		got, ok := unquote([]byte(tc.raw[1 : len(tc.raw)-1]))
		if ok != tc.decoded {
			t.Errorf("unquote(%s): ok = %v, want %v", tc.raw, ok, tc.decoded)
			continue
		}
		var want string
		if ok {
			if err := json.Unmarshal([]byte(tc.raw), &want); err != nil {
				t.Fatalf("%s: %v", tc.raw, err)
			}
			if got != want {
				t.Errorf("unquote(%s) = %q, encoding/json %q", tc.raw, got, want)
			}
		}
	}
}

// TestPlainFieldsCoverRequests: every request type takes the fast decoder,
// and a type it cannot fill is left to the strict path, not refused.
func TestPlainFieldsCoverRequests(t *testing.T) {
	for _, newReq := range plainDecodeTypes {
		v := newReq()
		if !requestTypeOf(v).plain {
			t.Errorf("%T: the fast decoder cannot fill it", v)
		}
	}
	var other struct {
		Name  string            `json:"name"`
		Extra map[string]string `json:"extra"`
	}
	if decodePlain([]byte(`{"name":"x"}`), &other) {
		t.Error("decodePlain filled a struct with a field it does not handle")
	}
}
