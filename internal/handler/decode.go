package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// maxBodySize bounds a request body. Red packet requests are well under a
// kilobyte.
const maxBodySize = 64 << 10

var errTooLarge = errors.New("request body exceeds 64 KiB")

// suppliedFields are filled by the function; a caller may not send them.
var suppliedFields = map[string]bool{"mch_id": true, "nonce_str": true, "sign": true, "sign_type": true}

// decodeRequest decodes body into v strictly: one JSON object, each field
// known to the API and given once, no trailing data. Errors name the field.
func decodeRequest(body []byte, v any) *wxpay.ValidationError {
	if len(body) > maxBodySize {
		return &wxpay.ValidationError{Field: "body", Reason: errTooLarge.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &wxpay.ValidationError{Field: "body", Reason: "is empty; want a JSON object"}
	}
	if !utf8.Valid(body) {
		// encoding/json would replace the bad bytes with U+FFFD: the
		// red packet would carry text the caller never sent.
		return &wxpay.ValidationError{Field: "body", Reason: "is not valid UTF-8"}
	}
	if decodePlain(body, v) {
		return nil
	}
	// Not plainly written, or not right: decode it strictly from scratch.
	reflect.ValueOf(v).Elem().SetZero()
	return decodeStrict(body, v)
}

// decodeStrict decodes body, valid UTF-8, with encoding/json once checkKeys
// has admitted its keys.
func decodeStrict(body []byte, v any) *wxpay.ValidationError {
	if verr := checkKeys(body, requestTypeOf(v).names); verr != nil {
		return verr
	}
	// checkKeys admitted only v's exact field names, each once, in one
	// valid JSON object: what remains for encoding/json is the values.
	if err := json.Unmarshal(body, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// checkKeys walks the object's top-level keys. Each must be one of known,
// spelled exactly (encoding/json would also fill total_amount from a key
// TOTAL_AMOUNT, and the last of the two would win), and given once;
// function-supplied fields are refused.
func checkKeys(body []byte, known map[string]bool) *wxpay.ValidationError {
	if !json.Valid(body) {
		return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
	}
	keys, ok := objectKeys(body)
	if !ok {
		if first := bytes.TrimLeft(body, " \t\r\n"); len(first) == 0 || first[0] != '{' {
			return &wxpay.ValidationError{Field: "body", Reason: "must be a JSON object"}
		}
		// A key with escapes: encoding/json reads the keys.
		if keys, ok = objectKeysSlow(body); !ok {
			return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
		}
	}
	seen := make(map[string]bool, len(keys))
	for _, key := range keys {
		switch {
		case suppliedFields[key]:
			return &wxpay.ValidationError{Field: key, Reason: "is supplied by the function and must not be sent"}
		case key == "":
			return &wxpay.ValidationError{Field: "body", Reason: "has an empty key"}
		case !known[key]:
			for name := range known {
				if strings.EqualFold(name, key) {
					return &wxpay.ValidationError{Field: key, Reason: fmt.Sprintf("is not a field of this API (field names are exact: %q)", name)}
				}
			}
			return &wxpay.ValidationError{Field: key, Reason: "is not a field of this API"}
		case seen[key]:
			return &wxpay.ValidationError{Field: key, Reason: "appears more than once"}
		}
		seen[key] = true
	}
	return nil
}

// objectKeys returns the top-level keys of body, which must be valid JSON,
// in order. It declines (ok=false) what is not an object and keys with
// escapes or bytes that are not UTF-8, for objectKeysSlow.
func objectKeys(body []byte) (keys []string, ok bool) {
	ok = objectFields(body, func(key, _ []byte) bool {
		keys = append(keys, string(key))
		return true
	})
	return keys, ok
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i, or
// -1. It relies on the document being valid JSON.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			if i = skipString(b, i); i < 0 {
				return -1
			}
			if depth == 0 {
				return i
			}
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
			if depth == 0 {
				return i
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}

// skipString returns the index just past the JSON string whose opening
// quote is b[i], or -1 when it does not end.
func skipString(b []byte, i int) int {
	for from := i + 1; from < len(b); {
		q := bytes.IndexByte(b[from:], '"')
		if q < 0 {
			return -1
		}
		q += from
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p >= from && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		from = q + 1
	}
	return -1
}

// objectKeysSlow reads the top-level keys with encoding/json's tokenizer,
// which decodes escapes in keys.
func objectKeysSlow(body []byte) ([]string, bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		keys = append(keys, key)
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return nil, false
		}
	}
	return keys, true
}

// requestType is what decoding needs to know of a request struct, read
// once per type from its json tags.
type requestType struct {
	// names are the exact JSON field names, for checkKeys.
	names map[string]bool
	// fields are the same fields, for decodePlain.
	fields []plainField
	// plain is false when a field is neither a string nor an int64 (the
	// request types have only those) or there are too many for
	// decodePlain's bit set: such a type takes the strict path alone.
	plain bool
}

// requestTypes caches each request type's requestType.
var requestTypes sync.Map // reflect.Type -> *requestType

// requestTypeOf returns the requestType of the struct v points to.
func requestTypeOf(v any) *requestType {
	t := reflect.TypeOf(v).Elem()
	if rt, ok := requestTypes.Load(t); ok {
		return rt.(*requestType)
	}
	rt := &requestType{names: make(map[string]bool, t.NumField()), plain: t.NumField() <= 64}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		rt.names[name] = true
		switch f.Type.Kind() {
		case reflect.String:
			rt.fields = append(rt.fields, plainField{name: name, index: i})
		case reflect.Int64:
			rt.fields = append(rt.fields, plainField{name: name, index: i, isInt: true})
		default:
			rt.plain = false
		}
	}
	requestTypes.Store(t, rt)
	return rt
}

// jsonError turns a decoding error into a ValidationError naming the field.
func jsonError(err error) *wxpay.ValidationError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			return &wxpay.ValidationError{Field: "body", Reason: "must be a JSON object"}
		}
		want := "a string"
		switch typeErr.Type.Kind() {
		case reflect.Int64, reflect.Int:
			want = "a whole number"
			if field == "total_amount" {
				want = "a whole number of fen"
			}
		}
		return &wxpay.ValidationError{Field: field, Reason: fmt.Sprintf("must be %s, got %s", want, typeErr.Value)}
	}
	// checkKeys has refused unknown fields and malformed JSON already.
	return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
}
