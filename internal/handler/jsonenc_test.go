package handler

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// encodingJSON is what encoding/json writes for v with HTML escaping off
// (marshal, the handler's path for everything it does not write by hand).
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	out, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
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

// FuzzAppendResultMatchesEncodingJSON: the hand-written result bodies are
// encoding/json's, byte for byte, whichever members are empty.
func FuzzAppendResultMatchesEncodingJSON(f *testing.F) {
	for i, s := range jsonStringSeeds {
		f.Add(s, "oxTWIuGaIt6gTKsQRLau2M0yL16E", int64(i*100), uint8(i*37))
	}
	f.Add("", "", int64(0), uint8(0))
	f.Add("x", "y", int64(-1), uint8(255))
	f.Fuzz(func(t *testing.T, s, openid string, n int64, mask uint8) {
		// mask empties members, so that each omitempty case is reached.
		v := func(bit uint, value string) string {
			if mask&(1<<bit) != 0 {
				return ""
			}
			return value
		}
		num := func(bit uint) int64 {
			if mask&(1<<bit) != 0 {
				return 0
			}
			return n
		}
		send := wxpay.SendResult{MchBillno: v(0, s), MchID: v(1, "1900000109"), WxAppID: v(2, s), ReOpenID: v(3, openid),
			TotalAmount: num(4), SendListID: v(5, s), Attempts: 2}
		mini := &wxpay.SendMiniResult{SendResult: send, Package: v(6, s), JSAPI: wxpay.JSAPIParams{
			TimeStamp: v(7, "1795420800"), NonceStr: v(0, s), Package: v(1, s), SignType: "MD5", PaySign: v(2, s)}}
		var receivers []wxpay.Receiver
		if mask&(1<<7) == 0 {
			receivers = []wxpay.Receiver{}
			for i := range int(mask % 3) {
				receivers = append(receivers, wxpay.Receiver{OpenID: v(uint(i), openid), Amount: num(uint(i + 1)), RcvTime: v(uint(i+2), s)})
			}
		}
		query := &wxpay.QueryResult{MchBillno: v(0, s), MchID: "1900000109", DetailID: v(1, s), Status: v(2, s),
			SendType: v(3, s), HBType: v(4, s), TotalNum: num(5), TotalAmount: num(6), Reason: v(7, s),
			SendTime: v(0, s), RefundTime: v(1, s), RefundAmount: num(2), Wishing: v(3, s), Remark: v(4, s),
			ActName: v(5, s), Receivers: receivers, Attempts: 1}
		for _, result := range []any{&send, mini, query} {
			got, ok := appendResult(nil, result)
			if !ok {
				t.Fatalf("%T: not written", result)
			}
			if want := encodingJSON(t, result); !bytes.Equal(got, want) {
				t.Fatalf("%T:\n got %s\nwant %s", result, got, want)
			}
		}
	})
}

// fillAll sets every field of the struct v (and of its structs and slice
// elements) to a value that is not empty, so that no member is left out
// as omitempty.
func fillAll(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v-" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Struct:
			fillAll(f)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 2, 2))
			for j := range 2 {
				fillAll(f.Index(j))
			}
		default:
			panic("fillAll: a field of kind " + f.Kind().String())
		}
	}
}

// TestAppendResultWritesEveryMember: with every field set, the hand-written
// bodies are still encoding/json's: a member added to a result type and
// not to appendResult fails here.
func TestAppendResultWritesEveryMember(t *testing.T) {
	for _, result := range []any{new(wxpay.SendResult), new(wxpay.SendMiniResult), new(wxpay.QueryResult)} {
		fillAll(reflect.ValueOf(result).Elem())
		got, ok := appendResult(nil, result)
		if !ok {
			t.Fatalf("%T: not written", result)
		}
		if want := encodingJSON(t, result); !bytes.Equal(got, want) {
			t.Errorf("%T:\n got %s\nwant %s", result, got, want)
		}
	}
}
