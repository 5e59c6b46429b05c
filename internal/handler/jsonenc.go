package handler

import (
	"strconv"
	"unicode/utf8"
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

// appendEscaped appends s as a JSON string; shortBF chooses \b and \f over
// \u0008 and \u000c.
func appendEscaped[T string | []byte](dst []byte, s T, shortBF bool) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
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
