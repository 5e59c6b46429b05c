package wxpay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The production base URLs of WeChat Pay's APIv2.
const (
	DefaultBaseURL = "https://api.mch.weixin.qq.com"
	BackupBaseURL  = "https://api2.mch.weixin.qq.com"
)

// MinRetryInterval is WeChat's minimum wait between two tries of one billno.
const MinRetryInterval = time.Second

// Config configures a Client. Only Credentials is required.
type Config struct {
	// Credentials sign requests and authenticate the TLS connection.
	Credentials *Credentials
	// BaseURL is WeChat Pay's base URL; DefaultBaseURL when empty.
	BaseURL string
	// BackupURL is where a call fails over on connection failures. Empty
	// means BackupBaseURL when BaseURL is empty too, and no failover
	// otherwise.
	BackupURL string
	// RootCAs verifies WeChat's server certificate; nil means the system
	// roots (which honour SSL_CERT_FILE). Verification is never disabled.
	RootCAs *x509.CertPool
	// MaxAttempts bounds the tries of one call (default 3). Retries also
	// stop when the context's deadline leaves no room for another.
	MaxAttempts int
	// RetryInterval is the wait between tries of one billno; it is raised
	// to MinRetryInterval when lower.
	RetryInterval time.Duration
	// AttemptTimeout bounds one try (default 10 s).
	AttemptTimeout time.Duration
	// PaySignPackage says which form of the mini-program package paySign
	// covers: PaySignEncoded (default) or PaySignRaw.
	PaySignPackage PaySignPackage
	// MaxConnsPerHost bounds concurrent connections to WeChat (default 32);
	// that many idle ones are kept alive for reuse.
	MaxConnsPerHost int

	// Rand is the source of nonce_str; crypto/rand when nil.
	Rand io.Reader
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep waits between tries; the package's Sleep when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Transport replaces the mutual TLS transport the client builds. Tests
	// and benchmarks use it; it must present the merchant certificate.
	Transport http.RoundTripper
}

// Client calls WeChat Pay's red packet APIs for one merchant. It is safe for
// concurrent use; build one per execution environment and reuse it, so warm
// calls reuse the kept-alive TLS connection.
type Client struct {
	creds         *Credentials
	baseURL       string
	backupURL     string
	http          *http.Client
	transport     http.RoundTripper
	maxAttempts   int
	interval      time.Duration
	attemptTO     time.Duration
	paySign       PaySignPackage
	rand          io.Reader // nil: crypto/rand, through nonceBytes
	now           func() time.Time
	sleep         func(ctx context.Context, d time.Duration) error
	ownsTransport bool
}

// NewClient checks the credentials and builds a client with its own
// keep-alive mutual TLS transport.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("wxpay: Config.Credentials is required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if err := cfg.Credentials.Check(now()); err != nil {
		return nil, err
	}
	c := &Client{
		creds:       cfg.Credentials,
		baseURL:     strings.TrimRight(cfg.BaseURL, "/"),
		backupURL:   strings.TrimRight(cfg.BackupURL, "/"),
		maxAttempts: cfg.MaxAttempts,
		interval:    max(cfg.RetryInterval, MinRetryInterval),
		attemptTO:   cfg.AttemptTimeout,
		paySign:     cfg.PaySignPackage,
		rand:        cfg.Rand,
		now:         now,
		sleep:       cfg.Sleep,
	}
	if c.baseURL == "" {
		c.baseURL = DefaultBaseURL
		if c.backupURL == "" {
			c.backupURL = BackupBaseURL
		}
	}
	for _, u := range []string{c.baseURL, c.backupURL} {
		if u != "" && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("wxpay: base URL %q must be https", u)
		}
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = 3
	}
	if c.attemptTO <= 0 {
		c.attemptTO = 10 * time.Second
	}
	switch c.paySign {
	case "":
		c.paySign = PaySignEncoded
	case PaySignEncoded, PaySignRaw:
	default:
		return nil, fmt.Errorf("wxpay: PaySignPackage %q: want %q or %q", c.paySign, PaySignEncoded, PaySignRaw)
	}
	if c.sleep == nil {
		c.sleep = Sleep
	}
	c.transport = cfg.Transport
	if c.transport == nil {
		c.transport = NewTransport(cfg.Credentials.Certificate, cfg.RootCAs, cfg.MaxConnsPerHost)
		c.ownsTransport = true
	}
	c.http = &http.Client{Transport: c.transport, CheckRedirect: noRedirects}
	return c, nil
}

