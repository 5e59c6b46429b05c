package wxpay

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strings"
	"testing"
)

// WeChat's official APIv2 signature example.
const (
	officialKey    = "192006250b4c09247ec02edce69f6a2d"
	officialMD5    = "9A0A8659F005D6984697E2CA0A9CF3B7"
	officialHMAC   = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
	officialString = "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
)

func officialVector() Params {
	return Params{
		"appid":       "wxd930ea5d5a258f4f",
		"mch_id":      "10000100",
		"device_info": "1000",
		"body":        "test",
		"nonce_str":   "ibuaiVcKdpRxkhJA",
	}
}

// refSign is an independent reference implementation of the APIv2
// signature, written from WeChat's documentation.
func refSign(p Params, key string, hmacSHA256 bool) string {
	var names []string
	for k, v := range p {
		if k != "sign" && v != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names) // bytewise, as sort.Strings compares strings
	var sb strings.Builder
	for _, k := range names {
		sb.WriteString(k + "=" + p[k] + "&")
	}
	sb.WriteString("key=" + key)
	if hmacSHA256 {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(sb.String()))
		return strings.ToUpper(hex.EncodeToString(m.Sum(nil)))
	}
	sum := md5.Sum([]byte(sb.String()))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func TestSignOfficialVector(t *testing.T) {
	// The reference implementation itself reproduces WeChat's numbers.
	sum := md5.Sum([]byte(officialString))
	if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != officialMD5 {
		t.Fatalf("reference string MD5 = %s, want %s", got, officialMD5)
	}
	tests := []struct {
		t    SignType
		want string
	}{
		{SignMD5, officialMD5},
		{SignHMACSHA256, officialHMAC},
		{"", officialMD5},     // no sign_type: MD5
		{"SHA1", officialMD5}, // unknown: MD5, as WeChat does
		{"md5", officialMD5},  // only the exact HMAC-SHA256 name is HMAC
		{"hmac-sha256", officialMD5},
	}
	for _, tt := range tests {
		if got := Sign(officialVector(), officialKey, tt.t); got != tt.want {
			t.Errorf("Sign(official, %q) = %s, want %s", tt.t, got, tt.want)
		}
	}
}

func TestSignRules(t *testing.T) {
	base := officialVector()
	with := func(extra Params) Params {
		p := Params{}
		for k, v := range base {
			p[k] = v
		}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	tests := []struct {
		name string
		p    Params
		want string // MD5
	}{
		{"official", base, officialMD5},
		{"empty values are skipped", with(Params{"attach": "", "detail": ""}), officialMD5},
		{"sign is excluded", with(Params{"sign": "WHATEVER"}), officialMD5},
		// Bytewise order: upper case before lower case, '_' (0x5F) between.
		{"bytewise order", Params{"b": "1", "B": "2", "a_b": "3", "aB": "4", "a": "5"}, ""},
		{"values signed raw, not escaped", Params{"x": "<a&b>", "y": "中文 ]]> \"'"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = refSign(tt.p, officialKey, false)
			}
			if got := Sign(tt.p, officialKey, SignMD5); got != want {
				t.Errorf("MD5 = %s, want %s", got, want)
			}
			if got, want := Sign(tt.p, officialKey, SignHMACSHA256), refSign(tt.p, officialKey, true); got != want {
				t.Errorf("HMAC-SHA256 = %s, want %s", got, want)
			}
		})
	}
	// The bytewise string, spelled out: B < a < aB < a_b < b.
	p := Params{"b": "1", "B": "2", "a_b": "3", "aB": "4", "a": "5"}
	sum := md5.Sum([]byte("B=2&a=5&aB=4&a_b=3&b=1&key=" + officialKey))
	if got, want := Sign(p, officialKey, SignMD5), strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Errorf("bytewise order: got %s, want %s", got, want)
	}
	// The HMAC input ends with &key=<key> too.
	m := hmac.New(sha256.New, []byte(officialKey))
	m.Write([]byte(officialString))
	if got := strings.ToUpper(hex.EncodeToString(m.Sum(nil))); got != officialHMAC {
		t.Errorf("HMAC of the string with &key= = %s, want %s", got, officialHMAC)
	}
}

