package handler

import (
	"reflect"
	"strconv"
)

// plainField is one field of a request struct as the fast decoder fills
// it: its exact JSON name, its index in the struct and whether it holds a
// whole number (int64) rather than a string.
type plainField struct {
	name  string
	index int
	isInt bool
}

// decodePlain decodes a plainly written request body into the struct v
// points to, in one pass: a JSON object whose keys are v's field names,
// exactly and once each, whose string values have no escapes and whose
// numbers are whole, short and plain. It declines (ok=false) everything
// else, and decodeRequest's strict path then decodes the body or names
// what is wrong with it; for what it accepts, both give the same request
// (FuzzDecodePlainMatchesStrict). The body must be valid UTF-8. A declined
// body may have filled some of v's fields.
func decodePlain(body []byte, v any) bool {
	rt := requestTypeOf(v)
	if !rt.plain {
		return false
	}
	fields := rt.fields
	rv := reflect.ValueOf(v).Elem()
	var seen uint64
	// One copy of the body, of which the string fields are slices.
	text := string(body)
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return skipSpace(body, i+1) == len(body)
	}
	for {
		key, next, ok := plainJSONString(body, i)
		if !ok {
			return false
		}
		f := -1
		for j := range fields {
			if fields[j].name == string(key) {
				f = j
				break
			}
		}
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return false
		}
		i = skipSpace(body, i+1)
		dst := rv.Field(fields[f].index)
		if fields[f].isInt {
			n, next, ok := plainJSONInt(body, i)
			if !ok {
				return false
			}
			dst.SetInt(n)
			i = next
		} else {
			s, next, ok := plainJSONString(body, i)
			if !ok {
				return false
			}
			start := next - 1 - len(s)
			dst.SetString(text[start : next-1])
			i = next
		}
		i = skipSpace(body, i)
		if i >= len(body) {
			return false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return skipSpace(body, i+1) == len(body)
		default:
			return false
		}
	}
}

// plainJSONString returns the contents of the JSON string starting at
// b[i] and the index past it; ok=false when there is none or it has an
// escape or a control character (which JSON forbids unescaped).
func plainJSONString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// plainJSONInt reads the JSON number starting at b[i] when it is an
// integer of at most 18 digits with no fraction or exponent.
func plainJSONInt(b []byte, i int) (n int64, next int, ok bool) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	switch {
	case i == digits, i-digits > 18:
		return 0, 0, false
	case b[digits] == '0' && i-digits > 1:
		return 0, 0, false // a leading zero is not JSON
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, 0, false
	}
	n, err := strconv.ParseInt(string(b[start:i]), 10, 64)
	return n, i, err == nil
}
