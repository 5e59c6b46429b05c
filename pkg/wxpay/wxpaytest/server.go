package wxpaytest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Server is a simulated WeChat Pay APIv2 red packet service: HTTPS with
// mutual TLS on loopback, the four red packet endpoints, a ledger, limits
// and injectable faults. It is safe for concurrent use.
type Server struct {
	// URL is the primary base URL, "https://127.0.0.1:PORT", for
	// wxpay.Config.BaseURL or WXPAY_BASE_URL.
	URL string
	// BackupURL is the backup base URL, empty without a backup.
	BackupURL string

	now  func() time.Time
	logf func(format string, args ...any)

	serverCA     *CA
	merchantCA   *CA
	merchantPool *x509.CertPool
	tlsConfig    *tls.Config
	primary      *endpointServer
	backup       *endpointServer

	handshakes atomic.Int64
	verified   sync.Map // [32]byte fingerprint -> bool: chains to the merchant CA

	// mu guards everything below: merchant, ledger, limits, faults, the
	// timeline.
	mu           sync.Mutex
	rand         io.Reader
	merchant     *MerchantFiles
	creds        *wxpay.Credentials
	revoked      map[[32]byte]bool
	limits       Limits
	balance      int64
	ledger       map[string]*Record
	payments     map[string]int
	days         map[string]*dayStats
	rateSecond   int64
	rateCount    int
	callerIPs    []netip.Addr
	nextFaults   []Fault
	billnoFaults map[string][]Fault
	sendFaults   map[string][]Fault
	timeline     Timeline
	fates        map[string]Fate
	live         map[string]*Record   // records with a move ahead (Timeline)
	firstTry     map[string]time.Time // billno -> its first send request

	statsMu        sync.Mutex
	requests       int
	backupRequests int
	byPath         map[string]int
	byBillno       map[string]int

	lifeMu   sync.Mutex
	closed   bool
	done     chan struct{}
	inflight sync.WaitGroup
}