func TestVerifySign(t *testing.T) {
	signed := func(t SignType, mutate func(Params)) Params {
		p := officialVector()
		if t != "" {
			p["sign_type"] = string(t)
		}
		p["sign"] = Sign(p, officialKey, t)
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	tests := []struct {
		name string
		p    Params
		key  string
		want bool
	}{
		{"md5 no sign_type", signed("", nil), officialKey, true},
		{"md5 explicit", signed(SignMD5, nil), officialKey, true},
		{"hmac", signed(SignHMACSHA256, nil), officialKey, true},
		{"lower-case hex accepted", signed("", func(p Params) { p["sign"] = strings.ToLower(p["sign"]) }), officialKey, true},
		{"official md5 value", func() Params { p := officialVector(); p["sign"] = officialMD5; return p }(), officialKey, true},
		{"wrong key", signed("", nil), strings.Repeat("0", 32), false},
		{"tampered value", signed("", func(p Params) { p["body"] = "test2" }), officialKey, false},
		{"added field", signed("", func(p Params) { p["attach"] = "x" }), officialKey, false},
		{"sign_type switched", signed(SignHMACSHA256, func(p Params) { p["sign_type"] = "MD5" }), officialKey, false},
		{"missing sign", officialVector(), officialKey, false},
		{"empty sign", signed("", func(p Params) { p["sign"] = "" }), officialKey, false},
		{"truncated sign", signed("", func(p Params) { p["sign"] = p["sign"][:31] }), officialKey, false},
		{"longer sign", signed("", func(p Params) { p["sign"] += "0" }), officialKey, false},
		{"empty params", Params{}, officialKey, false},
		{"nil params", nil, officialKey, false},
	}
	for _, tt := range tests {
		if got := VerifySign(tt.p, tt.key); got != tt.want {
			t.Errorf("%s: VerifySign = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestVerifySignConstantTime checks, in the source, that VerifySign compares
// signatures with a constant-time function and never with == or
// strings.EqualFold, which return at the first differing byte.
func TestVerifySignConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "sign.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "VerifySign" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("no VerifySign in sign.go")
	}
	constantTime := false
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				switch x.Name + "." + n.Sel.Name {
				case "subtle.ConstantTimeCompare", "hmac.Equal":
					constantTime = true
				case "strings.EqualFold", "bytes.Equal", "strings.Compare", "bytes.Compare":
					t.Errorf("%s: VerifySign compares with %s.%s", fset.Position(n.Pos()), x.Name, n.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				// Only comparisons with a literal ("" checks) are allowed.
				_, lx := n.X.(*ast.BasicLit)
				_, ly := n.Y.(*ast.BasicLit)
				if !lx && !ly {
					if id, ok := n.Y.(*ast.Ident); !ok || (id.Name != "SignMD5" && id.Name != "SignHMACSHA256") {
						t.Errorf("%s: VerifySign uses %s on non-literals", fset.Position(n.Pos()), n.Op)
					}
				}
			}
		}
		return true
	})
	if !constantTime {
		t.Error("VerifySign does not use subtle.ConstantTimeCompare or hmac.Equal")
	}
}

// TestRedpackSignsMD5WithoutSignType: every red packet body is signed with
// MD5 and carries no sign_type.
func TestRedpackSignsMD5WithoutSignType(t *testing.T) {
	c, _ := offlineClient(t)
	builds := map[string]func() ([]byte, error){
		"sendgroupredpack":  func() ([]byte, error) { return c.BuildSendGroup(validGroup()) },
		"sendminiprogramhb": func() ([]byte, error) { return c.BuildSendMini(validMini()) },
		"sendredpack":       func() ([]byte, error) { return c.BuildSend(validSend()) },
		"gethbinfo":         func() ([]byte, error) { return c.BuildQuery(validQuery()) },
	}
	for api, build := range builds {
		body, err := build()
		if err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		p, err := DecodeXML(body)
		if err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		if _, ok := p["sign_type"]; ok {
			t.Errorf("%s: body carries sign_type %q", api, p["sign_type"])
		}
		if want := refSign(p, testKey, false); p["sign"] != want {
			t.Errorf("%s: sign = %s, want MD5 %s", api, p["sign"], want)
		}
		if !VerifySign(p, testKey) {
			t.Errorf("%s: VerifySign failed", api)
		}
	}
}
