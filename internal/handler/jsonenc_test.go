package handler

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// encodingJSON is what encoding/json writes for v with HTML escaping off.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

var jsonStringSeeds = []string{
	"", "plain", `{"mch_billno":"B1","jsapi":{"package":"sendid=1&ver=8"}}`,
	"恭喜发财", "quote \" backslash \\ slash /", "\b\f\n\r\t\x00\x01\x1f\x7f",
	"<html>&amp;</html>", "line\u2028para\u2029end", "bad \xff\xfe utf-8 \xe6\x81", "\xf0\x9f\xa7 cut emoji, whole 🧧",
}

// TestHTTPResponseMatchesEncodingJSON: the hand-written API Gateway
// responses are encoding/json's, byte for byte.
func TestHTTPResponseMatchesEncodingJSON(t *testing.T) {
	headers := map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"}
	for _, body := range jsonStringSeeds {
		for _, status := range []int{200, 400, 502} {
			got := appendHTTPResponse(nil, SourceREST, status, []byte(body))
			want := encodingJSON(t, events.APIGatewayProxyResponse{StatusCode: status, Headers: headers, Body: body})
			if !bytes.Equal(got, want) {
				t.Errorf("REST %d %q:\n got %s\nwant %s", status, body, got, want)
			}
			got = appendHTTPResponse(nil, SourceHTTP, status, []byte(body))
			want = encodingJSON(t, events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: headers, Body: body})
			if !bytes.Equal(got, want) {
				t.Errorf("HTTP API %d %q:\n got %s\nwant %s", status, body, got, want)
			}
		}
	}
}

// FuzzAppendJSONString: any string, UTF-8 or not, is escaped as
// encoding/json escapes it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := encodingJSON(t, s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
		if got := appendJSONString(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("%q as bytes:\n got %s\nwant %s", s, got, want)
		}
	})
}
