package wxpay

import (
	"bytes"
	"encoding/xml"
	"maps"
	"slices"
	"testing"
)

// slowDecode is decodeXML without the fast path.
func slowDecode(data []byte, container, item string) (Params, []Params, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	return (&flatParser{d: d}).document(container, item)
}

var fastSeeds = []string{
	`<xml><return_code><![CDATA[SUCCESS]]></return_code><total_amount>100</total_amount></xml>`,
	"<xml>\n  <a>1</a>\n  <b><![CDATA[x<y&z]]></b>\n</xml>\n",
	`<xml><a><![CDATA[x]]>y<![CDATA[z]]></a><b></b></xml>`,
	`<xml><hblist><hbinfo><openid>o1</openid><amount>1</amount></hbinfo><hbinfo><openid>o2</openid></hbinfo></hblist><status>RECEIVED</status></xml>`,
	`<xml><hblist></hblist></xml>`,
	`<xml><a><![CDATA[]]></a></xml>`,
	`<xml><a>1</a><a>2</a></xml>`,
	`<xml><a>&lt;</a></xml>`,
	"<xml><a>\r\n</a></xml>",
	`<xml><a><b>1</b></a></xml>`,
	`<xml><a>1</b></xml>`,
	`<xml><a>1</a>`,
	`<xml><p:a>1</p:a></xml>`,
	`<xml><a x="1">1</a></xml>`,
	`<xml><a/></xml>`,
	`<?xml version="1.0"?><xml><a>1</a></xml>`,
	`<xml><a>1</a></xml><x/>`,
	"<xml><a>\x01</a></xml>",
	"<xml><a>\xff</a></xml>",
	`<xml><a>]]></a></xml>`,
	`<xml><名>1</名></xml>`,
}

// FuzzFastDecodeMatchesSlow: whenever the fast path accepts a document,
// encoding/xml reads the same fields and records from it.
func FuzzFastDecodeMatchesSlow(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, list := range [][2]string{{"", ""}, {"hblist", "hbinfo"}} {
			fp, fr, ok := fastDecode(data, list[0], list[1])
			if !ok {
				continue
			}
			sp, sr, err := slowDecode(data, list[0], list[1])
			if err != nil {
				t.Fatalf("fast path accepted %q, encoding/xml refused it: %v", data, err)
			}
			if !maps.Equal(fp, sp) {
				t.Fatalf("fields of %q: fast %v, encoding/xml %v", data, fp, sp)
			}
			if (fr == nil) != (sr == nil) || !slices.EqualFunc(fr, sr, func(a, b Params) bool { return maps.Equal(a, b) }) {
				t.Fatalf("records of %q: fast %v, encoding/xml %v", data, fr, sr)
			}
		}
	})
}

// TestFastDecodeTakesTheCommonCase: WeChat's usual answers are read by the
// fast path, and what it declines still decodes (or fails) as before.
func TestFastDecodeTakesTheCommonCase(t *testing.T) {
	for i, s := range fastSeeds[:6] {
		if _, _, ok := fastDecode([]byte(s), "hblist", "hbinfo"); !ok {
			t.Errorf("seed %d not taken by the fast path: %q", i, s)
		}
	}
	for _, s := range fastSeeds[6:] {
		if _, _, ok := fastDecode([]byte(s), "", ""); ok {
			t.Errorf("fast path took %q, which needs encoding/xml", s)
		}
	}
}
