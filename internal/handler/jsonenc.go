package handler

import (
	"strconv"
	"unicode/utf8"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// The hot path's answers are written by hand: encoding/json's reflection
// over an API Gateway response costs more than the rest of answering. What
// is written here is byte for byte what encoding/json writes with HTML
// escaping off (TestHTTPResponseMatchesEncodingJSON,
// FuzzAppendJSONString).

// Fixed parts of an API Gateway proxy response; headers in encoding/json's
// (sorted) key order.
const (
	responseHead    = `{"statusCode":`
	responseHeaders = `,"headers":{"Cache-Control":"no-store","Content-Type":"application/json"},"multiValueHeaders":null,"body":`
)

// appendHTTPResponse appends the JSON of the API Gateway response carrying
// status and body: events.APIGatewayProxyResponse for REST APIs, and
// events.APIGatewayV2HTTPResponse (with its cookies) for HTTP APIs.
func appendHTTPResponse(dst []byte, src Source, status int, body []byte) []byte {
	dst = append(dst, responseHead...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, responseHeaders...)
	dst = appendJSONString(dst, body)
	if src == SourceHTTP {
		dst = append(dst, `,"cookies":null`...)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it with HTML escaping off: quotes, backslashes and control
// characters; U+2028 and U+2029 (which JavaScript reads as line ends); and
// each byte that is not UTF-8 as U+FFFD.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	return appendEscaped(dst, s, true)
}

// appendLogString appends s as slog.JSONHandler writes strings: as
// encoding/json does, except that backspace and form feed are \u0008 and
// \u000c.
func appendLogString(dst []byte, s string) []byte {
	return appendEscaped(dst, s, false)
}

// plainASCII marks the bytes a JSON string holds as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendEscaped appends s as a JSON string; shortBF chooses \b and \f over
// \u0008 and \u000c.
func appendEscaped[T string | []byte](dst []byte, s T, shortBF bool) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if plainASCII[s[i]] {
			i++
			continue
		}
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b', '\f':
				if !shortBF {
					dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				} else if c == '\b' {
					dst = append(dst, '\\', 'b')
				} else {
					dst = append(dst, '\\', 'f')
				}
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendResult appends the JSON of a call's result, as encoding/json
// writes it (FuzzAppendResultMatchesEncodingJSON); ok=false for a type it
// does not know.
func appendResult(dst []byte, result any) (_ []byte, ok bool) {
	switch r := result.(type) {
	case *wxpay.SendResult:
		dst = appendSendResult(append(dst, '{'), r)
	case *wxpay.SendMiniResult:
		dst = appendSendResult(append(dst, '{'), &r.SendResult)
		dst = appendStringField(dst, `,"package":`, r.Package)
		dst = appendStringField(dst, `,"jsapi":{"timeStamp":`, r.JSAPI.TimeStamp)
		dst = appendStringField(dst, `,"nonceStr":`, r.JSAPI.NonceStr)
		dst = appendStringField(dst, `,"package":`, r.JSAPI.Package)
		dst = appendStringField(dst, `,"signType":`, r.JSAPI.SignType)
		dst = appendStringField(dst, `,"paySign":`, r.JSAPI.PaySign)
		dst = append(dst, '}')
	case *wxpay.QueryResult:
		dst = appendQueryResult(dst, r)
	default:
		return nil, false
	}
	return append(dst, '}'), true
}

// appendSendResult appends SendResult's members.
func appendSendResult(dst []byte, r *wxpay.SendResult) []byte {
	dst = appendStringField(dst, `"mch_billno":`, r.MchBillno)
	dst = appendStringField(dst, `,"mch_id":`, r.MchID)
	dst = appendStringField(dst, `,"wxappid":`, r.WxAppID)
	dst = appendStringField(dst, `,"re_openid":`, r.ReOpenID)
	dst = strconv.AppendInt(append(dst, `,"total_amount":`...), r.TotalAmount, 10)
	return appendStringField(dst, `,"send_listid":`, r.SendListID)
}

// appendQueryResult appends QueryResult's object but for its closing brace,
// leaving out the empty omitempty members as encoding/json does.
func appendQueryResult(dst []byte, r *wxpay.QueryResult) []byte {
	optional := func(dst []byte, member, value string) []byte {
		if value == "" {
			return dst
		}
		return appendStringField(dst, member, value)
	}
	dst = appendStringField(dst, `{"mch_billno":`, r.MchBillno)
	dst = appendStringField(dst, `,"mch_id":`, r.MchID)
	dst = appendStringField(dst, `,"detail_id":`, r.DetailID)
	dst = appendStringField(dst, `,"status":`, r.Status)
	dst = optional(dst, `,"send_type":`, r.SendType)
	dst = optional(dst, `,"hb_type":`, r.HBType)
	dst = strconv.AppendInt(append(dst, `,"total_num":`...), r.TotalNum, 10)
	dst = strconv.AppendInt(append(dst, `,"total_amount":`...), r.TotalAmount, 10)
	dst = optional(dst, `,"reason":`, r.Reason)
	dst = optional(dst, `,"send_time":`, r.SendTime)
	dst = optional(dst, `,"refund_time":`, r.RefundTime)
	if r.RefundAmount != 0 {
		dst = strconv.AppendInt(append(dst, `,"refund_amount":`...), r.RefundAmount, 10)
	}
	dst = optional(dst, `,"wishing":`, r.Wishing)
	dst = optional(dst, `,"remark":`, r.Remark)
	dst = optional(dst, `,"act_name":`, r.ActName)
	dst = append(dst, `,"hblist":`...)
	if r.Receivers == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, rcv := range r.Receivers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendStringField(dst, `{"openid":`, rcv.OpenID)
		dst = strconv.AppendInt(append(dst, `,"amount":`...), rcv.Amount, 10)
		dst = appendStringField(dst, `,"rcv_time":`, rcv.RcvTime)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendStringField appends member (the JSON up to a string value) and
// the string.
func appendStringField(dst []byte, member, value string) []byte {
	return appendJSONString(append(dst, member...), value)
}
