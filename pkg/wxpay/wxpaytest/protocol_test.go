package wxpaytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

func TestGatewayCertificate(t *testing.T) {
	s := start(t)
	body := signed(t, sendParams(s, "GW1"), s.Merchant().APIKey)

	foreign, err := NewMerchant(DefaultMchID, nil) // right mch_id, wrong CA
	if err != nil {
		t.Fatal(err)
	}
	expired, err := s.MerchantCA().IssueMerchant(MerchantSpec{
		MchID: DefaultMchID, NotBefore: time.Now().AddDate(-6, 0, 0), NotAfter: time.Now().AddDate(-1, 0, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		detail string
	}{
		{"no certificate", nil, "400 No required SSL certificate was sent"},
		{"foreign CA", []tls.Certificate{foreign.TLSCertificate()}, "400 The SSL certificate error"},
		{"expired", []tls.Certificate{expired.TLSCertificate()}, "400 The SSL certificate error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, page, hdr := post(t, rawClient(t, s, tc.certs...), s.URL+wxpay.PathSendRedpack, body)
			if status != http.StatusBadRequest || hdr.Get("Content-Type") != "text/html" ||
				!bytes.Contains(page, []byte("<title>"+tc.detail+"</title>")) || !bytes.Contains(page, []byte("nginx")) {
				t.Errorf("status %d, %q:\n%s", status, hdr.Get("Content-Type"), page)
			}
			var xe *wxpay.XMLError
			if _, err := wxpay.DecodeXML(page); !errors.As(err, &xe) || !xe.HTML {
				t.Errorf("DecodeXML of the page: %v", err)
			}
		})
	}
	if s.Payments("GW1") != 0 || s.RequestsFor("GW1") != 0 || s.Requests() != 3 {
		t.Errorf("payments %d, requests for billno %d, requests %d", s.Payments("GW1"), s.RequestsFor("GW1"), s.Requests())
	}

	// The client with a foreign certificate: CA_ERROR, final, not retried
	// (the credentials are refreshed on CA_ERROR).
	c, sl := client(t, s, func(cfg *wxpay.Config) {
		cfg.Transport = wxpay.NewTransport(foreign.TLSCertificate(), s.RootCAs(), 0)
	})
	_, err = c.SendRedpack(context.Background(), sendReq("GW2", "openid", 100))
	e := wxErr(t, err)
	if e.Code != "CA_ERROR" || e.Outcome != wxpay.OutcomeFailed || !wxpay.IsCredentialError(err) || e.HTTPStatus != 400 || e.Retryable || e.Attempts != 1 || len(sl.Waits()) != 0 {
		t.Errorf("client error %+v", e)
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	s := start(t)
	rc := rawClient(t, s, s.Merchant().TLSCertificate())
	if status, _, _ := post(t, rc, s.URL+"/mmpaymkttransfers/promotion/transfers", []byte("<xml/>")); status != 404 {
		t.Errorf("unknown path: %d", status)
	}
	resp, err := rc.Get(s.URL + wxpay.PathSendRedpack)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestCAError(t *testing.T) {
	s := start(t)
	other, err := s.IssueMerchant("1900000999")
	if err != nil {
		t.Fatal(err)
	}
	// Raw: the other merchant's certificate with this merchant's mch_id.
	body := signed(t, sendParams(s, "CA1"), s.Merchant().APIKey)
	_, ans, _ := post(t, rawClient(t, s, other.TLSCertificate()), s.URL+wxpay.PathSendRedpack, body)
	wantErrCode(t, decode(t, ans), "FAIL", "CA_ERROR", "证书")

	// The client presenting it: CA_ERROR, failed, a credential error.
	c, _ := client(t, s, func(cfg *wxpay.Config) {
		cfg.Transport = wxpay.NewTransport(other.TLSCertificate(), s.RootCAs(), 0)
	})
	_, err = c.SendRedpack(context.Background(), sendReq("CA2", "openid", 100))
	e := wxErr(t, err)
	if e.Code != "CA_ERROR" || e.Outcome != wxpay.OutcomeFailed || !wxpay.IsCredentialError(err) || e.Attempts != 1 {
		t.Errorf("client error %+v", e)
	}
	_, err = c.QueryRedpack(context.Background(), &wxpay.QueryRequest{MchBillno: "CA2", AppID: "wx8888888888888888"})
	if e := wxErr(t, err); e.Code != "CA_ERROR" {
		t.Errorf("query: %+v", e)
	}

	// The other merchant's own requests: its certificate matches, but the
	// simulator does not serve that merchant.
	p := sendParams(s, "CA3")
	p["mch_id"] = "1900000999"
	_, ans, _ = post(t, rawClient(t, s, other.TLSCertificate()), s.URL+wxpay.PathSendRedpack, signed(t, p, other.APIKey))
	wantErrCode(t, decode(t, ans), "FAIL", "PARAM_ERROR", "mch_id")
	if s.TotalPayments() != 0 {
		t.Error("money moved")
	}
}

func TestSignatureErrors(t *testing.T) {
	s := start(t)
	m := s.Merchant()
	rc := rawClient(t, s, m.TLSCertificate())
	for i, tc := range []struct {
		name string
		body func(p wxpay.Params) []byte
		ok   bool
	}{
		{"wrong key", func(p wxpay.Params) []byte { return signed(t, p, strings.Repeat("k", 32)) }, false},
		{"no sign", func(p wxpay.Params) []byte { b, _ := wxpay.EncodeXML(p); return b }, false},
		{"tampered after signing", func(p wxpay.Params) []byte {
			return bytes.Replace(signed(t, p, m.APIKey), []byte("<total_amount>1000<"), []byte("<total_amount>1001<"), 1)
		}, false},
		{"lower-case sign", func(p wxpay.Params) []byte {
			p["sign"] = strings.ToLower(wxpay.Sign(p, m.APIKey, wxpay.SignMD5))
			b, _ := wxpay.EncodeXML(p)
			return b
		}, true},
		{"unknown field signed", func(p wxpay.Params) []byte { p["appid"] = "wx8888888888888888"; return signed(t, p, m.APIKey) }, false},
		{"unknown field unsigned", func(p wxpay.Params) []byte {
			b := signed(t, p, m.APIKey)
			return bytes.Replace(b, []byte("</xml>"), []byte("<extra>1</extra></xml>"), 1)
		}, false},
		{"unknown field empty", func(p wxpay.Params) []byte {
			b := signed(t, p, m.APIKey)
			return bytes.Replace(b, []byte("</xml>"), []byte("<extra></extra><more/></xml>"), 1)
		}, true},
		{"sign_type HMAC-SHA256", func(p wxpay.Params) []byte {
			p["sign_type"] = "HMAC-SHA256"
			p["sign"] = wxpay.Sign(p, m.APIKey, wxpay.SignHMACSHA256)
			b, _ := wxpay.EncodeXML(p)
			return b
		}, false},
		{"sign_type MD5", func(p wxpay.Params) []byte { p["sign_type"] = "MD5"; return signed(t, p, m.APIKey) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			billno := billnoN("SIG", i)
			p := sendParams(s, billno)
			_, ans, _ := post(t, rc, s.URL+wxpay.PathSendRedpack, tc.body(p))
			got := decode(t, ans)
			if tc.ok {
				if got["result_code"] != "SUCCESS" || s.Payments(billno) != 1 {
					t.Errorf("answer %v", got)
				}
				return
			}
			wantErrCode(t, got, "FAIL", "SIGN_ERROR", "签名")
			if s.Payments(billno) != 0 {
				t.Error("money moved")
			}
		})
	}

	// The client sees SIGN_ERROR as a failed credential error.
	c, _ := client(t, s, func(cfg *wxpay.Config) {
		cfg.Credentials = &wxpay.Credentials{MchID: m.MchID, APIKey: strings.Repeat("x", 32), Certificate: m.TLSCertificate()}
	})
	_, err := c.SendRedpack(context.Background(), sendReq("SIGCLIENT", "openid", 100))
	if e := wxErr(t, err); e.Code != "SIGN_ERROR" || e.Outcome != wxpay.OutcomeFailed || !wxpay.IsCredentialError(err) {
		t.Errorf("client error %+v", e)
	}
}

func TestParamErrors(t *testing.T) {
	s := start(t)
	m := s.Merchant()
	rc := rawClient(t, s, m.TLSCertificate())
	group := func(p wxpay.Params) {
		delete(p, "client_ip")
		p["total_num"], p["total_amount"], p["amt_type"] = "3", "900", "ALL_RAND"
	}
	mini := func(p wxpay.Params) {
		delete(p, "client_ip")
		p["notify_way"] = "MINI_PROGRAM_JSAPI"
	}
	query := func(p wxpay.Params) {
		for k := range p {
			switch k {
			case "nonce_str", "mch_billno", "mch_id":
			default:
				delete(p, k)
			}
		}
		p["appid"], p["bill_type"] = "wx8888888888888888", "MCHT"
	}
	for _, tc := range []struct {
		name  string
		path  string
		shape func(wxpay.Params)
		edit  func(wxpay.Params)
		field string
	}{
		{"missing re_openid", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { delete(p, "re_openid") }, "re_openid"},
		{"missing nonce_str", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { delete(p, "nonce_str") }, "nonce_str"},
		{"missing mch_id", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { delete(p, "mch_id") }, "mch_id"},
		{"missing wishing", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { delete(p, "wishing") }, "wishing"},
		{"fractional amount", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["total_amount"] = "10.5" }, "total_amount"},
		{"negative amount", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["total_amount"] = "-100" }, "total_amount"},
		{"zero amount", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["total_amount"] = "0" }, "total_amount"},
		{"two receivers", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["total_num"] = "2" }, "total_num"},
		{"billno with dash", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["mch_billno"] = "bad-billno" }, "mch_billno"},
		{"billno too long", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["mch_billno"] = strings.Repeat("1", 29) }, "mch_billno"},
		{"act_name too long", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["act_name"] = strings.Repeat("活", 33) }, "act_name"},
		{"IPv6 client_ip", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["client_ip"] = "::1" }, "client_ip"},
		{"missing client_ip", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { delete(p, "client_ip") }, "client_ip"},
		{"unknown scene", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["scene_id"] = "PRODUCT_9" }, "scene_id"},
		{"small amount without scene", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["total_amount"] = "50" }, "scene_id"},
		{"large amount without scene", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["total_amount"] = "20001" }, "scene_id"},
		{"sub_mch_id letters", wxpay.PathSendRedpack, nil, func(p wxpay.Params) { p["sub_mch_id"] = "abc" }, "sub_mch_id"},
		{"group of two", wxpay.PathSendGroupRedpack, group, func(p wxpay.Params) { p["total_num"] = "2" }, "total_num"},
		{"group of 21", wxpay.PathSendGroupRedpack, group, func(p wxpay.Params) { p["total_num"], p["total_amount"] = "21", "2100" }, "total_num"},
		{"group amt_type", wxpay.PathSendGroupRedpack, group, func(p wxpay.Params) { p["amt_type"] = "RAND" }, "amt_type"},
		{"group missing amt_type", wxpay.PathSendGroupRedpack, group, func(p wxpay.Params) { delete(p, "amt_type") }, "amt_type"},
		{"mini notify_way", wxpay.PathSendMiniProgramHB, mini, func(p wxpay.Params) { delete(p, "notify_way") }, "notify_way"},
		{"mini notify_way value", wxpay.PathSendMiniProgramHB, mini, func(p wxpay.Params) { p["notify_way"] = "JSAPI" }, "notify_way"},
		{"query bill_type", wxpay.PathGetHBInfo, query, func(p wxpay.Params) { p["bill_type"] = "BILL" }, "bill_type"},
		{"query appid", wxpay.PathGetHBInfo, query, func(p wxpay.Params) { delete(p, "appid") }, "appid"},
		{"query billno", wxpay.PathGetHBInfo, query, func(p wxpay.Params) { delete(p, "mch_billno") }, "mch_billno"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sendParams(s, "PARAM1")
			if tc.shape != nil {
				tc.shape(p)
			}
			tc.edit(p)
			_, ans, _ := post(t, rc, s.URL+tc.path, signed(t, p, m.APIKey))
			wantErrCode(t, decode(t, ans), "FAIL", "PARAM_ERROR", tc.field)
		})
	}
	if s.TotalPayments() != 0 {
		t.Error("money moved")
	}
}