// NewServer starts a server for a test, as httptest.NewServer does: on a
// free loopback port, with the options applied to a zero Config. It
// panics if the server cannot start.
func NewServer(opts ...Option) *Server {
	var cfg Config
	for _, opt := range opts {
		opt(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		panic(err) // its message starts with "wxpaytest:"
	}
	return s
}

// Start starts a server as cfg says. Close it when done.
func Start(cfg Config) (*Server, error) {
	if cfg.Merchant != nil {
		if cfg.MerchantCA == nil {
			return nil, errors.New("wxpaytest: Config.Merchant needs the Config.MerchantCA that issued it")
		}
		cfg.MchID = cfg.Merchant.MchID
	}
	if cfg.MchID == "" {
		cfg.MchID = DefaultMchID
	}
	if !isDigits(cfg.MchID) || len(cfg.MchID) > 32 {
		return nil, fmt.Errorf("wxpaytest: mch_id %q must be digits", cfg.MchID)
	}
	if cfg.APIKey != "" && len(cfg.APIKey) != wxpay.APIKeyLength {
		return nil, fmt.Errorf("wxpaytest: APIv2 key must be %d bytes", wxpay.APIKeyLength)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	callerIPs, err := callerIPList(cfg.CallerIPs)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	serverCA := cfg.ServerCA
	if serverCA == nil {
		if serverCA, err = NewCA("wxpaytest WeChat Pay Server CA"); err != nil {
			return nil, err
		}
	}
	merchantCA := cfg.MerchantCA
	if merchantCA == nil {
		if merchantCA, err = NewCA(merchantCAName); err != nil {
			return nil, err
		}
	}
	merchant := cfg.Merchant
	if merchant == nil {
		merchant, err = merchantCA.IssueMerchant(MerchantSpec{MchID: cfg.MchID, APIKey: cfg.APIKey, Name: cfg.MerchantName, Now: now, Rand: rnd})
		if err != nil {
			return nil, err
		}
	} else if err := merchant.Certificate.CheckSignatureFrom(merchantCA.Certificate()); err != nil {
		return nil, fmt.Errorf("wxpaytest: Config.Merchant was not issued by Config.MerchantCA: %w", err)
	}
	creds, err := merchant.Credentials()
	if err != nil {
		return nil, err
	}
	hosts := []string{"127.0.0.1", "::1", "localhost", "api.mch.weixin.qq.com", "api2.mch.weixin.qq.com"}
	hosts = append(hosts, listenHosts(cfg.Addr, cfg.BackupAddr)...)
	hosts = append(hosts, cfg.Hosts...)
	serverCert, err := serverCA.issueServer(hosts)
	if err != nil {
		return nil, err
	}

	s := &Server{
		now:          now,
		logf:         cfg.Logf,
		serverCA:     serverCA,
		merchantCA:   merchantCA,
		merchantPool: merchantCA.Pool(),
		rand:         rnd,
		merchant:     merchant,
		creds:        creds,
		revoked:      map[[32]byte]bool{},
		limits:       cfg.Limits.withDefaults(),
		ledger:       map[string]*Record{},
		payments:     map[string]int{},
		days:         map[string]*dayStats{},
		billnoFaults: map[string][]Fault{},
		sendFaults:   map[string][]Fault{},
		timeline:     cfg.Timeline.withDefaults(),
		fates:        map[string]Fate{},
		live:         map[string]*Record{},
		firstTry:     map[string]time.Time{},
		callerIPs:    callerIPs,
		byPath:       map[string]int{},
		byBillno:     map[string]int{},
		done:         make(chan struct{}),
	}
	s.balance = s.limits.Balance
	s.tlsConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{serverCert},
		// The gateway asks for the merchant certificate and judges it
		// itself, so that a missing or foreign one gets nginx's HTML 400
		// rather than a failed handshake, as at WeChat.
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"http/1.1"},
		VerifyConnection: func(tls.ConnectionState) error {
			s.handshakes.Add(1)
			return nil
		},
	}
	if s.primary, err = s.listen(cfg.Addr, false); err != nil {
		return nil, err
	}
	s.URL = s.primary.url
	if cfg.BackupAddr != "" {
		if s.backup, err = s.listen(cfg.BackupAddr, true); err != nil {
			s.primary.close()
			return nil, err
		}
		s.BackupURL = s.backup.url
	}
	return s, nil
}

// listenHosts returns the specific (not wildcard) hosts of listen
// addresses, which the server certificate must cover too.
func listenHosts(addrs ...string) []string {
	var hosts []string
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			continue
		}
		hosts = append(hosts, host)
	}
	return hosts
}

// Close stops the server: listeners and connections are closed, waits in
// progress end, and Close returns once every handler has.
func (s *Server) Close() {
	s.lifeMu.Lock()
	if s.closed {
		s.lifeMu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.lifeMu.Unlock()
	s.primary.close()
	if s.backup != nil {
		s.backup.close()
	}
	s.inflight.Wait()
}

// enter registers a handler run; false once the server is closed.
func (s *Server) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// endpointServer is one listening endpoint, primary or backup.
type endpointServer struct {
	url string
	ln  net.Listener
	srv *http.Server

	mu    sync.Mutex
	down  bool
	conns map[*trackedConn]struct{}
}

func (s *Server) listen(addr string, backup bool) (*endpointServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: listen on %s: %w", addr, err)
	}
	e := &endpointServer{ln: ln, conns: map[*trackedConn]struct{}{}}
	e.url = "https://" + urlHost(ln.Addr())
	errLog := log.New(io.Discard, "", 0)
	if s.logf != nil {
		errLog = log.New(logfWriter(s.logf), "wxpaytest: ", 0)
	}
	e.srv = &http.Server{
		Handler:           s.handler(backup),
		TLSConfig:         s.tlsConfig,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only, as APIv2
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          errLog,
	}
	go func() { _ = e.srv.Serve(tls.NewListener(&gateListener{Listener: ln, e: e}, s.tlsConfig)) }()
	return e, nil
}

