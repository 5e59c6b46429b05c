package wxpaytest

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// noAuthText is WeChat's err_code_des for a caller outside the merchant's
// allowlist, written out here so that the test checks the very text.
const noAuthText = "IP地址非你在商户平台设置的可用IP地址"

var (
	loopback  = netip.MustParseAddr("127.0.0.1")
	loopback2 = netip.MustParseAddr("127.0.0.2")
)

// clientFrom builds a client for s whose connections come from the local
// address from (any address of 127.0.0.0/8 is loopback on Linux).
func clientFrom(t *testing.T, s *Server, from netip.Addr) *wxpay.Client {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	probe, err := dialer.Dial("tcp", s.primary.ln.Addr().String())
	if err != nil {
		t.Skipf("cannot connect from %v on this machine: %v", from, err)
	}
	probe.Close()
	tr := &http.Transport{
		DialContext:     dialer.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: s.RootCAs(), Certificates: []tls.Certificate{s.Merchant().TLSCertificate()}, MinVersion: tls.VersionTLS12},
	}
	t.Cleanup(tr.CloseIdleConnections)
	c, _ := client(t, s, func(c *wxpay.Config) { c.Transport = tr })
	return c
}

// TestCallerIPsDefault: without an allowlist every address may call, as
// before the option existed.
func TestCallerIPsDefault(t *testing.T) {
	s := start(t)
	if ips := s.CallerIPs(); len(ips) != 0 {
		t.Fatalf("CallerIPs() = %v, want none", ips)
	}
	c, _ := client(t, s)
	if _, err := c.SendRedpack(context.Background(), sendReq("IPDEFAULT1", "openid1", 1000)); err != nil {
		t.Fatalf("SendRedpack without an allowlist: %v", err)
	}
	if s.Payments("IPDEFAULT1") != 1 {
		t.Errorf("payments %d, want 1", s.Payments("IPDEFAULT1"))
	}
}

// TestCallerIPsRefuse: a request from an address not on the allowlist is a
// business refusal (return_code SUCCESS, result_code FAIL), NO_AUTH with
// WeChat's text, on every API, and moves no money.
func TestCallerIPsRefuse(t *testing.T) {
	s := start(t, WithCallerIPs(loopback2))
	c, _ := client(t, s) // connects from 127.0.0.1
	ctx := context.Background()
	balance := s.Balance()

	_, err := c.SendRedpack(ctx, sendReq("IPREFUSED1", "openid1", 1000))
	e := wxErr(t, err)
	if e.Code != "NO_AUTH" || e.Message != noAuthText || e.Outcome != wxpay.OutcomeFailed || e.Retryable {
		t.Errorf("SendRedpack: %+v, want NO_AUTH %q, failed, not retryable", e, noAuthText)
	}
	if n := s.RequestsFor("IPREFUSED1"); n != 1 {
		t.Errorf("%d requests for the billno, want 1 (NO_AUTH is not retried)", n)
	}
	_, err = c.SendMiniProgramHB(ctx, miniReq("IPREFUSED2", "openid2", 888))
	if e := wxErr(t, err); e.Code != "NO_AUTH" || e.Message != noAuthText {
		t.Errorf("SendMiniProgramHB: %+v", e)
	}
	_, err = c.SendGroupRedpack(ctx, groupReq("IPREFUSED3", "openid3", 900, 3))
	if e := wxErr(t, err); e.Code != "NO_AUTH" || e.Message != noAuthText {
		t.Errorf("SendGroupRedpack: %+v", e)
	}
	_, err = c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: "IPREFUSED1", AppID: "wx8888888888888888"})
	if e := wxErr(t, err); e.Code != "NO_AUTH" || e.Message != noAuthText || e.Outcome != wxpay.OutcomeFailed {
		t.Errorf("QueryRedpack: %+v", e)
	}
	if s.TotalPayments() != 0 || s.Balance() != balance || len(s.Records()) != 0 {
		t.Errorf("after refusals: %d payments, balance %d (was %d), %d records; want nothing moved",
			s.TotalPayments(), s.Balance(), balance, len(s.Records()))
	}

	// The answer on the wire.
	m := s.Merchant()
	_, ans, _ := post(t, rawClient(t, s, m.TLSCertificate()), s.URL+wxpay.PathSendRedpack, signed(t, sendParams(s, "IPREFUSED4"), m.APIKey))
	p := decode(t, ans)
	wantErrCode(t, p, "SUCCESS", "NO_AUTH")
	if p["err_code_des"] != noAuthText || p["return_msg"] != noAuthText {
		t.Errorf("err_code_des %q, return_msg %q, want %q", p["err_code_des"], p["return_msg"], noAuthText)
	}
	if p["mch_billno"] != "IPREFUSED4" {
		t.Errorf("answer does not echo the billno: %v", p)
	}
}

