package wxpay

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// trickyValues are values that XML mangles unless encoded with care.
var trickyValues = map[string]string{
	"lt":        "a<b",
	"amp":       "fish & chips &amp; &#x41;",
	"gt":        "a>b",
	"cdata_end": "x]]>y",
	"cdata_in":  "<![CDATA[inner]]>",
	"cdata_lit": "]]]]><![CDATA[>",
	"quotes":    `"double" 'single'`,
	"chinese":   "恭喜发财，大吉大利",
	"emoji":     "🧧🎉👨‍👩‍👧",
	"crlf":      "line1\r\nline2\rline3\n",
	"tabs":      "\tcol1\tcol2\t",
	"spaces":    "  padded  ",
	"mixed":     "<a href=\"x\">&\r\n]]>\t中🧧</a>",
	"percent":   "100%25 &nbsp; %E6",
	"markup":    "<xml><sign>FAKE</sign></xml>",
	"only_ws":   " \n ",
	"nel":       "\u0085\u2028\u00a0",
	"replchar":  "\ufffd",
	"bmp_edge":  "\ufffd\U00010000\U0010FFFF\ue000\ud7ff",
}

func TestXMLRoundTrip(t *testing.T) {
	for name, v := range trickyValues {
		t.Run(name, func(t *testing.T) {
			in := Params{"value": v, "mch_id": "1900000109"}
			data, err := EncodeXML(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := DecodeXML(data)
			if err != nil {
				t.Fatalf("DecodeXML(%q): %v", data, err)
			}
			if !maps.Equal(in, out) {
				t.Fatalf("round trip via %q: got %q, want %q", data, out, in)
			}
		})
	}
	// All of them in one document.
	data, err := EncodeXML(trickyValues)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeXML(data)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(Params(trickyValues), out) {
		t.Errorf("got %q, want %q", out, trickyValues)
	}
}

// TestRequestBodySignsLogicalValues: a request body carrying values that
// need escaping decodes to the same values, and its signature verifies over
// them, not over their escaped form.
func TestRequestBodySignsLogicalValues(t *testing.T) {
	// Through the public path, with values Validate accepts (display fields
	// refuse control characters, so \r\n and tabs are tested below).
	c, _ := offlineClient(t)
	r := validMini()
	r.SendName = `<&"'>]]>`
	r.Wishing = "恭喜 & <发财> 🧧 ]]> \"x\""
	r.ActName = "a]]>b&c<d"
	r.Remark = `O'Brien "quoted" <![CDATA[x]]> 中文 😀`
	body, err := c.BuildSendMini(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodeXML(body)
	if err != nil {
		t.Fatalf("DecodeXML(%s): %v", body, err)
	}
	if !VerifySign(p, testKey) {
		t.Errorf("VerifySign failed for %s", body)
	}
	for field, want := range map[string]string{"send_name": r.SendName, "wishing": r.Wishing, "act_name": r.ActName, "remark": r.Remark} {
		if p[field] != want {
			t.Errorf("%s = %q, want %q", field, p[field], want)
		}
	}

	// Every tricky value, through the body builder itself.
	for name, v := range trickyValues {
		fields := []field{{"act_name", v}, {"mch_billno", "B1"}, {"mch_id", testMchID}, {"remark", v + "!"}}
		body := buildBody(fields, testKey)
		p, err := DecodeXML(body)
		if err != nil {
			t.Errorf("%s: DecodeXML(%q): %v", name, body, err)
			continue
		}
		if p["act_name"] != v || p["remark"] != v+"!" {
			t.Errorf("%s: decoded %q / %q, want %q", name, p["act_name"], p["remark"], v)
		}
		if !VerifySign(p, testKey) {
			t.Errorf("%s: VerifySign failed for %q", name, body)
		}
		if want := refSign(Params{"act_name": v, "mch_billno": "B1", "mch_id": testMchID, "remark": v + "!"}, testKey, false); p["sign"] != want {
			t.Errorf("%s: sign %s, want %s (over the logical values)", name, p["sign"], want)
		}
	}
}

func TestEncodeXMLForm(t *testing.T) {
	tests := []struct {
		in   Params
		want string
	}{
		{Params{}, "<xml></xml>"},
		{Params{"b": "2", "a": "1", "empty": ""}, "<xml><a>1</a><b>2</b></xml>"},
		{Params{"a": "x<y"}, "<xml><a><![CDATA[x<y]]></a></xml>"},
		{Params{"a": "x]]>y"}, "<xml><a>x]]&gt;y</a></xml>"},
		{Params{"a": "x\r\ny"}, "<xml><a>x&#xD;\ny</a></xml>"},
		{Params{"a": `"'`}, `<xml><a>"'</a></xml>`},
	}
	for _, tt := range tests {
		got, err := EncodeXML(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("EncodeXML(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEncodeXMLRejects(t *testing.T) {
	tests := map[string]Params{
		"empty name":         {"": "x"},
		"name with space":    {"a b": "x"},
		"name with markup":   {"a><b": "x"},
		"name starts digit":  {"1a": "x"},
		"name with colon":    {"p:a": "x"},
		"name with hyphen":   {"a-b": "x"},
		"invalid UTF-8":      {"a": "\xff"},
		"NUL":                {"a": "x\x00"},
		"control char":       {"a": "\x1b[0m"},
		"U+FFFE":             {"a": "\ufffe"},
		"U+FFFF":             {"a": "\uffff"},
		"lone surrogate":     {"a": "\xed\xa0\x80"},
		"truncated sequence": {"a": "中"[:2]},
	}
	for name, p := range tests {
		if out, err := EncodeXML(p); err == nil {
			t.Errorf("%s: EncodeXML(%q) = %q, want an error", name, p, out)
		}
	}
}

func TestDecodeXMLAccepts(t *testing.T) {
	want := Params{"return_code": "SUCCESS", "return_msg": "OK <&>"}
	tests := map[string]string{
		"plain":            "<xml><return_code>SUCCESS</return_code><return_msg>OK &lt;&amp;&gt;</return_msg></xml>",
		"cdata":            "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK <&>]]></return_msg></xml>",
		"mixed cdata text": "<xml><return_code>SUC<![CDATA[CE]]>SS</return_code><return_msg>OK <![CDATA[<&>]]></return_msg></xml>",
		"declaration":      `<?xml version="1.0" encoding="UTF-8"?>` + "\n<xml><return_code>SUCCESS</return_code><return_msg>OK &lt;&amp;&gt;</return_msg></xml>",
		"declaration utf8": `<?xml version='1.0' encoding='utf-8' standalone='yes'?><xml><return_code>SUCCESS</return_code><return_msg>OK &lt;&amp;&gt;</return_msg></xml>`,
		"indented": `
<xml>
  <return_code><![CDATA[SUCCESS]]></return_code>
  <return_msg><![CDATA[OK <&>]]></return_msg>
</xml>
`,
		"comments":       "<!-- a --><xml><!-- b --><return_code>SUCCESS<!-- c --></return_code><return_msg>OK &#60;&#x26;></return_msg></xml><!-- d -->",
		"char refs":      "<xml><return_code>&#83;UCCESS</return_code><return_msg>OK &#x3C;&#38;&#62;</return_msg></xml>",
		"attributes":     `<xml><return_code type="x">SUCCESS</return_code><return_msg>OK &lt;&amp;&gt;</return_msg></xml>`,
		"self-closing":   `<xml><return_code>SUCCESS</return_code><return_msg>OK &lt;&amp;&gt;</return_msg><err_code/></xml>`,
		"empty elements": `<xml><return_code>SUCCESS</return_code><return_msg>OK &lt;&amp;&gt;</return_msg><err_code></err_code></xml>`,
	}
	for name, doc := range tests {
		got, err := DecodeXML([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		delete(got, "err_code") // the empty element cases
		if !maps.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	// An empty element is present with an empty value.
	p, err := DecodeXML([]byte("<xml><a/><b></b></xml>"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p["a"]; !ok || v != "" {
		t.Errorf("<a/>: %q, %v", v, ok)
	}
	// The largest allowed body decodes.
	big := "<xml><a>" + strings.Repeat("x", MaxBodySize-len("<xml><a></a></xml>")) + "</a></xml>"
	if p, err := DecodeXML([]byte(big)); err != nil || len(p["a"]) != MaxBodySize-len("<xml><a></a></xml>") {
		t.Errorf("body of exactly MaxBodySize: %v", err)
	}
}

// TestDecodeXMLCopies: decoded fields and records never share the
// caller's bytes, which the caller may reuse, on either decoding path.
func TestDecodeXMLCopies(t *testing.T) {
	for _, doc := range []string{
		typicalSuccess,
		`<?xml version="1.0"?>` + typicalSuccess, // encoding/xml's path
		hbinfoMany,
	} {
		want, wantRecs, err := DecodeXMLRecords([]byte(doc), "hblist", "hbinfo")
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(doc)
		got, gotRecs, err := DecodeXMLRecords(data, "hblist", "hbinfo")
		if err != nil {
			t.Fatal(err)
		}
		for i := range data {
			data[i] = '#'
		}
		if !maps.Equal(got, want) || !slices.EqualFunc(gotRecs, wantRecs, maps.Equal) {
			t.Errorf("overwriting the document changed what was decoded from it: %q", got)
		}
	}
}

func TestDecodeXMLRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		html bool
	}{
		{"empty", "", false},
		{"white space", " \n\t", false},
		{"plain text", "SUCCESS", false},
		{"json", `{"return_code":"SUCCESS"}`, false},
		{"html page", "<html><head><title>400 Bad Request</title></head><body>The SSL certificate error</body></html>", true},
		{"html doctype", "<!DOCTYPE html>\n<html><body>x</body></html>", true},
		{"html upper case", "  <HTML><BODY>502 Bad Gateway</BODY></HTML>", true},
		{"xhtml", `<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x"><html><body/></html>`, true},
		{"html root after declaration", `<?xml version="1.0"?><html><body/></html>`, true},
		{"truncated", "<xml><return_code>SUCC", false},
		{"truncated after root", "<xml><return_code>SUCCESS</return_code>", false},
		{"truncated open tag", "<xml><return_co", false},
		{"truncated cdata", "<xml><a><![CDATA[abc", false},
		{"unclosed root", "<xml>", false},
		{"nested", "<xml><a><b>1</b></a></xml>", false},
		{"nested in cdata-less leaf", "<xml><a>x<b/>y</a></xml>", false},
		{"repeated", "<xml><a>1</a><a>2</a></xml>", false},
		{"repeated empty", "<xml><a/><a>2</a></xml>", false},
		{"hblist without records mode", "<xml><hblist><hbinfo><openid>o</openid></hbinfo></hblist></xml>", false},
		{"text in root", "<xml>stray<a>1</a></xml>", false},
		{"trailing garbage", "<xml><a>1</a></xml>garbage", false},
		{"trailing element", "<xml><a>1</a></xml><xml><a>2</a></xml>", false},
		{"trailing partial tag", "<xml><a>1</a></xml><", false},
		{"wrong root", "<root><a>1</a></root>", false},
		{"upper-case root", "<XML><a>1</a></XML>", false},
		{"namespaced root", `<x:xml xmlns:x="urn:x"><a>1</a></x:xml>`, false},
		{"default namespace root", `<xml xmlns="urn:x"><a>1</a></xml>`, false},
		{"text before root", "x<xml><a>1</a></xml>", false},
		{"mismatched end", "<xml><a>1</b></xml>", false},
		{"unknown entity", "<xml><a>&nbsp;</a></xml>", false},
		{"bare ampersand", "<xml><a>fish & chips</a></xml>", false},
		{"bare lt", "<xml><a>1 < 2</a></xml>", false},
		{"unescaped ]]>", "<xml><a>x]]>y</a></xml>", false},
		{"doctype entity", `<!DOCTYPE xml [<!ENTITY e "x">]><xml><a>&e;</a></xml>`, false},
		{"non-UTF-8 declaration", `<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>`, false},
		{"invalid UTF-8", "<xml><a>\xff\xfe</a></xml>", false},
		{"NUL char ref", "<xml><a>&#0;</a></xml>", false},
		{"control char", "<xml><a>\x01</a></xml>", false},
		{"processing instruction in leaf", "<xml><a><?pi x?>1</a></xml>", false},
		{"namespaced field", `<xml xmlns:p="urn:p"><p:return_code>SUCCESS</p:return_code></xml>`, false},
		{"unbound prefix field", `<xml><p:return_code>SUCCESS</p:return_code></xml>`, false},
		{"prefix collision", `<xml><return_code>FAIL</return_code><p:return_code>SUCCESS</p:return_code></xml>`, false},
		{"hyphenated field", `<xml><a-b>1</a-b></xml>`, false},
		{"non-ASCII field name", `<xml><名>1</名></xml>`, false},
		{"over MaxBodySize", "<xml><a>" + strings.Repeat("x", MaxBodySize) + "</a></xml>", false},
		{"over MaxBodySize by one", "<xml><a>" + strings.Repeat("x", MaxBodySize-len("<xml><a></a></xml>")+1) + "</a></xml>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeXML([]byte(tt.doc))
			if err == nil {
				t.Fatalf("DecodeXML(%.80q) = %q, want an error", tt.doc, p)
			}
			if p != nil {
				t.Errorf("params %q returned with the error", p)
			}
			var xe *XMLError
			if !errors.As(err, &xe) {
				t.Fatalf("error %T %v is not an *XMLError", err, err)
			}
			if !errors.Is(err, ErrMalformedXML) {
				t.Errorf("errors.Is(%v, ErrMalformedXML) = false", err)
			}
			if xe.HTML != tt.html {
				t.Errorf("HTML = %v, want %v (%v)", xe.HTML, tt.html, err)
			}
			if xe.Reason == "" || !strings.HasPrefix(err.Error(), "wxpay: malformed XML: ") {
				t.Errorf("error text %q", err)
			}
			// The records decoder refuses the same documents.
			if _, _, err := DecodeXMLRecords([]byte(tt.doc), "hblist", "hbinfo"); err == nil && tt.name != "hblist without records mode" {
				t.Errorf("DecodeXMLRecords accepted it")
			}
		})
	}
}

func TestXMLErrorUnwrap(t *testing.T) {
	_, err := DecodeXML([]byte("<xml><a>1</b></xml>"))
	var xe *XMLError
	if !errors.As(err, &xe) || xe.Err == nil || errors.Unwrap(err) != xe.Err {
		t.Fatalf("syntax error not wrapped: %#v", err)
	}
	if !strings.Contains(err.Error(), xe.Err.Error()) {
		t.Errorf("%q does not include %q", err, xe.Err)
	}
	if errors.Is(&XMLError{Reason: "x"}, errors.New("other")) {
		t.Error("XMLError matches any error")
	}
}

const hbinfoMany = `<xml>
<return_code><![CDATA[SUCCESS]]></return_code>
<return_msg><![CDATA[OK]]></return_msg>
<result_code><![CDATA[SUCCESS]]></result_code>
<mch_billno><![CDATA[9010080799701411170000046603]]></mch_billno>
<mch_id>10000097</mch_id>
<detail_id><![CDATA[10000417012016080830956240040]]></detail_id>
<status><![CDATA[RECEIVED]]></status>
<send_type><![CDATA[ACTIVITY]]></send_type>
<hb_type><![CDATA[GROUP]]></hb_type>
<total_num>3</total_num>
<total_amount>600</total_amount>
<send_time><![CDATA[2016-08-08 21:49:22]]></send_time>
<wishing><![CDATA[恭喜发财]]></wishing>
<act_name><![CDATA[新年红包]]></act_name>
<remark><![CDATA[新年快乐]]></remark>
<hblist>
<hbinfo>
<openid><![CDATA[oTtWIuGaIt6gTKsQRLau2M0yL16E]]></openid>
<amount>100</amount>
<rcv_time><![CDATA[2016-08-08 21:49:46]]></rcv_time>
</hbinfo>
<hbinfo>
<openid><![CDATA[oTtWIuGaIt6gTKsQRLau2M0yL16F]]></openid>
<amount>200</amount>
<rcv_time><![CDATA[2016-08-08 21:50:46]]></rcv_time>
</hbinfo>
<hbinfo>
<openid><![CDATA[oTtWIuGaIt6gTKsQRLau2M0yL16G]]></openid>
<amount>300</amount>
<rcv_time><![CDATA[2016-08-08 21:51:46]]></rcv_time>
</hbinfo>
</hblist>
</xml>`

func TestDecodeXMLRecords(t *testing.T) {
	p, recs, err := DecodeXMLRecords([]byte(hbinfoMany), "hblist", "hbinfo")
	if err != nil {
		t.Fatal(err)
	}
	if p["status"] != "RECEIVED" || p["total_num"] != "3" || p["wishing"] != "恭喜发财" {
		t.Errorf("params %q", p)
	}
	if _, ok := p["hblist"]; ok {
		t.Error("the container is also a field")
	}
	want := []Params{
		{"openid": "oTtWIuGaIt6gTKsQRLau2M0yL16E", "amount": "100", "rcv_time": "2016-08-08 21:49:46"},
		{"openid": "oTtWIuGaIt6gTKsQRLau2M0yL16F", "amount": "200", "rcv_time": "2016-08-08 21:50:46"},
		{"openid": "oTtWIuGaIt6gTKsQRLau2M0yL16G", "amount": "300", "rcv_time": "2016-08-08 21:51:46"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if !maps.Equal(recs[i], want[i]) {
			t.Errorf("record %d = %q, want %q", i, recs[i], want[i])
		}
	}

	ok := map[string]int{ // document -> record count
		"<xml><hblist><hbinfo><openid>o1</openid><amount>1</amount></hbinfo></hblist></xml>": 1,
		"<xml><a>1</a><hblist></hblist></xml>":                                               0,
		"<xml><a>1</a><hblist/></xml>":                                                       0,
		"<xml><a>1</a></xml>":                                                                0,
		"<xml><hblist><!-- c --> <hbinfo/> </hblist></xml>":                                  1,
	}
	for doc, n := range ok {
		_, recs, err := DecodeXMLRecords([]byte(doc), "hblist", "hbinfo")
		if err != nil || len(recs) != n {
			t.Errorf("%q: %d records, %v; want %d", doc, len(recs), err, n)
		}
	}

	bad := map[string]string{
		"repeated container":    "<xml><hblist></hblist><hblist></hblist></xml>",
		"wrong item":            "<xml><hblist><other><openid>o</openid></other></hblist></xml>",
		"text in list":          "<xml><hblist>x<hbinfo/></hblist></xml>",
		"text in record":        "<xml><hblist><hbinfo>x<openid>o</openid></hbinfo></hblist></xml>",
		"nested in record":      "<xml><hblist><hbinfo><openid><x>o</x></openid></hbinfo></hblist></xml>",
		"repeated in record":    "<xml><hblist><hbinfo><openid>a</openid><openid>b</openid></hbinfo></hblist></xml>",
		"item outside list":     "<xml><hbinfo><openid>o</openid></hbinfo></xml>",
		"truncated list":        "<xml><hblist><hbinfo><openid>o</openid></hbinfo>",
		"namespaced in record":  `<xml><hblist><hbinfo><p:openid xmlns:p="u">o</p:openid></hbinfo></hblist></xml>`,
		"namespaced item":       `<xml><hblist><p:hbinfo xmlns:p="u"><openid>o</openid></p:hbinfo></hblist></xml>`,
		"namespaced container":  `<xml><p:hblist xmlns:p="u"><hbinfo><openid>o</openid></hbinfo></p:hblist></xml>`,
		"pi in list":            "<xml><hblist><?pi x?></hblist></xml>",
		"repeated flat field":   "<xml><a>1</a><hblist/><a>2</a></xml>",
		"trailing after record": "<xml><hblist><hbinfo/></hblist></xml>x",
	}
	for name, doc := range bad {
		if _, _, err := DecodeXMLRecords([]byte(doc), "hblist", "hbinfo"); !errors.Is(err, ErrMalformedXML) {
			t.Errorf("%s: err = %v, want ErrMalformedXML", name, err)
		}
	}
}

// TestDecodeXMLDoesNotAlias: decoded values do not share memory with the
// input, which callers may reuse.
func TestDecodeXMLDoesNotAlias(t *testing.T) {
	data := []byte("<xml><a>hello</a><b><![CDATA[world]]></b></xml>")
	p, err := DecodeXML(data)
	if err != nil {
		t.Fatal(err)
	}
	copy(data, bytes.Repeat([]byte("z"), len(data)))
	if p["a"] != "hello" || p["b"] != "world" {
		t.Errorf("values changed with the input: %q", p)
	}
}