// urlHost is the host:port clients use for a listen address: loopback
// for a wildcard address.
func urlHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (e *endpointServer) close() {
	_ = e.srv.Close()
	e.setDown(true) // and reset whatever is left, hijacked or not
}

// setDown makes the endpoint refuse service: new connections are reset at
// once, and open ones (kept-alive included) are reset.
func (e *endpointServer) setDown(down bool) {
	e.mu.Lock()
	e.down = down
	if !down {
		e.mu.Unlock()
		return
	}
	conns := make([]*trackedConn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	for _, c := range conns {
		resetTCP(c)
	}
}

// gateListener resets connections while its endpoint is down and tracks
// the others.
type gateListener struct {
	net.Listener
	e *endpointServer
}

// Accept returns the next connection while the endpoint is up.
func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, e: l.e}
		l.e.mu.Lock()
		down := l.e.down
		if !down {
			l.e.conns[tc] = struct{}{}
		}
		l.e.mu.Unlock()
		if down {
			setLinger0(c)
			_ = c.Close()
			continue
		}
		return tc, nil
	}
}

// trackedConn is an accepted TCP connection its endpoint can reset.
type trackedConn struct {
	net.Conn
	e    *endpointServer
	once sync.Once
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.e.mu.Lock()
		delete(c.e.conns, c)
		c.e.mu.Unlock()
	})
	return c.Conn.Close()
}

func setLinger0(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
}

// resetTCP closes a connection with a TCP reset, without a TLS
// close_notify: what a crashed or unreachable peer looks like.
func resetTCP(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*trackedConn); ok {
		setLinger0(tc.Conn)
	} else {
		setLinger0(c)
	}
	_ = c.Close()
}

// logfWriter adapts Logf to the http.Server error log.
type logfWriter func(format string, args ...any)

// Write logs one line.
func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// SetPrimaryDown takes the primary endpoint down (true): its connections
// are reset, new ones too, while the backup keeps answering; false brings
// it back.
func (s *Server) SetPrimaryDown(down bool) { s.primary.setDown(down) }

// SetBackupDown does for the backup endpoint what SetPrimaryDown does for
// the primary. It does nothing without a backup.
func (s *Server) SetBackupDown(down bool) {
	if s.backup != nil {
		s.backup.setDown(down)
	}
}

// Credentials returns the merchant's current credentials, loaded from its
// PEM files as a deployed function would.
func (s *Server) Credentials() *wxpay.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *s.creds
	return &c
}

// Merchant returns the merchant's current credential files.
func (s *Server) Merchant() *MerchantFiles {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := *s.merchant
	return &m
}

// MerchantCA returns the CA that issues the merchant certificates, for
// tests that need a certificate of their own (expired, or for another
// mch_id).
func (s *Server) MerchantCA() *CA { return s.merchantCA }

// ServerCA returns the CA that signed the server certificate.
func (s *Server) ServerCA() *CA { return s.serverCA }

// RootCAs returns a pool with the CA of the server certificate, for
// wxpay.Config.RootCAs.
func (s *Server) RootCAs() *x509.CertPool { return s.serverCA.Pool() }

// CAPEM returns the CA of the server certificate in PEM: the file
// SSL_CERT_FILE points at.
func (s *Server) CAPEM() []byte { return s.serverCA.CertPEM() }

// ClientConfig returns a client configuration for this server:
// Credentials, BaseURL, BackupURL (when there is a backup) and RootCAs.
func (s *Server) ClientConfig() wxpay.Config {
	return wxpay.Config{
		Credentials: s.Credentials(),
		BaseURL:     s.URL,
		BackupURL:   s.BackupURL,
		RootCAs:     s.RootCAs(),
	}
}

// NewClient builds a wxpay.Client from ClientConfig after applying mods
// (to set Sleep, MaxAttempts and the like).
func (s *Server) NewClient(mods ...func(*wxpay.Config)) (*wxpay.Client, error) {
	cfg := s.ClientConfig()
	for _, mod := range mods {
		mod(&cfg)
	}
	return wxpay.NewClient(cfg)
}

