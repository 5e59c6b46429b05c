package wxpay

import (
	"crypto/md5"
	"strconv"
	"strings"
)

// PaySignPackage says which form of the mini-program package paySign covers.
type PaySignPackage string

// The paySign variants.
const (
	// PaySignEncoded signs the URL-encoded package, exactly the string
	// handed to the page; working production integrations do this.
	PaySignEncoded PaySignPackage = "encoded"
	// PaySignRaw signs WeChat's raw package, as some SDK documentation
	// shows.
	PaySignRaw PaySignPackage = "raw"
)

// JSAPIParams are the parameters of wx.sendBizRedPacket.
type JSAPIParams struct {
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// JSAPI returns the wx.sendBizRedPacket parameters for a package that
// sendminiprogramhb returned: package URL-encoded, a fresh nonceStr, the
// current Unix time, and an MD5 paySign over appId, nonceStr, package and
// timeStamp with the APIv2 key. appID is the request's wxappid.
func (c *Client) JSAPI(appID, pkg string) (JSAPIParams, error) {
	nonce, err := c.nonce()
	if err != nil {
		return JSAPIParams{}, err
	}
	p := JSAPIParams{
		TimeStamp: strconv.FormatInt(c.now().Unix(), 10),
		NonceStr:  nonce,
		Package:   EncodeURIComponent(pkg),
		SignType:  string(SignMD5),
	}
	p.PaySign = PaySign(appID, p, pkgForSign(c.paySign, pkg, p.Package), c.creds.APIKey)
	return p, nil
}

func pkgForSign(mode PaySignPackage, raw, encoded string) string {
	if mode == PaySignRaw {
		return raw
	}
	return encoded
}

// PaySign is the MD5 paySign of wx.sendBizRedPacket's parameters, over
// appId, nonceStr, package (as given in signedPackage) and timeStamp.
func PaySign(appID string, p JSAPIParams, signedPackage, key string) string {
	fields := []field{
		{"appId", appID},
		{"nonceStr", p.NonceStr},
		{"package", signedPackage},
		{"timeStamp", p.TimeStamp},
	}
	var out [2 * md5.Size]byte
	return string(signFields(out[:0], fields, key, SignMD5))
}

// EncodeURIComponent escapes s as JavaScript's encodeURIComponent does:
// everything but letters, digits and -_.!~*'() is percent-encoded as UTF-8.
func EncodeURIComponent(s string) string {
	const upper = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !uriUnreserved[s[i]] {
			n++
		}
	}
	if n == 0 {
		return s
	}
	// A Builder makes the string in its one allocation.
	var out strings.Builder
	out.Grow(len(s) + 2*n)
	done := 0 // s[:done] is written
	for i := 0; i < len(s); i++ {
		if c := s[i]; !uriUnreserved[c] {
			out.WriteString(s[done:i])
			out.Write([]byte{'%', upper[c>>4], upper[c&0x0f]})
			done = i + 1
		}
	}
	out.WriteString(s[done:])
	return out.String()
}

// uriUnreserved marks the bytes encodeURIComponent leaves as they are.
var uriUnreserved = func() (set [256]bool) {
	for c := range len(set) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-_.!~*'()", byte(c)) >= 0:
			set[c] = true
		}
	}
	return set
}()
