package handler

import (
	"encoding/json"
	"slices"
	"testing"
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