// NewTransport returns the keep-alive transport a Client uses: TLS 1.2 or
// later, the merchant certificate presented, the server verified against
// roots (the system's when nil), HTTP/1.1 with up to maxConns connections
// per host kept alive (32 when maxConns <= 0).
func NewTransport(cert tls.Certificate, roots *x509.CertPool, maxConns int) *http.Transport {
	if maxConns <= 0 {
		maxConns = 32
	}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			RootCAs:      roots,
		},
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConns:          2 * maxConns,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Sleep waits for d, or until ctx ends and then returns its error. It is
// what Config.Sleep is when nil.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MchID returns the merchant number the client signs for.
func (c *Client) MchID() string { return c.creds.MchID }

// CloseIdleConnections closes the kept-alive connections, as when the
// client is replaced after a credential rotation.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// nonce returns a fresh 32-character nonce_str from the client's random
// source.
func (c *Client) nonce() (string, error) {
	var raw [16]byte
	if c.rand == nil {
		nonceBytes.read(raw[:])
	} else {
		// A slice handed to an io.Reader escapes: reading into raw itself
		// would put it on the heap on the default path too.
		b := make([]byte, len(raw))
		if _, err := io.ReadFull(c.rand, b); err != nil {
			return "", fmt.Errorf("wxpay: nonce: %w", err)
		}
		copy(raw[:], b)
	}
	var out [32]byte
	const digits = "0123456789abcdefghijklmnopqrstuv"
	for i, b := range raw {
		out[2*i] = digits[b>>4]
		out[2*i+1] = digits[16+b&0x0f]
	}
	return string(out[:]), nil
}

// nonceBytes serves the random bytes of nonces when Config.Rand is nil.
var nonceBytes randBuffer

// randBuffer hands out bytes from crypto/rand read in chunks, one read per
// 256 nonces instead of one per nonce: on kernels before Linux 6.11 (AWS
// Lambda's among them) each read is a system call. Every byte is handed
// out once.
type randBuffer struct {
	mu   sync.Mutex
	buf  [4096]byte
	left int // unread bytes, at the end of buf; a zero randBuffer is empty
}

// read fills b, which must not be longer than the buffer.
func (r *randBuffer) read(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left < len(b) {
		// crypto/rand.Read never fails: it crashes the program first.
		rand.Read(r.buf[:])
		r.left = len(r.buf)
	}
	r.left -= copy(b, r.buf[len(r.buf)-r.left:])
}

// answer is one parsed APIv2 response.
type answer struct {
	params  Params
	records []Params
}

// call sends body to path, retrying as the outcome allows, and returns the
// successful answer or an *Error.
//
// Once any try of a send has an unknown outcome, the call's outcome stays
// unknown: a later refusal (FREQ_LIMIT, CA_ERROR, ...) only speaks for that
// later try, while the earlier one may have paid.
func (c *Client) call(ctx context.Context, api, path, billno string, body []byte, query bool) (answer, int, error) {
	if ctx.Err() != nil {
		// Nothing was sent: certainly no money moved.
		return answer{}, 0, &Error{API: api, MchBillno: billno, Outcome: OutcomeFailed, Code: CodeNotAttempted,
			Message: "the deadline passed before the request was sent", Retryable: true, Err: ctx.Err()}
	}
	base := c.baseURL
	backoff := c.interval
	var sawUnknown bool
	for attempt := 1; ; attempt++ {
		ans, v, err := c.attempt(ctx, api, base+path, billno, body, query)
		if err == nil {
			return ans, attempt, nil
		}
		err.Attempts = attempt
		if err.Outcome == OutcomeUnknown {
			sawUnknown = true
		}
		if sawUnknown && !query && err.Outcome == OutcomeFailed {
			err.Outcome, err.Retryable = OutcomeUnknown, true
			err.Message += " (an earlier try's outcome is unknown: query the billno or retry it)"
			v = verdict{OutcomeUnknown, retryNever}
		}
		stop := v.retry == retryNever || attempt >= c.maxAttempts
		if err.Code == CodeNetwork && c.backupURL != "" {
			// Safe whether or not the request got through: the retry
			// carries the same billno.
			base = c.backupURL
		}
		wait := c.interval
		if v.retry == retryBackoff {
			wait = backoff
			backoff *= 2
		}
		if stop || !c.roomFor(ctx, wait) || c.sleep(ctx, wait) != nil {
			return answer{}, attempt, err
		}
	}
}

// roomFor reports whether the context leaves time for a wait and one more
// try after it.
func (c *Client) roomFor(ctx context.Context, wait time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return true
	}
	const minTry = 500 * time.Millisecond
	// The deadline is a wall-clock instant (context.WithTimeout reads
	// time.Now), so it is compared with the real clock, never Config.Now,
	// which may be a fake one far from it.
	return time.Until(deadline) > wait+minTry
}

