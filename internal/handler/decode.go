package handler

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// maxBodySize bounds a request body. Red packet requests are well under a
// kilobyte.
const maxBodySize = 64 << 10

var errTooLarge = errors.New("request body exceeds 64 KiB")

// suppliedFields are filled by the function; a caller may not send them.
var suppliedFields = map[string]bool{"mch_id": true, "nonce_str": true, "sign": true, "sign_type": true}

// decodeRequest decodes body into the request struct v points to,
// strictly: one JSON object, each member one of the struct's fields,
// spelled exactly (a key TOTAL_AMOUNT is refused, not taken for
// total_amount) and given once, valid UTF-8 (never replaced with U+FFFD:
// the red packet would carry text the caller never sent), no trailing
// data. The JSON library (encoding/json/v2's upstream) enforces these
// rules; decodeError names the field that broke one.
func decodeRequest(body []byte, v any) *wxpay.ValidationError {
	if len(body) > maxBodySize {
		return &wxpay.ValidationError{Field: "body", Reason: errTooLarge.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &wxpay.ValidationError{Field: "body", Reason: "is empty; want a JSON object"}
	}
	if !utf8.Valid(body) {
		return &wxpay.ValidationError{Field: "body", Reason: "is not valid UTF-8"}
	}
	if err := json.Unmarshal(body, v, json.RejectUnknownMembers(true)); err != nil {
		return decodeError(err, reflect.TypeOf(v).Elem())
	}
	return nil
}

// decodeError turns a decoding error into a ValidationError naming the
// top-level member at fault, or the body.
func decodeError(err error, t reflect.Type) *wxpay.ValidationError {
	var (
		syntax   *jsontext.SyntacticError
		semantic *json.SemanticError
	)
	switch {
	case errors.As(err, &syntax):
		field, _ := topMember(syntax.JSONPointer)
		switch {
		case errors.Is(err, jsontext.ErrDuplicateName) && field != "":
			return &wxpay.ValidationError{Field: field, Reason: "appears more than once"}
		}
		return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
	case errors.As(err, &semantic):
		field, ok := topMember(semantic.JSONPointer)
		switch {
		case !ok:
			return &wxpay.ValidationError{Field: "body", Reason: "must be a JSON object"}
		case field == "":
			return &wxpay.ValidationError{Field: "body", Reason: "has an empty key"}
		case errors.Is(err, json.ErrUnknownName):
			return unknownField(field, t)
		}
		want := "a string"
		if semantic.GoType != nil && semantic.GoType.Kind() == reflect.Int64 {
			want = "a whole number"
			if field == "total_amount" {
				want = "a whole number of fen"
			}
		}
		got := kindName(semantic.JSONKind)
		if semantic.JSONKind == '0' && len(semantic.JSONValue) > 0 && len(semantic.JSONValue) <= 32 {
			got = string(semantic.JSONValue) // 100.5, 1e2: say which number
		}
		return &wxpay.ValidationError{Field: field, Reason: fmt.Sprintf("must be %s, got %s", want, got)}
	}
	return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
}

// unknownField refuses a member that is not a field of the request type t,
// saying which field a name differing only in case was probably meant for.
func unknownField(name string, t reflect.Type) *wxpay.ValidationError {
	if suppliedFields[name] {
		return &wxpay.ValidationError{Field: name, Reason: "is supplied by the function and must not be sent"}
	}
	for i := range t.NumField() {
		field, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if strings.EqualFold(field, name) {
			return &wxpay.ValidationError{Field: name, Reason: fmt.Sprintf("is not a field of this API (field names are exact: %q)", field)}
		}
	}
	return &wxpay.ValidationError{Field: name, Reason: "is not a field of this API"}
}

// topMember returns the first name of a JSON pointer: the top-level member
// an error is in. ok is false for the document itself.
func topMember(p jsontext.Pointer) (name string, ok bool) {
	for tok := range p.Tokens() {
		return tok, true
	}
	return "", false
}

// kindName names a JSON value's kind as a caller reads it.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "another value"
}
