package wxpay

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	samplePackage        = "sendid=242e8abd163d300019b2cae74ba8e8c06e3f0e51ab84d16b3c80decd22a5b672&ver=8&sign=4110d649a5aef52d&mch_id=1900000109&sendtime=1417161234&wishing=%E6%81%AD+ok"
	samplePackageEncoded = "sendid%3D242e8abd163d300019b2cae74ba8e8c06e3f0e51ab84d16b3c80decd22a5b672%26ver%3D8%26sign%3D4110d649a5aef52d%26mch_id%3D1900000109%26sendtime%3D1417161234%26wishing%3D%25E6%2581%25AD%2Bok"
	testStartUnix        = "1748764800" // testStart, 2025-06-01 08:00:00 UTC
)

// handPaySign is the wx.sendBizRedPacket paySign built by hand.
func handPaySign(appID, nonce, pkg, ts, key string) string {
	s := "appId=" + appID + "&nonceStr=" + nonce + "&package=" + pkg + "&timeStamp=" + ts + "&key=" + key
	sum := md5.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func TestJSAPI(t *testing.T) {
	if got := testStart.Unix(); got != 1748764800 {
		t.Fatalf("testStart is %d", got)
	}
	tests := []struct {
		mode       PaySignPackage
		signedPkg  string
		configured PaySignPackage
	}{
		{PaySignEncoded, samplePackageEncoded, ""}, // the default
		{PaySignEncoded, samplePackageEncoded, PaySignEncoded},
		{PaySignRaw, samplePackage, PaySignRaw},
	}
	for _, tt := range tests {
		t.Run(string(tt.configured), func(t *testing.T) {
			clock := newFakeClock()
			c, err := NewClient(Config{Credentials: testCredentials(t), Transport: &countingTransport{},
				Now: clock.Now, PaySignPackage: tt.configured})
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.JSAPI("wxappid0001", samplePackage)
			if err != nil {
				t.Fatal(err)
			}
			if p.TimeStamp != testStartUnix {
				t.Errorf("timeStamp %q, want %q", p.TimeStamp, testStartUnix)
			}
			if p.Package != samplePackageEncoded {
				t.Errorf("package %q, want %q", p.Package, samplePackageEncoded)
			}
			if p.SignType != "MD5" {
				t.Errorf("signType %q", p.SignType)
			}
			if len(p.NonceStr) != 32 {
				t.Errorf("nonceStr %q", p.NonceStr)
			}
			if want := handPaySign("wxappid0001", p.NonceStr, tt.signedPkg, testStartUnix, testKey); p.PaySign != want {
				t.Errorf("paySign %s, want %s", p.PaySign, want)
			}
			// The other variant signs something else.
			other := samplePackage
			if tt.mode == PaySignRaw {
				other = samplePackageEncoded
			}
			if p.PaySign == handPaySign("wxappid0001", p.NonceStr, other, testStartUnix, testKey) {
				t.Error("paySign does not depend on the package form")
			}
			// The timestamp follows the clock; the nonce is fresh.
			clock.Sleep(context.Background(), 90*time.Second)
			p2, _ := c.JSAPI("wxappid0001", samplePackage)
			if p2.TimeStamp != "1748764890" || p2.NonceStr == p.NonceStr {
				t.Errorf("second call: timeStamp %q, nonceStr %q", p2.TimeStamp, p2.NonceStr)
			}
		})
	}
	if _, err := NewClient(Config{Credentials: testCredentials(t), Transport: &countingTransport{},
		Now: newFakeClock().Now, PaySignPackage: "RAW"}); err == nil {
		t.Error("NewClient accepted PaySignPackage \"RAW\"")
	}
}

func TestPaySign(t *testing.T) {
	p := JSAPIParams{TimeStamp: "1417161234", NonceStr: "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", Package: "ignored", SignType: "MD5"}
	for _, pkg := range []string{samplePackage, samplePackageEncoded, "a b&c"} {
		want := handPaySign("wx8888888888888888", p.NonceStr, pkg, p.TimeStamp, testKey)
		if got := PaySign("wx8888888888888888", p, pkg, testKey); got != want {
			t.Errorf("PaySign(package %q) = %s, want %s", pkg, got, want)
		}
	}
}

func TestEncodeURIComponent(t *testing.T) {
	// Expected values are what JavaScript's encodeURIComponent returns.
	tests := []struct{ in, want string }{
		{"", ""},
		{"abcXYZ0189", "abcXYZ0189"},
		{"-_.!~*'()", "-_.!~*'()"},
		{" ", "%20"},
		{"+", "%2B"},
		{"/?:@&=+$,#", "%2F%3F%3A%40%26%3D%2B%24%2C%23"},
		{";", "%3B"},
		{"%", "%25"},
		{"%E6", "%25E6"},
		{`"<>[]{}|\^` + "`", "%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60"},
		{"\x00\n\r\t\x7f", "%00%0A%0D%09%7F"},
		{"é", "%C3%A9"},
		{"中文", "%E4%B8%AD%E6%96%87"},
		{"🧧", "%F0%9F%A7%A7"},
		{"a=1&b=2", "a%3D1%26b%3D2"},
		{samplePackage, samplePackageEncoded},
	}
	for _, tt := range tests {
		if got := EncodeURIComponent(tt.in); got != tt.want {
			t.Errorf("EncodeURIComponent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Every byte: unreserved ones stay, others become %XX (upper case), and
	// decoding gives the input back.
	for b := 0; b < 256; b++ {
		s := string([]byte{byte(b)})
		got := EncodeURIComponent(s)
		unreserved := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.ContainsRune("-_.!~*'()", rune(b))
		if unreserved != (got == s) {
			t.Errorf("byte %#x -> %q", b, got)
		}
		if !unreserved && (len(got) != 3 || got != strings.ToUpper(got)) {
			t.Errorf("byte %#x -> %q, want %%XX", b, got)
		}
		if back, err := url.PathUnescape(got); err != nil || back != s {
			t.Errorf("byte %#x: unescape %q = %q, %v", b, got, back, err)
		}
		if !utf8.ValidString(got) {
			t.Errorf("byte %#x: invalid UTF-8 output", b)
		}
	}
}
