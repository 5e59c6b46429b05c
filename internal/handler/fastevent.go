package handler

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// envelopeKeys are the top-level keys the envelope reads.
var envelopeKeys = []string{"version", "httpMethod", "requestContext", "body", "isBase64Encoded", "pathParameters", "queryStringParameters", "Records"}

// fastEnvelope reads an event's envelope without running encoding/json over
// the whole event (headers, identity and the rest are skipped by a byte
// scan). It declines (ok=false) anything that is not plainly shaped: keys
// with escapes, a key matching an envelope key only up to case (which
// encoding/json would fill), repeated envelope keys, or a value of an
// unexpected type; classify then decodes with encoding/json.
// FuzzFastEnvelope checks that both read the same from valid JSON.
//
// It does not validate the parts of the event it skips: Lambda only ever
// delivers valid JSON (its Invoke API refuses anything else), and the
// request body it extracts is decoded strictly later.
func fastEnvelope(payload []byte) (*envelope, bool) {
	env := &envelope{}
	var seen uint64
	ok := objectFields(payload, func(key, raw []byte) bool {
		if i, ok := memberIndex(envelopeKeys, key, &seen); i < 0 || !ok {
			return ok
		}
		switch string(key) {
		case "version":
			return plainString(raw, &env.Version)
		case "httpMethod":
			return plainString(raw, &env.HTTPMethod)
		case "body":
			if string(raw) == "null" {
				return true
			}
			var body string
			if !plainString(raw, &body) {
				return false
			}
			env.Body = &body
			return true
		case "isBase64Encoded":
			switch string(raw) {
			case "true":
				env.IsBase64Encoded = true
				return true
			case "false", "null":
				return true
			}
			return false
		case "pathParameters":
			return plainStringMap(raw, &env.PathParameters)
		case "queryStringParameters":
			return plainStringMap(raw, &env.QueryStringParameters)
		case "Records":
			return string(raw) == "null" || json.Unmarshal(raw, &env.Records) == nil
		case "requestContext":
			return fastRequestContext(raw, env)
		}
		return true
	})
	return env, ok
}

// memberIndex returns the index of key in names, marking it in *seen, or
// -1 for a key unrelated to names. It returns ok=false for a key seen
// before and for one encoding/json would take for one of names though it
// matches only up to case: the fast readers leave both to encoding/json.
func memberIndex(names []string, key []byte, seen *uint64) (_ int, ok bool) {
	for i, name := range names {
		if name == string(key) {
			if *seen&(1<<i) != 0 {
				return i, false
			}
			*seen |= 1 << i
			return i, true
		}
	}
	for _, name := range names {
		if equalFold(name, key) {
			return -1, false
		}
	}
	return -1, true
}

// equalFold is strings.EqualFold for a key still in the event's bytes.
func equalFold(name string, key []byte) bool {
	return bytes.EqualFold([]byte(name), key)
}

// The members of requestContext and of its http that the envelope reads.
var (
	requestContextKeys = []string{"requestId", "http"}
	httpKeys           = []string{"method"}
)

// fastRequestContext reads requestContext's presence, requestId and
// http.method.
func fastRequestContext(raw []byte, env *envelope) bool {
	if string(raw) == "null" {
		return true
	}
	if raw[0] != '{' {
		return false
	}
	rc := &struct {
		RequestID string `json:"requestId"`
		HTTP      *struct {
			Method string `json:"method"`
		} `json:"http"`
	}{}
	env.RequestContext = rc
	var seen uint64
	return objectFields(raw, func(key, v []byte) bool {
		switch i, ok := memberIndex(requestContextKeys, key, &seen); {
		case i < 0 || !ok:
			return ok
		case i == 0:
			return plainString(v, &rc.RequestID)
		case string(v) == "null":
			return true
		case v[0] != '{':
			return false
		}
		rc.HTTP = &struct {
			Method string `json:"method"`
		}{}
		var seenMethod uint64
		return objectFields(v, func(k, m []byte) bool {
			if i, ok := memberIndex(httpKeys, k, &seenMethod); i < 0 || !ok {
				return ok
			}
			return plainString(m, &rc.HTTP.Method)
		})
	})
}

// plainStringMap stores a JSON object of strings in dst, a null member as
// "" and a repeated key's last value, as encoding/json does; null leaves
// dst as it is. It returns false for anything else, having perhaps filled
// part of dst.
func plainStringMap(raw []byte, dst *map[string]string) bool {
	if string(raw) == "null" {
		return true
	}
	m := make(map[string]string)
	*dst = m
	return objectFields(raw, func(key, v []byte) bool {
		var s string
		if !plainString(v, &s) {
			return false
		}
		// A repeated key: the last value wins, as with encoding/json.
		m[string(key)] = s
		return true
	})
}

// plainString stores a JSON string in dst (null leaves dst as it is, as
// with encoding/json); false for another type.
func plainString(raw []byte, dst *string) bool {
	if string(raw) == "null" {
		return true
	}
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	if v, ok := unquote(raw[1 : len(raw)-1]); ok {
		*dst = v
		return true
	}
	return json.Unmarshal(raw, dst) == nil
}

// unquote decodes the inside of a JSON string whose escapes are all of
// the two-character kind (\" \\ \/ \b \f \n \r \t), as an API Gateway
// event's JSON body is. It declines \u escapes, control characters and
// text that is not UTF-8, which encoding/json decodes (or refuses).
func unquote(s []byte) (string, bool) {
	if !utf8.Valid(s) {
		return "", false
	}
	var out strings.Builder
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '\\' {
			continue
		}
		if c < 0x20 || i+1 == len(s) {
			return "", false
		}
		if out.Cap() == 0 {
			out.Grow(len(s))
		}
		out.Write(s[start:i])
		i++
		switch c = s[i]; c {
		case '"', '\\', '/':
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default:
			return "", false
		}
		out.WriteByte(c)
		start = i + 1
	}
	if out.Cap() == 0 {
		return string(s), true
	}
	out.Write(s[start:])
	return out.String(), true
}

// objectFields calls fn with each member of the JSON object b: its key,
// spelled exactly (in b's bytes: fn copies what it keeps), and its raw
// value. It returns false if b is not an object, a key has escapes or
// control characters or is not UTF-8, or fn returns false. It
// delimits values without validating them (b is expected to be valid JSON)
// and never reads out of bounds.
func objectFields(b []byte, fn func(key, raw []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return true
	}
	for {
		key, next, ok := plainJSONString(b, i)
		if !ok || !utf8.Valid(key) {
			return false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		start := skipSpace(b, i+1)
		stop := skipValue(b, start)
		if stop < 0 || stop <= start {
			return false
		}
		if !fn(key, b[start:stop]) {
			return false
		}
		i = skipSpace(b, stop)
		if i < len(b) && b[i] == '}' {
			return true
		}
		if i >= len(b) || b[i] != ',' {
			return false
		}
		i = skipSpace(b, i+1)
	}
}
