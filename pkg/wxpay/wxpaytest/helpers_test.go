package wxpaytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// start starts a server closed at the end of the test.
func start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewServer(opts...)
	t.Cleanup(s.Close)
	return s
}

// sleeper is a fake wxpay.Config.Sleep: it records the waits and returns
// at once, optionally advancing a clock by each wait.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
	clock *Clock
}

func (sl *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	sl.mu.Lock()
	sl.waits = append(sl.waits, d)
	sl.mu.Unlock()
	if sl.clock != nil {
		sl.clock.Advance(d)
	}
	return ctx.Err()
}

func (sl *sleeper) Waits() []time.Duration {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return append([]time.Duration(nil), sl.waits...)
}

// client builds a client for s with a recording fake sleep, closing its
// idle connections at the end of the test.
func client(t testing.TB, s *Server, mods ...func(*wxpay.Config)) (*wxpay.Client, *sleeper) {
	t.Helper()
	sl := &sleeper{}
	all := append([]func(*wxpay.Config){func(c *wxpay.Config) { c.Sleep = sl.Sleep }}, mods...)
	c, err := s.NewClient(all...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, sl
}

func sendReq(billno, openid string, fen int64) *wxpay.SendRequest {
	return &wxpay.SendRequest{
		MchBillno: billno, WxAppID: "wx8888888888888888", SendName: "天虹百货", ReOpenID: openid,
		TotalAmount: fen, TotalNum: 1, Wishing: "感谢您参加猜灯谜活动，祝您元宵节快乐！",
		ClientIP: "192.168.0.1", ActName: "猜灯谜抢红包活动", Remark: "猜越多得越多，快来抢！",
	}
}

func miniReq(billno, openid string, fen int64) *wxpay.SendMiniRequest {
	return &wxpay.SendMiniRequest{
		MchBillno: billno, WxAppID: "wxd678efh567hg6787", SendName: "天虹百货", ReOpenID: openid,
		TotalAmount: fen, TotalNum: 1, Wishing: "恭喜发财", ActName: "新年红包", Remark: "新年快乐",
	}
}

func groupReq(billno, openid string, fen, num int64) *wxpay.SendGroupRequest {
	return &wxpay.SendGroupRequest{
		MchBillno: billno, WxAppID: "wx8888888888888888", SendName: "天虹百货", ReOpenID: openid,
		TotalAmount: fen, TotalNum: num, AmtType: wxpay.AmtTypeAllRand, Wishing: "分享给好友",
		ActName: "裂变红包活动", Remark: "人人有份",
	}
}

// wxErr asserts err is a *wxpay.Error and returns it.
func wxErr(t testing.TB, err error) *wxpay.Error {
	t.Helper()
	var e *wxpay.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *wxpay.Error", err, err)
	}
	return e
}

// rawClient is an HTTPS client for s presenting certs (none when empty),
// for the requests wxpay.Client cannot make.
func rawClient(t testing.TB, s *Server, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: s.RootCAs(), Certificates: certs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// post sends body to s's path with c and returns the status and body.
func post(t testing.TB, c *http.Client, url string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	resp, err := c.Post(url, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp.StatusCode, data, resp.Header
}

// signed returns p's <xml> body signed with key (MD5).
func signed(t testing.TB, p wxpay.Params, key string) []byte {
	t.Helper()
	q := wxpay.Params{}
	for k, v := range p {
		q[k] = v
	}
	delete(q, "sign")
	q["sign"] = wxpay.Sign(q, key, wxpay.SignMD5)
	body, err := wxpay.EncodeXML(q)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// sendParams are a valid sendredpack request's fields for s.
func sendParams(s *Server, billno string) wxpay.Params {
	return wxpay.Params{
		"nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "mch_billno": billno, "mch_id": s.Merchant().MchID,
		"wxappid": "wx8888888888888888", "send_name": "天虹百货", "re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E",
		"total_amount": "1000", "total_num": "1", "wishing": "感谢您参加猜灯谜活动", "client_ip": "192.168.0.1",
		"act_name": "猜灯谜抢红包活动", "remark": "猜越多得越多",
	}
}

// decode parses an answer body, failing the test if it is not XML.
func decode(t testing.TB, body []byte) wxpay.Params {
	t.Helper()
	p, err := wxpay.DecodeXML(body)
	if err != nil {
		t.Fatalf("answer is not APIv2 XML: %v\n%s", err, body)
	}
	return p
}

// wantErrCode checks a failure answer's err_code and that its err_code_des
// contains each of des.
func wantErrCode(t testing.TB, p wxpay.Params, returnCode, errCode string, des ...string) {
	t.Helper()
	if p["return_code"] != returnCode || p["result_code"] != "FAIL" || p["err_code"] != errCode {
		t.Fatalf("answer return_code=%s result_code=%s err_code=%s (%s), want %s/FAIL/%s",
			p["return_code"], p["result_code"], p["err_code"], p["err_code_des"], returnCode, errCode)
	}
	for _, d := range des {
		if !strings.Contains(p["err_code_des"], d) {
			t.Errorf("err_code_des %q does not mention %q", p["err_code_des"], d)
		}
	}
}

func billnoN(prefix string, i int) string { return fmt.Sprintf("%s%04d", prefix, i) }
