package handler

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// FuzzFastEnvelope: whenever the fast envelope reader reads an event, it
// reads what encoding/json reads, and so tells the same source.
func FuzzFastEnvelope(f *testing.F) {
	paths, _ := filepath.Glob("../../events/*/*.json")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"version":"2.0","requestContext":{"http":{"method":"GET"}}}`,
		`{"httpMethod":"POST","requestContext":{},"body":"{\"a\":1}","isBase64Encoded":false}`,
		`{"httpMethod":"POST","requestContext":null}`, `{"HttpMethod":"POST","requestContext":{}}`,
		`{"httpMethod":"POST","httpMethod":"GET","requestContext":{}}`, `{"body":5}`,
		`{"Records":[{"eventSource":"aws:sqs","messageId":"1","body":"x"}]}`,
		`{"version":"2.0","requestContext":{"http":{"method":"POST","METHOD":"GET"}}}`,
		`{"requestContext":{"http":null},"version":"2.0"}`, `{"body":"\u00e9\n"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, ok := fastEnvelope(payload) // must not panic, whatever the input
		if !ok || !json.Valid(payload) {
			return // Lambda delivers only valid JSON
		}
		var slow envelope
		if err := json.Unmarshal(payload, &slow); err != nil {
			t.Fatalf("fast reader read %q, encoding/json refused it: %v", payload, err)
		}
		if a, b := sourceOf(fast), sourceOf(&slow); a != b {
			t.Fatalf("source of %q: fast %s, encoding/json %s", payload, a, b)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(&slow)
		if string(fj) != string(sj) {
			t.Fatalf("envelope of %q:\nfast %s\nslow %s", payload, fj, sj)
		}
	})
}

// TestFastEnvelopeReadsTheSamples: every sample event takes the fast path.
func TestFastEnvelopeReadsTheSamples(t *testing.T) {
	paths, _ := filepath.Glob("../../events/*/*.json")
	if len(paths) == 0 {
		t.Fatal("no samples")
	}
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		if _, ok := fastEnvelope(b); !ok && !strings.HasSuffix(p, "direct.json") {
			t.Errorf("%s: the fast envelope reader declined it", p)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	payload, err := os.ReadFile("../../events/sendmini/apigw-rest.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if src, _ := classify(payload); src != SourceREST {
			b.Fatal(src)
		}
	}
}