// TestCallerIPsOrder: the allowlist is checked after the signature, so a
// badly signed request from anywhere is still a SIGN_ERROR.
func TestCallerIPsOrder(t *testing.T) {
	s := start(t, WithCallerIPs(loopback2))
	m := s.Merchant()
	_, ans, _ := post(t, rawClient(t, s, m.TLSCertificate()), s.URL+wxpay.PathSendRedpack, signed(t, sendParams(s, "IPORDER1"), "wrong-key-wrong-key-wrong-key-32"))
	wantErrCode(t, decode(t, ans), "FAIL", "SIGN_ERROR")
}

// TestCallerIPsAllow: a client connecting from a listed address is served;
// the same server refuses the unlisted one.
func TestCallerIPsAllow(t *testing.T) {
	s := start(t, WithCallerIPs(loopback2))
	ctx := context.Background()
	listed := clientFrom(t, s, loopback2)
	res, err := listed.SendRedpack(ctx, sendReq("IPALLOWED1", "openid1", 1000))
	if err != nil || res.SendListID == "" {
		t.Fatalf("SendRedpack from %v: %+v, %v", loopback2, res, err)
	}
	unlisted := clientFrom(t, s, loopback)
	if _, err := unlisted.SendRedpack(ctx, sendReq("IPALLOWED2", "openid1", 1000)); wxErr(t, err).Code != "NO_AUTH" {
		t.Errorf("SendRedpack from %v: %v, want NO_AUTH", loopback, err)
	}
	if s.Payments("IPALLOWED1") != 1 || s.Payments("IPALLOWED2") != 0 {
		t.Errorf("payments %d and %d, want 1 and 0", s.Payments("IPALLOWED1"), s.Payments("IPALLOWED2"))
	}
}

// TestSetCallerIPs: the merchant changes the allowlist while the server
// runs. A billno refused with NO_AUTH recorded nothing, so once the address
// is listed the same billno is paid, once.
func TestSetCallerIPs(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	ctx := context.Background()
	if err := s.SetCallerIPs(loopback2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendRedpack(ctx, sendReq("IPSET1", "openid1", 1000)); wxErr(t, err).Code != "NO_AUTH" {
		t.Fatalf("before listing 127.0.0.1: %v, want NO_AUTH", err)
	}
	// An IPv4-mapped IPv6 address is the IPv4 one.
	if err := s.SetCallerIPs(loopback2, netip.MustParseAddr("::ffff:127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if got := s.CallerIPs(); len(got) != 2 || got[1] != loopback {
		t.Errorf("CallerIPs() = %v", got)
	}
	if _, err := c.SendRedpack(ctx, sendReq("IPSET1", "openid1", 1000)); err != nil {
		t.Fatalf("after listing 127.0.0.1: %v", err)
	}
	if err := s.SetCallerIPs(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendRedpack(ctx, sendReq("IPSET1", "openid1", 1000)); err != nil {
		t.Fatalf("repeat with no allowlist: %v", err)
	}
	if s.Payments("IPSET1") != 1 {
		t.Errorf("payments %d, want 1", s.Payments("IPSET1"))
	}
}

// TestCallerIPsErrors: more addresses than the merchant platform takes, or
// an invalid one, are refused.
func TestCallerIPsErrors(t *testing.T) {
	var eleven []netip.Addr
	for i := range MaxCallerIPs + 1 {
		eleven = append(eleven, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
	}
	if _, err := Start(Config{CallerIPs: eleven}); err == nil {
		t.Errorf("Start with %d caller IPs: no error", len(eleven))
	}
	s := start(t)
	if err := s.SetCallerIPs(eleven...); err == nil {
		t.Errorf("SetCallerIPs with %d addresses: no error", len(eleven))
	}
	if err := s.SetCallerIPs(netip.Addr{}); err == nil {
		t.Error("SetCallerIPs with an invalid address: no error")
	}
	if len(s.CallerIPs()) != 0 {
		t.Errorf("a refused SetCallerIPs changed the allowlist to %v", s.CallerIPs())
	}
}
