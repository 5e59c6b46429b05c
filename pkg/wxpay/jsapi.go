package wxpay

import (
	"strconv"
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
	return string(signFields(nil, fields, key, SignMD5))
}

// EncodeURIComponent escapes s as JavaScript's encodeURIComponent does:
// everything but letters, digits and -_.!~*'() is percent-encoded as UTF-8.
func EncodeURIComponent(s string) string {
	const upper = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !uriUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if uriUnreserved(c) {
			out = append(out, c)
			continue
		}
		out = append(out, '%', upper[c>>4], upper[c&0x0f])
	}
	return string(out)
}

func uriUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '!', '~', '*', '\'', '(', ')':
		return true
	}
	return false
}