// attempt sends one request and classifies its answer.
func (c *Client) attempt(ctx context.Context, api, url, billno string, body []byte, query bool) (answer, verdict, *Error) {
	fail := func(v verdict, code, msg string, status int, err error) (answer, verdict, *Error) {
		return answer{}, v, &Error{API: api, MchBillno: billno, Outcome: v.outcome, Code: code, Message: msg,
			Retryable: v.retry != retryNever, HTTPStatus: status, Err: err}
	}
	unknown := verdict{OutcomeUnknown, retrySame}

	actx := ctx
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > c.attemptTO {
		// Only a bound tighter than the caller's is worth a timer (and
		// net/http's registration of a child context): in a Lambda, the
		// invocation's deadline usually comes first.
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.attemptTO)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fail(verdict{OutcomeFailed, retryNever}, CodeNetwork, "bad request URL", 0, err)
	}
	req.Header["Content-Type"] = xmlContentType
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return fail(unknown, CodeTimeout, "no answer before the deadline", 0, err)
		}
		return fail(unknown, CodeNetwork, "no answer from WeChat Pay", 0, err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		if ctx.Err() != nil {
			return fail(unknown, CodeTimeout, "answer cut off by the deadline", resp.StatusCode, err)
		}
		return fail(unknown, CodeNetwork, "answer cut off", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusBadRequest && isCertificateRefusal(data) {
		// WeChat's gateway turned the certificate away before the request
		// reached the service: no money moved, and the credentials (perhaps
		// rotated) are the problem, as with CA_ERROR.
		return fail(verdict{OutcomeFailed, retryNever}, "CA_ERROR", "WeChat Pay's gateway refused the merchant certificate", resp.StatusCode, nil)
	}
	if resp.StatusCode != http.StatusOK {
		v := unknown
		if resp.StatusCode < 500 {
			// The gateway refused the request at the door (an HTML page
			// for a missing certificate): repeating it will not help.
			v.retry = retryNever
		}
		return fail(v, CodeHTTPStatus, fmt.Sprintf("HTTP status %d", resp.StatusCode), resp.StatusCode, nil)
	}
	var ans answer
	if query {
		ans.params, ans.records, err = DecodeXMLRecords(data, "hblist", "hbinfo")
	} else {
		ans.params, err = DecodeXML(data)
	}
	if err != nil {
		return fail(unknown, CodeBadResponse, "unreadable answer", resp.StatusCode, err)
	}
	p := ans.params
	if p["sign"] != "" && !VerifySign(p, c.creds.APIKey) {
		return fail(unknown, CodeBadSignature, "answer signature does not verify", resp.StatusCode, nil)
	}
	if p["return_code"] == "SUCCESS" && p["result_code"] == "SUCCESS" {
		if got := p["mch_billno"]; got != "" && got != billno {
			return fail(verdict{OutcomeUnknown, retryNever}, CodeMismatch, "answer names another mch_billno", resp.StatusCode, nil)
		}
		if got := p["mch_id"]; got != "" && got != c.creds.MchID {
			return fail(verdict{OutcomeUnknown, retryNever}, CodeMismatch, "answer names another mch_id", resp.StatusCode, nil)
		}
		return ans, verdict{OutcomeSuccess, retryNever}, nil
	}
	msg := p["err_code_des"]
	if msg == "" {
		msg = p["return_msg"]
	}
	if code := p["err_code"]; code != "" {
		return fail(classifyErrCode(code, query), code, msg, resp.StatusCode, nil)
	}
	if p["return_code"] == "FAIL" && strings.Contains(p["return_msg"], "签名错误") {
		// A communication-level signature refusal without an err_code:
		// WeChat checked nothing further.
		return fail(classifyErrCode("SIGN_ERROR", query), "SIGN_ERROR", msg, resp.StatusCode, nil)
	}
	return fail(unknown, CodeUnknownState, msg, resp.StatusCode, nil)
}

// isCertificateRefusal reports whether body is the HTML page WeChat's nginx
// gateway answers for a missing or unacceptable client certificate ("400
// No required SSL certificate was sent", "400 The SSL certificate error").
func isCertificateRefusal(body []byte) bool {
	return bytes.Contains(body, []byte("No required SSL certificate was sent")) ||
		bytes.Contains(body, []byte("The SSL certificate error"))
}

var xmlContentType = []string{"text/xml; charset=utf-8"}

// readBody reads the answer, at most MaxBodySize+1 bytes of it. An answer
// of the expected size is read to EOF: only then does net/http put the
// connection back in the idle pool before the next call looks for one
// (closing the body early would discard it). One longer than announced or
// than MaxBodySize is not, and its connection is not reused.
func readBody(resp *http.Response) ([]byte, error) {
	limit := int64(MaxBodySize)
	announced := resp.ContentLength > 0 && resp.ContentLength <= MaxBodySize
	if announced {
		limit = resp.ContentLength
	}
	// One byte more than allowed, to tell an overlong answer.
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if announced && int64(len(data)) > limit {
		return nil, fmt.Errorf("wxpay: answer longer than its Content-Length of %d", resp.ContentLength)
	}
	return data, nil // over MaxBodySize: the decoder refuses it
}
