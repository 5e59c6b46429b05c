package wxpay

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test constants. testKey is the APIv2 key of WeChat's official signature
// example; it is 32 bytes, as Credentials.Check requires.
const (
	testMchID  = "1900000109"
	testKey    = "192006250b4c09247ec02edce69f6a2d"
	testAppID  = "wxd930ea5d5a258f4f"
	testOpenID = "oxTWIuGaIt6gTKsQRLau2M0yL16E"
)

// testStart is the fake clock's starting time: far from the real one on
// purpose, so that code mixing the injected clock with real deadlines shows.
var testStart = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

// testPKI is a throw-away CA and a merchant certificate it issued.
type testPKI struct {
	caCert   *x509.Certificate
	caKey    *ecdsa.PrivateKey
	caPool   *x509.CertPool
	merchant tls.Certificate // CN testMchID, valid 2020 to 2099
}

var serial atomic.Int64

// issue signs a certificate for key with the CA.
func (p *testPKI) issue(t testing.TB, subject pkix.Name, pub crypto.PublicKey, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000 + serial.Add(1)),
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, pub, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

// fixture returns the package's shared test PKI, built once.
func fixture(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		caTmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "wxpay test CA"},
			NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter:              time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
			KeyUsage:              x509.KeyUsageCertSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		caCert, _ := x509.ParseCertificate(der)
		p := &testPKI{caCert: caCert, caKey: caKey, caPool: x509.NewCertPool()}
		p.caPool.AddCert(caCert)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		leaf := p.issue(t, pkix.Name{CommonName: testMchID, OrganizationalUnit: []string{"WeChat Pay"}}, &key.PublicKey,
			time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
		p.merchant = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
		pki = p
	})
	return pki
}

// testCredentials returns valid credentials for testMchID.
func testCredentials(t testing.TB) *Credentials {
	return &Credentials{MchID: testMchID, APIKey: testKey, Certificate: fixture(t).merchant}
}

// fakeClock is Config.Now and Config.Sleep: Sleep records the wait and
// advances the clock instead of sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: testStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// reply is one scripted answer of a test server.
type reply struct {
	status int    // 200 when 0
	body   string // written as is
	ctype  string // text/xml when empty
	hang   bool   // never answer: wait for the client to give up
	// hold, when set, delays the answer until it is closed (or the client
	// gives up).
	hold <-chan struct{}
}

// xmlReply answers 200 with the document of params.
func xmlReply(t testing.TB, params Params) reply {
	t.Helper()
	b, err := EncodeXML(params)
	if err != nil {
		t.Fatal(err)
	}
	return reply{body: string(b)}
}

func successParams(billno string) Params {
	return Params{
		"return_code": "SUCCESS", "return_msg": "发放成功", "result_code": "SUCCESS",
		"mch_billno": billno, "mch_id": testMchID, "wxappid": testAppID, "re_openid": testOpenID,
		"total_amount": "1000", "send_listid": "100000000020150520314766074200",
	}
}

func errParams(code, des string) Params {
	return Params{
		"return_code": "SUCCESS", "return_msg": des, "result_code": "FAIL",
		"err_code": code, "err_code_des": des, "mch_billno": "B1", "mch_id": testMchID,
	}
}

// scriptServer is a mutual TLS test server that answers requests from a
// script (the last reply repeats) and records what it received.
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex
	replies  []reply
	bodies   [][]byte
	paths    []string
	peerCNs  []string
	newConns atomic.Int32
	done     chan struct{}
}

func newScriptServer(t testing.TB, replies ...reply) *scriptServer {
	t.Helper()
	s := &scriptServer{replies: replies, done: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: fixture(t).caPool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.newConns.Add(1)
		}
	}
	srv.StartTLS()
	s.Server = srv
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.done) }) // runs first: releases hanging handlers
	return s
}

func (s *scriptServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.bodies)
	s.bodies = append(s.bodies, body)
	s.paths = append(s.paths, r.URL.Path)
	cn := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		cn = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	s.peerCNs = append(s.peerCNs, cn)
	rep := reply{status: http.StatusInternalServerError, body: "no script"}
	if len(s.replies) > 0 {
		rep = s.replies[min(n, len(s.replies)-1)]
	}
	s.mu.Unlock()
	if rep.hang {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		// Answer nothing: returning would send an empty 200, and the
		// client's transport takes an answer that races its giving up
		// (the TLS close_notify it sends first lets this handler end
		// before the connection is closed), which it then reads as an
		// empty document rather than a timeout.
		panic(http.ErrAbortHandler)
	}
	if rep.hold != nil {
		select {
		case <-rep.hold:
		case <-r.Context().Done():
			panic(http.ErrAbortHandler)
		}
	}
	ct := rep.ctype
	if ct == "" {
		ct = "text/xml"
	}
	w.Header().Set("Content-Type", ct)
	if rep.status != 0 {
		w.WriteHeader(rep.status)
	}
	io.WriteString(w, rep.body)
}

func (s *scriptServer) requests() (bodies [][]byte, paths, cns []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...), append([]string(nil), s.paths...), append([]string(nil), s.peerCNs...)
}

// rootsFor trusts the test servers' certificate (httptest uses one for all).
func rootsFor(s *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}

// newTestClient returns a client of srv with the client's own mutual TLS
// transport, a fake clock and a seeded nonce source; mod adjusts the config.
func newTestClient(t testing.TB, srv *scriptServer, mod func(*Config)) (*Client, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	cfg := Config{
		Credentials: testCredentials(t),
		BaseURL:     srv.URL,
		RootCAs:     rootsFor(srv.Server),
		Now:         clock.Now,
		Sleep:       clock.Sleep,
		Rand:        mrand.NewChaCha8([32]byte{1}),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, clock
}

// countingTransport counts round trips and fails every one of them.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, io.ErrUnexpectedEOF
}

// offlineClient is a client whose transport must never be used.
func offlineClient(t testing.TB) (*Client, *countingTransport) {
	t.Helper()
	ct := &countingTransport{}
	c, err := NewClient(Config{
		Credentials: testCredentials(t),
		BaseURL:     "https://wxpay.invalid",
		Transport:   ct,
		Now:         newFakeClock().Now,
		Sleep:       newFakeClock().Sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, ct
}

// Valid requests of each kind.

func validMini() *SendMiniRequest {
	return &SendMiniRequest{
		MchBillno: "10000098201411111234567890", WxAppID: testAppID, SendName: "天虹百货",
		ReOpenID: testOpenID, TotalAmount: 1000, TotalNum: 1, Wishing: "恭喜发财",
		ActName: "新年红包", Remark: "新年快乐", SceneID: "PRODUCT_1",
	}
}

func validSend() *SendRequest {
	return &SendRequest{
		MchBillno: "10000098201411111234567891", WxAppID: testAppID, SendName: "天虹百货",
		ReOpenID: testOpenID, TotalAmount: 1000, TotalNum: 1, Wishing: "恭喜发财",
		ClientIP: "192.168.0.1", ActName: "新年红包", Remark: "新年快乐",
	}
}

func validGroup() *SendGroupRequest {
	return &SendGroupRequest{
		MchBillno: "10000098201411111234567892", WxAppID: testAppID, SendName: "天虹百货",
		ReOpenID: testOpenID, TotalAmount: 600, TotalNum: 3, AmtType: AmtTypeAllRand,
		Wishing: "恭喜发财", ActName: "新年红包", Remark: "新年快乐",
	}
}

func validQuery() *QueryRequest {
	return &QueryRequest{MchBillno: "10000098201411111234567890", AppID: testAppID}
}
