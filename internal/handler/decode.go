package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

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
	if verr := checkKeys(body, fieldNames(v)); verr != nil {
		return verr
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return &wxpay.ValidationError{Field: "body", Reason: "has data after the JSON object"}
	}
	return nil
}

// checkKeys walks the object's top-level keys. Each must be one of known,
// spelled exactly (encoding/json would also fill total_amount from a key
// TOTAL_AMOUNT, and the last of the two would win), and given once;
// function-supplied fields are refused.
func checkKeys(body []byte, known map[string]bool) *wxpay.ValidationError {
	d := json.NewDecoder(bytes.NewReader(body))
	tok, err := d.Token()
	if err != nil {
		return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return &wxpay.ValidationError{Field: "body", Reason: "must be a JSON object"}
	}
	seen := make(map[string]bool, 16)
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
		}
		key, _ := tok.(string)
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
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
		}
	}
	return nil
}

// fieldNamesByType caches the JSON names of each request type's fields.
var fieldNamesByType sync.Map // reflect.Type -> map[string]bool

// fieldNames returns the exact JSON field names of the struct v points to.
func fieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	if names, ok := fieldNamesByType.Load(t); ok {
		return names.(map[string]bool)
	}
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	fieldNamesByType.Store(t, names)
	return names
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
		switch typeErr.Type.Kind().String() {
		case "int64", "int":
			want = "a whole number"
			if field == "total_amount" {
				want = "a whole number of fen"
			}
		}
		return &wxpay.ValidationError{Field: field, Reason: fmt.Sprintf("must be %s, got %s", want, typeErr.Value)}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return &wxpay.ValidationError{Field: field, Reason: "is not a field of this API"}
	}
	return &wxpay.ValidationError{Field: "body", Reason: "is not valid JSON"}
}