func TestXMLErrors(t *testing.T) {
	s := start(t)
	rc := rawClient(t, s, s.Merchant().TLSCertificate())
	big := append([]byte("<xml><remark>"), bytes.Repeat([]byte("a"), wxpay.MaxBodySize)...)
	big = append(big, "</remark></xml>"...)
	for name, body := range map[string][]byte{
		"empty":      nil,
		"json":       []byte(`{"mch_billno":"X1"}`),
		"html":       []byte("<!DOCTYPE html><html><body>hi</body></html>"),
		"truncated":  []byte("<xml><mch_billno>X1</mch_billno>"),
		"nested":     []byte("<xml><a><b>1</b></a></xml>"),
		"repeated":   []byte("<xml><mch_billno>X1</mch_billno><mch_billno>X2</mch_billno></xml>"),
		"over limit": big,
	} {
		t.Run(name, func(t *testing.T) {
			status, ans, _ := post(t, rc, s.URL+wxpay.PathSendRedpack, body)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			wantErrCode(t, decode(t, ans), "FAIL", "XML_ERROR")
		})
	}
}

// A body as the Node.js SDK wechatpay-axios-plugin builds it: xml2js's
// Builder, headless, root "xml", not pretty, CDATA only around text that
// needs it, fields in the caller's order (not sorted), undefined optional
// fields as empty elements, numbers bare, no sign_type, sign last.
func TestNodeSDKWireShape(t *testing.T) {
	s := start(t)
	m := s.Merchant()
	fields := [][2]string{
		{"nonce_str", "abcdefghijklmnopqrstuvwxyz012345"},
		{"mch_billno", "NODE0001"},
		{"mch_id", m.MchID},
		{"wxappid", "wxd678efh567hg6787"},
		{"send_name", "天虹百货"},
		{"re_openid", "oHkLxtzmyOGkXu5kxBQ9yGBPpw5U"},
		{"total_amount", "100"},
		{"total_num", "1"},
		{"wishing", "恭喜发财 & 大吉大利 <3"},
		{"act_name", "春节活动"},
		{"remark", "a>b"},
		{"notify_way", "MINI_PROGRAM_JSAPI"},
		{"scene_id", ""},
	}
	p := wxpay.Params{}
	var b strings.Builder
	b.WriteString("<xml>")
	for _, f := range fields {
		p[f[0]] = f[1]
		switch {
		case f[1] == "":
			b.WriteString("<" + f[0] + "/>")
		case strings.ContainsAny(f[1], "<>&"):
			b.WriteString("<" + f[0] + "><![CDATA[" + f[1] + "]]></" + f[0] + ">")
		default:
			b.WriteString("<" + f[0] + ">" + f[1] + "</" + f[0] + ">")
		}
	}
	b.WriteString("<sign>" + wxpay.Sign(p, m.APIKey, wxpay.SignMD5) + "</sign></xml>")

	_, ans, _ := post(t, rawClient(t, s, m.TLSCertificate()), s.URL+wxpay.PathSendMiniProgramHB, []byte(b.String()))
	got := decode(t, ans)
	if got["result_code"] != "SUCCESS" || !packagePattern.MatchString(got["package"]) {
		t.Fatalf("answer %v\nrequest %s", got, b.String())
	}
	if rec, _ := s.Record("NODE0001"); rec.Wishing != "恭喜发财 & 大吉大利 <3" || rec.Remark != "a>b" {
		t.Errorf("record %+v", rec)
	}
}

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    RotateOptions
		oldBoth string // the old certificate with the old key
		oldCert string // the old certificate signed with the new key
	}{
		{"key and certificate", RotateOptions{}, "SIGN_ERROR", ""},
		{"revoke old certificate", RotateOptions{RevokeOld: true}, "CA_ERROR", "CA_ERROR"},
		{"certificate only", RotateOptions{KeepAPIKey: true}, "", ""},
		{"certificate only, revoked", RotateOptions{KeepAPIKey: true, RevokeOld: true}, "CA_ERROR", "CA_ERROR"},
		{"key only", RotateOptions{KeepCertificate: true}, "SIGN_ERROR", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			ctx := context.Background()
			old := s.Merchant()
			oldClient, _ := client(t, s)
			if _, err := oldClient.SendRedpack(ctx, sendReq("ROT1", "openid", 100)); err != nil {
				t.Fatal(err)
			}
			next := s.Rotate(tc.opts)
			if next.MchID != old.MchID || (next.APIKey == old.APIKey) != tc.opts.KeepAPIKey ||
				bytes.Equal(next.CertPEM, old.CertPEM) != tc.opts.KeepCertificate {
				t.Fatalf("rotated merchant: same key %v, same cert %v", next.APIKey == old.APIKey, bytes.Equal(next.CertPEM, old.CertPEM))
			}
			if s.Merchant().APIKey != next.APIKey || s.Credentials().APIKey != next.APIKey {
				t.Error("server still hands out the old credentials")
			}
			check := func(c *wxpay.Client, billno, want string) {
				t.Helper()
				_, err := c.SendRedpack(ctx, sendReq(billno, "openid", 100))
				if want == "" {
					if err != nil {
						t.Errorf("%s: %v", billno, err)
					}
					return
				}
				if e := wxErr(t, err); e.Code != want || !wxpay.IsCredentialError(err) {
					t.Errorf("%s: %+v, want %s", billno, e, want)
				}
			}
			check(oldClient, "ROT2", tc.oldBoth)
			newClient, _ := client(t, s)
			check(newClient, "ROT3", "")
			mixed, _ := client(t, s, func(cfg *wxpay.Config) {
				cfg.Credentials = &wxpay.Credentials{MchID: old.MchID, APIKey: next.APIKey, Certificate: old.TLSCertificate()}
			})
			check(mixed, "ROT4", tc.oldCert)
			// The first billno still answers its original result to the
			// new credentials.
			if res, err := newClient.SendRedpack(ctx, sendReq("ROT1", "openid", 100)); err != nil || s.Payments("ROT1") != 1 {
				t.Errorf("repeat after rotation: %v %v", res, err)
			}
		})
	}
}