// IssueMerchant issues, from the merchant CA, credentials for another
// merchant the simulator does not serve. Presented with this server's
// mch_id in the request, its certificate answers CA_ERROR.
func (s *Server) IssueMerchant(mchID string) (*MerchantFiles, error) {
	return s.merchantCA.IssueMerchant(MerchantSpec{MchID: mchID, Now: s.now})
}

// RotateOptions say what Server.Rotate changes.
type RotateOptions struct {
	// RevokeOld revokes the old certificate: requests presenting it answer
	// CA_ERROR. Without it the old certificate stays valid, as at WeChat
	// until the merchant revokes it. It has no effect with
	// KeepCertificate.
	RevokeOld bool
	// KeepAPIKey keeps the APIv2 key; by default it changes too, and
	// requests signed with the old key answer SIGN_ERROR at once.
	KeepAPIKey bool
	// KeepCertificate keeps the certificate and changes only the key.
	KeepCertificate bool
}

// Rotate replaces the merchant's credentials, as a merchant does on its
// platform, and returns the new ones (also what Credentials, Merchant,
// ClientConfig and WriteFiles use from now on).
func (s *Server) Rotate(opts RotateOptions) *MerchantFiles {
	s.mu.Lock()
	old := s.merchant
	apiKey := old.APIKey
	if !opts.KeepAPIKey {
		for apiKey == old.APIKey {
			key, err := randomKey(s.rand)
			if err != nil {
				s.mu.Unlock()
				panic(err)
			}
			apiKey = key
		}
	}
	s.mu.Unlock()

	next := *old
	next.APIKey = apiKey
	if !opts.KeepCertificate {
		issued, err := s.merchantCA.IssueMerchant(MerchantSpec{
			MchID: old.MchID, APIKey: apiKey, Name: firstOr(old.Certificate.Subject.OrganizationalUnit, ""), Now: s.now,
		})
		if err != nil {
			panic(fmt.Sprintf("wxpaytest: rotate: %v", err))
		}
		next = *issued
	}
	creds, err := next.Credentials()
	if err != nil {
		panic(fmt.Sprintf("wxpaytest: rotate: %v", err))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if opts.RevokeOld && !opts.KeepCertificate {
		s.revoked[fingerprint(old.Certificate.Raw)] = true
	}
	s.merchant = &next
	s.creds = creds
	m := next
	return &m
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

// Requests returns how many HTTP requests the server received, on both
// endpoints, including those its gateway refused.
func (s *Server) Requests() int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.requests
}

// BackupRequests returns how many of the requests came to the backup
// endpoint.
func (s *Server) BackupRequests() int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.backupRequests
}

// RequestsTo returns how many requests came for path (such as
// wxpay.PathSendRedpack), on both endpoints.
func (s *Server) RequestsTo(path string) int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.byPath[path]
}

// RequestsFor returns how many readable requests carried mch_billno
// billno, sends and queries alike.
func (s *Server) RequestsFor(billno string) int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.byBillno[billno]
}

// Handshakes returns how many TLS handshakes the server went through, on
// both endpoints. A client that keeps its connection alive makes one.
func (s *Server) Handshakes() int { return int(s.handshakes.Load()) }

// SettledHandshakes waits until the handshake count has not moved for
// 30 ms and returns it. net/http may finish a dial it started for one of
// several concurrent requests after that request was served on another
// connection; a test that counts the handshakes of the calls that follow
// starts from the settled count, so such a late dial is not theirs.
func (s *Server) SettledHandshakes() int {
	n := s.Handshakes()
	for still := 0; still < 3; {
		time.Sleep(10 * time.Millisecond)
		if m := s.Handshakes(); m != n {
			n, still = m, 0
		} else {
			still++
		}
	}
	return n
}

func (s *Server) countRequest(path string, backup bool) {
	s.statsMu.Lock()
	s.requests++
	if backup {
		s.backupRequests++
	}
	s.byPath[path]++
	s.statsMu.Unlock()
}

func (s *Server) countBillno(billno string) {
	s.statsMu.Lock()
	s.byBillno[billno]++
	s.statsMu.Unlock()
}
