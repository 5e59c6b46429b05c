package wxpay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// sendMini runs one sendminiprogramhb call of validMini against srv.
func sendMini(t *testing.T, c *Client, ctx context.Context) (*SendMiniResult, *Error) {
	t.Helper()
	res, err := c.SendMiniProgramHB(ctx, validMini())
	if err == nil {
		return res, nil
	}
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	if res != nil {
		t.Errorf("result %+v returned with the error", res)
	}
	return nil, we
}

func successMini(t testing.TB) reply {
	p := successParams(validMini().MchBillno)
	p["package"] = samplePackage
	return xmlReply(t, p)
}

// TestRetries runs one scripted call per case and checks the outcome, the
// attempts, the waits asked of Config.Sleep and that every attempt sent the
// same bytes.
func TestRetries(t *testing.T) {
	sec := time.Second
	html400 := reply{status: 400, ctype: "text/html", body: "<html><head><title>400 Bad Request</title></head><body>No required SSL certificate was sent</body></html>"}
	badSign := successParams(validMini().MchBillno)
	badSign["package"] = samplePackage
	badSign["sign"] = strings.Repeat("A", 32)
	goodSign := successParams(validMini().MchBillno)
	goodSign["package"] = samplePackage
	goodSign["sign"] = Sign(goodSign, testKey, SignMD5)
	otherBillno := successParams("OTHER0001")
	otherBillno["package"] = samplePackage
	otherMch := successParams(validMini().MchBillno)
	otherMch["package"] = samplePackage
	otherMch["mch_id"] = "1900000110"
	noPackage := successParams(validMini().MchBillno)

	tests := []struct {
		name      string
		script    []reply
		mod       func(*Config)
		outcome   Outcome // OutcomeSuccess: no error
		code      string
		retryable bool
		attempts  int
		sleeps    []time.Duration
		status    int
	}{
		{"success", []reply{successMini(t)}, nil, OutcomeSuccess, "", false, 1, nil, 0},
		{"SYSTEMERROR then success", []reply{xmlReply(t, errParams("SYSTEMERROR", "系统繁忙")), successMini(t)}, nil,
			OutcomeSuccess, "", false, 2, []time.Duration{sec}, 0},
		{"SYSTEMERROR, interval below the minimum", []reply{xmlReply(t, errParams("SYSTEMERROR", "")), successMini(t)},
			func(c *Config) { c.RetryInterval = 10 * time.Millisecond }, OutcomeSuccess, "", false, 2, []time.Duration{sec}, 0},
		{"SYSTEMERROR, longer interval", []reply{xmlReply(t, errParams("SYSTEMERROR", "")), successMini(t)},
			func(c *Config) { c.RetryInterval = 3 * sec }, OutcomeSuccess, "", false, 2, []time.Duration{3 * sec}, 0},
		{"SYSTEMERROR persists", []reply{xmlReply(t, errParams("SYSTEMERROR", "系统繁忙"))}, nil,
			OutcomeUnknown, "SYSTEMERROR", true, 3, []time.Duration{sec, sec}, 200},
		{"SYSTEMERROR, MaxAttempts 5", []reply{xmlReply(t, errParams("SYSTEMERROR", ""))}, func(c *Config) { c.MaxAttempts = 5 },
			OutcomeUnknown, "SYSTEMERROR", true, 5, []time.Duration{sec, sec, sec, sec}, 200},
		{"SYSTEMERROR, MaxAttempts 1", []reply{xmlReply(t, errParams("SYSTEMERROR", ""))}, func(c *Config) { c.MaxAttempts = 1 },
			OutcomeUnknown, "SYSTEMERROR", true, 1, nil, 200},
		{"PROCESSING", []reply{xmlReply(t, errParams("PROCESSING", "请求已受理"))}, nil,
			OutcomeUnknown, "PROCESSING", false, 1, nil, 200},
		{"FREQ_LIMIT persists", []reply{xmlReply(t, errParams("FREQ_LIMIT", "超过频率限制"))}, nil,
			OutcomeFailed, "FREQ_LIMIT", true, 3, []time.Duration{sec, 2 * sec}, 200},
		{"FREQ_LIMIT backoff doubles", []reply{xmlReply(t, errParams("FREQ_LIMIT", ""))}, func(c *Config) { c.MaxAttempts = 4 },
			OutcomeFailed, "FREQ_LIMIT", true, 4, []time.Duration{sec, 2 * sec, 4 * sec}, 200},
		{"FREQ_LIMIT then success", []reply{xmlReply(t, errParams("FREQ_LIMIT", "")), xmlReply(t, errParams("FREQ_LIMIT", "")), successMini(t)}, nil,
			OutcomeSuccess, "", false, 3, []time.Duration{sec, 2 * sec}, 0},
		{"NOTENOUGH", []reply{xmlReply(t, errParams("NOTENOUGH", "帐号余额不足"))}, nil, OutcomeFailed, "NOTENOUGH", false, 1, nil, 200},
		{"FATAL_ERROR", []reply{xmlReply(t, errParams("FATAL_ERROR", "openid和原始单参数不一致"))}, nil, OutcomeFailed, "FATAL_ERROR", false, 1, nil, 200},
		{"SEND_FAILED", []reply{xmlReply(t, errParams("SEND_FAILED", "红包发放失败"))}, nil, OutcomeFailed, "SEND_FAILED", false, 1, nil, 200},
		{"CA_ERROR", []reply{xmlReply(t, errParams("CA_ERROR", "请求未携带证书"))}, nil, OutcomeFailed, "CA_ERROR", false, 1, nil, 200},
		{"SIGN_ERROR", []reply{xmlReply(t, errParams("SIGN_ERROR", "签名错误"))}, nil, OutcomeFailed, "SIGN_ERROR", false, 1, nil, 200},
		{"NOT_FOUND on a send", []reply{xmlReply(t, errParams("NOT_FOUND", "指定单号数据不存在"))}, nil,
			OutcomeUnknown, "NOT_FOUND", true, 3, []time.Duration{sec, sec}, 200},
		{"unknown err_code", []reply{xmlReply(t, errParams("BRAND_NEW_CODE", "?"))}, func(c *Config) { c.MaxAttempts = 2 },
			OutcomeUnknown, "BRAND_NEW_CODE", true, 2, []time.Duration{sec}, 200},
		{"FAIL without err_code", []reply{xmlReply(t, Params{"return_code": "FAIL", "return_msg": "参数错误"})}, func(c *Config) { c.MaxAttempts = 1 },
			OutcomeUnknown, CodeUnknownState, true, 1, nil, 200},
		{"HTTP 502 persists", []reply{{status: 502, ctype: "text/html", body: "<html>502 Bad Gateway</html>"}}, nil,
			OutcomeUnknown, CodeHTTPStatus, true, 3, []time.Duration{sec, sec}, 502},
		{"HTTP 502 then success", []reply{{status: 502, body: "bad gateway"}, successMini(t)}, nil,
			OutcomeSuccess, "", false, 2, []time.Duration{sec}, 0},
		{"HTTP 503 empty", []reply{{status: 503}}, func(c *Config) { c.MaxAttempts = 2 },
			OutcomeUnknown, CodeHTTPStatus, true, 2, []time.Duration{sec}, 503},
		{"gateway certificate refusal", []reply{html400}, nil, OutcomeFailed, "CA_ERROR", false, 1, nil, 400},
		{"other HTML 400 page", []reply{{status: 400, ctype: "text/html", body: "<html><body>400 Bad Request</body></html>"}}, nil, OutcomeUnknown, CodeHTTPStatus, false, 1, nil, 400},
		{"redirect not followed", []reply{{status: 302, body: ""}}, nil, OutcomeUnknown, CodeHTTPStatus, false, 1, nil, 302},
		{"HTML page with status 200", []reply{{ctype: "text/html", body: html400.body}}, func(c *Config) { c.MaxAttempts = 1 },
			OutcomeUnknown, CodeBadResponse, true, 1, nil, 200},
		{"garbled XML", []reply{{body: "<xml><return_code>SUCCESS</return_code><<<>"}}, func(c *Config) { c.MaxAttempts = 1 },
			OutcomeUnknown, CodeBadResponse, true, 1, nil, 200},
		{"truncated XML", []reply{{body: "<xml><return_code><![CDATA[SUCCESS]]></return_code><result_code><![CDATA[SUCC"}}, func(c *Config) { c.MaxAttempts = 1 },
			OutcomeUnknown, CodeBadResponse, true, 1, nil, 200},
		{"empty body", []reply{{body: ""}}, func(c *Config) { c.MaxAttempts = 1 }, OutcomeUnknown, CodeBadResponse, true, 1, nil, 200},
		{"body over MaxBodySize", []reply{{body: "<xml><a>" + strings.Repeat("x", MaxBodySize) + "</a></xml>"}}, func(c *Config) { c.MaxAttempts = 1 },
			OutcomeUnknown, CodeBadResponse, true, 1, nil, 200},
		{"garbled then success", []reply{{body: "garbage"}, successMini(t)}, nil, OutcomeSuccess, "", false, 2, []time.Duration{sec}, 0},
		{"bad sign", []reply{xmlReply(t, badSign)}, func(c *Config) { c.MaxAttempts = 1 }, OutcomeUnknown, CodeBadSignature, true, 1, nil, 200},
		{"good sign", []reply{xmlReply(t, goodSign)}, nil, OutcomeSuccess, "", false, 1, nil, 0},
		{"success naming another billno", []reply{xmlReply(t, otherBillno)}, nil, OutcomeUnknown, CodeMismatch, false, 1, nil, 200},
		{"success naming another merchant", []reply{xmlReply(t, otherMch)}, nil, OutcomeUnknown, CodeMismatch, false, 1, nil, 200},
		{"success without package", []reply{xmlReply(t, noPackage)}, nil, OutcomeUnknown, CodeBadResponse, false, 1, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.script...)
			c, clock := newTestClient(t, srv, tt.mod)
			res, err := sendMini(t, c, context.Background())
			bodies, paths, cns := srv.requests()
			if len(bodies) != tt.attempts {
				t.Errorf("server saw %d requests, want %d", len(bodies), tt.attempts)
			}
			for i := range bodies {
				if !bytes.Equal(bodies[i], bodies[0]) {
					t.Errorf("attempt %d sent different bytes:\n%s\n%s", i+1, bodies[0], bodies[i])
				}
				if paths[i] != PathSendMiniProgramHB {
					t.Errorf("path %q", paths[i])
				}
				if cns[i] != testMchID {
					t.Errorf("client certificate CN %q, want %q", cns[i], testMchID)
				}
			}
			if p, _ := DecodeXML(bodies[0]); p["mch_billno"] != validMini().MchBillno || !VerifySign(p, testKey) {
				t.Errorf("request body %s", bodies[0])
			}
			if got := clock.Sleeps(); !slices.Equal(got, tt.sleeps) {
				t.Errorf("waits %v, want %v", got, tt.sleeps)
			}
			for _, d := range clock.Sleeps() {
				if d < MinRetryInterval {
					t.Errorf("wait %v below MinRetryInterval", d)
				}
			}
			if tt.outcome == OutcomeSuccess {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				if res.Attempts != tt.attempts || res.MchBillno != validMini().MchBillno || res.SendListID == "" ||
					res.TotalAmount != 1000 || res.MchID != testMchID || res.Package != samplePackage {
					t.Errorf("result %+v", res)
				}
				j := res.JSAPI
				if j.Package != samplePackageEncoded || j.TimeStamp != fmt.Sprint(clock.Now().Unix()) || j.SignType != "MD5" ||
					len(j.NonceStr) != 32 || j.PaySign != handPaySign(testAppID, j.NonceStr, samplePackageEncoded, j.TimeStamp, testKey) {
					t.Errorf("jsapi %+v", j)
				}
				return
			}
			if err == nil {
				t.Fatalf("success %+v, want %s %s", res, tt.outcome, tt.code)
			}
			if err.Outcome != tt.outcome || err.Code != tt.code || err.Retryable != tt.retryable {
				t.Errorf("got %s %s retryable=%v, want %s %s retryable=%v (%v)", err.Outcome, err.Code, err.Retryable, tt.outcome, tt.code, tt.retryable, err)
			}
			if err.Attempts != tt.attempts {
				t.Errorf("Attempts = %d, want %d", err.Attempts, tt.attempts)
			}
			if err.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", err.HTTPStatus, tt.status)
			}
			if err.API != "sendminiprogramhb" || err.MchBillno != validMini().MchBillno {
				t.Errorf("API %q, billno %q", err.API, err.MchBillno)
			}
			if OutcomeOf(err) != tt.outcome || OutcomeOf(fmt.Errorf("wrapped: %w", err)) != tt.outcome {
				t.Errorf("OutcomeOf = %s", OutcomeOf(err))
			}
			if tt.code == CodeBadResponse && err.Err != nil && !errors.Is(err, ErrMalformedXML) {
				t.Errorf("BAD_RESPONSE does not wrap the XML error: %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.code) || !strings.Contains(msg, string(tt.outcome)) || !strings.Contains(msg, validMini().MchBillno) {
				t.Errorf("Error() = %q", msg)
			}
		})
	}
}

// TestRetryStopsAtDeadline: a context whose deadline leaves no room for the
// 1 s wait ends the call after the first attempt with its unknown error.
func TestRetryStopsAtDeadline(t *testing.T) {
	srv := newScriptServer(t, xmlReply(t, errParams("SYSTEMERROR", "系统繁忙")), successMini(t))
	c, clock := newTestClient(t, srv, nil)
	// Under 1.5 s (the 1 s wait and half a second for a try), a deadline
	// never leaves room for a retry; 1.4 s leaves the first try, a TLS
	// handshake included, the most time for its answer.
	ctx, cancel := context.WithTimeout(context.Background(), 1400*time.Millisecond)
	defer cancel()
	_, err := sendMini(t, c, ctx)
	if err == nil || err.Outcome != OutcomeUnknown || err.Code != "SYSTEMERROR" || err.Attempts != 1 {
		t.Fatalf("err = %+v, want unknown SYSTEMERROR after 1 attempt", err)
	}
	if n := len(clock.Sleeps()); n != 0 {
		t.Errorf("waited %d times", n)
	}
	if b, _, _ := srv.requests(); len(b) != 1 {
		t.Errorf("server saw %d requests", len(b))
	}

	// A deadline with room for one wait and one try: two attempts. With
	// 2.5 s, the second try happens whenever the first took less than a
	// second (2.5 s - 1 s wait - 0.5 s for a try), and a third never can,
	// however fast the tries: the count does not depend on how loaded the
	// machine is. (With 2 s, a first try of half a second, a cold TLS
	// handshake on a busy runner, left room for no second.)
	const deadline = 2500 * time.Millisecond
	srv2 := newScriptServer(t, xmlReply(t, errParams("SYSTEMERROR", "")))
	c2, _ := newTestClient(t, srv2, func(cfg *Config) {
		cfg.Sleep = nil // the real timer: the deadline must see time pass
	})
	ctx2, cancel2 := context.WithTimeout(context.Background(), deadline)
	defer cancel2()
	start := time.Now()
	_, err = sendMini(t, c2, ctx2)
	if err == nil || err.Code != "SYSTEMERROR" || err.Attempts != 2 {
		t.Fatalf("err = %v, want SYSTEMERROR after 2 attempts", err)
	}
	if el := time.Since(start); el < MinRetryInterval || el > deadline {
		t.Errorf("took %v", el)
	}
}

// TestHangingServer: a server that never answers ends as unknown TIMEOUT
// within the caller's deadline.
func TestHangingServer(t *testing.T) {
	srv := newScriptServer(t, reply{hang: true})
	c, _ := newTestClient(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sendMini(t, c, ctx)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("returned after %v, deadline 300ms", el)
	}
	if err == nil || err.Outcome != OutcomeUnknown || err.Code != CodeTimeout || err.Attempts != 1 || !err.Retryable {
		t.Fatalf("err = %+v, want unknown TIMEOUT after 1 attempt", err)
	}

	// AttemptTimeout bounds each try, whether the caller's context has no
	// deadline or a later one; the call retries with the same body.
	later, cancelLater := context.WithTimeout(context.Background(), time.Hour)
	defer cancelLater()
	for _, parent := range []struct {
		name string
		ctx  context.Context
	}{
		{"no deadline", context.Background()},
		{"later deadline", later},
	} {
		t.Run(parent.name, func(t *testing.T) {
			// A try that times out takes its connection with it, so each
			// try after one needs another. Three are opened first, on the
			// client's transport without its per-try bound (three requests
			// held at the server until all three are there), so that the
			// third try's 300 ms are for its request and answer, not for a
			// TLS handshake, which a loaded machine can make last that long.
			const warm = 3
			held := make(chan struct{})
			script := []reply{}
			for range warm {
				script = append(script, reply{hold: held})
			}
			script = append(script, reply{hang: true}, reply{hang: true}, successMini(t))
			srv := newScriptServer(t, script...)
			c, clock := newTestClient(t, srv, func(cfg *Config) { cfg.AttemptTimeout = 300 * time.Millisecond })
			warmed := make(chan error, warm)
			for range warm {
				go func() {
					resp, err := c.http.Post(srv.URL+PathSendMiniProgramHB, "text/xml", strings.NewReader("<xml></xml>"))
					if err == nil {
						// Read to the end: the connection goes back to the pool.
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					warmed <- err
				}()
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				if b, _, _ := srv.requests(); len(b) == warm {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the warm-up calls did not reach the server")
				}
			}
			close(held)
			for range warm {
				if err := <-warmed; err != nil {
					t.Fatalf("warm-up: %v", err)
				}
			}
			if n := srv.newConns.Load(); n != warm {
				t.Fatalf("%d connections opened, want %d", n, warm)
			}

			res, err := sendMini(t, c, parent.ctx)
			if err != nil || res.Attempts != 3 {
				t.Fatalf("err = %v, result %+v; want success in 3 attempts", err, res)
			}
			bodies, _, _ := srv.requests()
			if bodies = bodies[warm:]; len(bodies) != 3 || !bytes.Equal(bodies[0], bodies[2]) {
				t.Errorf("retries after timeouts sent different bodies")
			}
			if !slices.Equal(clock.Sleeps(), []time.Duration{time.Second, time.Second}) {
				t.Errorf("waits %v", clock.Sleeps())
			}
		})
	}
}

// TestNonceDistinct: a nonce_str is 32 characters of the nonce alphabet
// and none repeats, whether it comes from crypto/rand through the shared
// buffer (over several refills) or from Config.Rand.
func TestNonceDistinct(t *testing.T) {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	tests := []struct {
		name string
		rand io.Reader
	}{
		{"crypto/rand", nil},
		{"Config.Rand", mrand.NewChaCha8([32]byte{1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(Config{Credentials: testCredentials(t), Now: newFakeClock().Now, Rand: tt.rand})
			if err != nil {
				t.Fatal(err)
			}
			n := 3 * len(nonceBytes.buf) / 16 // three buffers' worth
			seen := make(map[string]bool, n)
			for range n {
				s, err := c.nonce()
				if err != nil {
					t.Fatal(err)
				}
				if len(s) != 32 || strings.Trim(s, alphabet) != "" {
					t.Fatalf("nonce %q: want 32 characters of %s", s, alphabet)
				}
				if seen[s] {
					t.Fatalf("nonce %q repeated", s)
				}
				seen[s] = true
			}
		})
	}
}

// TestReadBody: an answer is read whole, with or without a Content-Length
// and however the reads split it; more than the announced length or a
// failed read is an error, and past MaxBodySize reading stops at
// MaxBodySize+1 bytes, which the decoder refuses.
func TestReadBody(t *testing.T) {
	big := strings.Repeat("x", 3000)
	huge := strings.Repeat("x", MaxBodySize+10)
	tests := []struct {
		name    string
		body    io.Reader
		length  int64
		want    string
		wantErr bool
	}{
		{"announced", strings.NewReader("<xml></xml>"), 11, "<xml></xml>", false},
		{"announced, short reads", iotest.OneByteReader(strings.NewReader(big)), int64(len(big)), big, false},
		{"unannounced", strings.NewReader("<xml></xml>"), -1, "<xml></xml>", false},
		{"unannounced, buffer grows", iotest.HalfReader(strings.NewReader(big)), -1, big, false},
		{"empty", strings.NewReader(""), 0, "", false},
		{"over MaxBodySize", strings.NewReader(huge), -1, huge[:MaxBodySize+1], false},
		{"longer than announced", strings.NewReader("<xml></xml>"), 5, "", true},
		{"read fails", iotest.ErrReader(errors.New("connection reset")), -1, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{ContentLength: tt.length, Body: io.NopCloser(tt.body)}
			got, err := readBody(resp)
			if (err != nil) != tt.wantErr || string(got) != tt.want {
				t.Errorf("readBody = %d bytes, %v; want %d bytes, error %v", len(got), err, len(tt.want), tt.wantErr)
			}
		})
	}
}

// closedURL returns an https URL where nothing listens.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

func TestFailoverToBackup(t *testing.T) {
	backup := newScriptServer(t, successMini(t))
	c, clock := newTestClient(t, backup, func(cfg *Config) {
		cfg.BaseURL = closedURL(t)
		cfg.BackupURL = backup.URL + "/"
	})
	res, err := sendMini(t, c, context.Background())
	if err != nil || res.Attempts != 2 {
		t.Fatalf("err = %v, result %+v; want success on the backup at attempt 2", err, res)
	}
	if bodies, paths, _ := backup.requests(); len(bodies) != 1 || paths[0] != PathSendMiniProgramHB {
		t.Errorf("backup saw %d requests (%q)", len(bodies), paths)
	}
	if !slices.Equal(clock.Sleeps(), []time.Duration{time.Second}) {
		t.Errorf("waits %v", clock.Sleeps())
	}

	// Both down: unknown NETWORK_ERROR after every attempt.
	c2, _ := newTestClient(t, backup, func(cfg *Config) {
		cfg.BaseURL = closedURL(t)
		cfg.BackupURL = closedURL(t)
	})
	_, err = sendMini(t, c2, context.Background())
	if err == nil || err.Outcome != OutcomeUnknown || err.Code != CodeNetwork || err.Attempts != 3 || err.Err == nil {
		t.Fatalf("err = %+v, want unknown NETWORK_ERROR after 3 attempts", err)
	}

	// A business answer from the primary does not move the call.
	primary := newScriptServer(t, xmlReply(t, errParams("SYSTEMERROR", "")), successMini(t))
	other := newScriptServer(t, successMini(t))
	c3, _ := newTestClient(t, primary, func(cfg *Config) { cfg.BackupURL = other.URL })
	if _, err := sendMini(t, c3, context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := other.requests(); len(b) != 0 {
		t.Errorf("backup used after a SYSTEMERROR answer")
	}

	// No BackupURL with a custom BaseURL: no failover.
	c4, _ := newTestClient(t, backup, func(cfg *Config) { cfg.BaseURL = closedURL(t) })
	if c4.backupURL != "" {
		t.Errorf("backup %q with a custom BaseURL", c4.backupURL)
	}
}

func TestServerCertificateVerified(t *testing.T) {
	srv := newScriptServer(t, successMini(t))
	c, _ := newTestClient(t, srv, func(cfg *Config) {
		cfg.RootCAs = fixture(t).caPool // does not hold the server's issuer
		cfg.MaxAttempts = 1
	})
	_, err := sendMini(t, c, context.Background())
	if err == nil || err.Code != CodeNetwork || err.Outcome != OutcomeUnknown {
		t.Fatalf("err = %v, want a network error for an untrusted server", err)
	}
	if b, _, _ := srv.requests(); len(b) != 0 {
		t.Error("request sent to an untrusted server")
	}
}

func TestNewClientConfig(t *testing.T) {
	creds := testCredentials(t)
	now := newFakeClock().Now
	c, err := NewClient(Config{Credentials: creds, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if c.baseURL != DefaultBaseURL || c.backupURL != BackupBaseURL || c.maxAttempts != 3 ||
		c.interval != MinRetryInterval || c.attemptTO != 10*time.Second || c.paySign != PaySignEncoded || c.MchID() != testMchID {
		t.Errorf("defaults: %q %q %d %v %v %q", c.baseURL, c.backupURL, c.maxAttempts, c.interval, c.attemptTO, c.paySign)
	}
	tr, ok := c.transport.(*http.Transport)
	if !ok || !c.ownsTransport {
		t.Fatalf("transport %T", c.transport)
	}
	if tr.TLSClientConfig.InsecureSkipVerify || tr.TLSClientConfig.MinVersion < 0x0303 || len(tr.TLSClientConfig.Certificates) != 1 ||
		tr.DisableKeepAlives || tr.MaxIdleConnsPerHost < 1 {
		t.Errorf("transport config %+v", tr)
	}
	bad := []Config{
		{Credentials: creds, Now: now, BaseURL: "http://api.mch.weixin.qq.com"},
		{Credentials: creds, Now: now, BackupURL: "http://api2.mch.weixin.qq.com"},
		{Credentials: creds, Now: now, BaseURL: "api.mch.weixin.qq.com"},
		{Credentials: creds, Now: now, PaySignPackage: "both"},
		{Credentials: &Credentials{MchID: testMchID, APIKey: "short", Certificate: creds.Certificate}, Now: now},
	}
	for _, cfg := range bad {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) succeeded", cfg)
		}
	}
}

func TestQueryRedpack(t *testing.T) {
	one := Params{
		"return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS", "mch_billno": "9010080799701411170000046603",
		"mch_id": testMchID, "detail_id": "10000417012016080830956240040", "status": "RECEIVED", "send_type": "API",
		"hb_type": "NORMAL", "total_num": "1", "total_amount": "100", "send_time": "2015-04-21 20:00:00",
		"wishing": "新年快乐", "remark": "新年红包", "act_name": "新年红包",
	}
	oneDoc, _ := EncodeXML(one)
	oneDoc = bytes.Replace(oneDoc, []byte("</xml>"), []byte("<hblist><hbinfo><openid><![CDATA[ohO4GtzOAAYMp2yapORH3dQB3W18]]></openid><amount>100</amount><rcv_time><![CDATA[2015-04-21 20:00:00]]></rcv_time></hbinfo></hblist></xml>"), 1)
	refund := bytes.Replace([]byte(hbinfoMany), []byte("<status><![CDATA[RECEIVED]]></status>"),
		[]byte("<status><![CDATA[REFUND]]></status><refund_time>2016-08-09 21:49:22</refund_time><refund_amount>300</refund_amount><reason>过期未领退款</reason>"), 1)

	tests := []struct {
		name   string
		script []reply
		check  func(*testing.T, *QueryResult)
	}{
		{"one hbinfo", []reply{{body: string(oneDoc)}}, func(t *testing.T, r *QueryResult) {
			want := QueryResult{MchBillno: "9010080799701411170000046603", MchID: testMchID, DetailID: "10000417012016080830956240040",
				Status: StatusReceived, SendType: "API", HBType: "NORMAL", TotalNum: 1, TotalAmount: 100, SendTime: "2015-04-21 20:00:00",
				Wishing: "新年快乐", Remark: "新年红包", ActName: "新年红包", Attempts: 1,
				Receivers: []Receiver{{OpenID: "ohO4GtzOAAYMp2yapORH3dQB3W18", Amount: 100, RcvTime: "2015-04-21 20:00:00"}}}
			if fmt.Sprintf("%+v", *r) != fmt.Sprintf("%+v", want) {
				t.Errorf("got  %+v\nwant %+v", *r, want)
			}
		}},
		{"many hbinfo", []reply{{body: strings.Replace(hbinfoMany, "10000097", testMchID, 1)}}, func(t *testing.T, r *QueryResult) {
			if r.HBType != "GROUP" || r.TotalNum != 3 || r.TotalAmount != 600 || len(r.Receivers) != 3 {
				t.Fatalf("%+v", r)
			}
			var sum int64
			for i, rc := range r.Receivers {
				sum += rc.Amount
				if rc.Amount != int64(100*(i+1)) || !strings.HasPrefix(rc.OpenID, "oTtWIuGaIt6gTKsQRLau2M0yL16") || rc.RcvTime == "" {
					t.Errorf("receiver %d: %+v", i, rc)
				}
			}
			if sum != r.TotalAmount {
				t.Errorf("receivers sum to %d", sum)
			}
		}},
		{"refunded, no list", []reply{{body: strings.Replace(strings.Replace(string(refund), "10000097", testMchID, 1),
			hbinfoMany[strings.Index(hbinfoMany, "<hblist>"):strings.Index(hbinfoMany, "</hblist>")+len("</hblist>")], "", 1)}},
			func(t *testing.T, r *QueryResult) {
				if r.Status != StatusRefund || r.RefundAmount != 300 || r.RefundTime == "" || r.Reason != "过期未领退款" ||
					r.Receivers == nil || len(r.Receivers) != 0 {
					t.Errorf("%+v", r)
				}
			}},
		{"SYSTEMERROR then record", []reply{xmlReply(t, errParams("SYSTEMERROR", "")), {body: string(oneDoc)}}, func(t *testing.T, r *QueryResult) {
			if r.Attempts != 2 || len(r.Receivers) != 1 {
				t.Errorf("%+v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.script...)
			c, _ := newTestClient(t, srv, nil)
			res, err := c.QueryRedpack(context.Background(), &QueryRequest{MchBillno: "9010080799701411170000046603", AppID: testAppID})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, res)
			bodies, paths, _ := srv.requests()
			p, _ := DecodeXML(bodies[0])
			if paths[0] != PathGetHBInfo || p["bill_type"] != "MCHT" || p["appid"] != testAppID || !VerifySign(p, testKey) {
				t.Errorf("request %s to %s", bodies[0], paths[0])
			}
		})
	}

	// NOT_FOUND: its own outcome, final.
	srv := newScriptServer(t, xmlReply(t, errParams("NOT_FOUND", "指定单号数据不存在")))
	c, clock := newTestClient(t, srv, nil)
	_, err := c.QueryRedpack(context.Background(), validQuery())
	var we *Error
	if !errors.As(err, &we) || we.Outcome != OutcomeNotFound || we.Code != "NOT_FOUND" || we.Attempts != 1 || we.Retryable || we.API != "gethbinfo" {
		t.Fatalf("err = %+v, want not_found after 1 attempt", err)
	}
	if OutcomeOf(err) != OutcomeNotFound || len(clock.Sleeps()) != 0 {
		t.Errorf("OutcomeOf %s, waits %v", OutcomeOf(err), clock.Sleeps())
	}

	// A record of another billno is not this one's.
	srv2 := newScriptServer(t, reply{body: string(oneDoc)})
	c2, _ := newTestClient(t, srv2, nil)
	_, err = c2.QueryRedpack(context.Background(), validQuery())
	if !errors.As(err, &we) || we.Code != CodeMismatch || we.Outcome != OutcomeUnknown {
		t.Fatalf("err = %v, want MISMATCH", err)
	}
}

// TestSendCalls: sendredpack and sendgroupredpack go to their paths and
// return their results.
func TestSendCalls(t *testing.T) {
	group := successParams(validGroup().MchBillno)
	group["total_amount"] = "600"
	srv := newScriptServer(t, xmlReply(t, successParams(validSend().MchBillno)), xmlReply(t, group))
	c, _ := newTestClient(t, srv, nil)
	res, err := c.SendRedpack(context.Background(), validSend())
	if err != nil || res.MchBillno != validSend().MchBillno || res.SendListID == "" || res.Attempts != 1 || res.ReOpenID != testOpenID || res.WxAppID != testAppID {
		t.Fatalf("sendredpack: %+v, %v", res, err)
	}
	res, err = c.SendGroupRedpack(context.Background(), validGroup())
	if err != nil || res.MchBillno != validGroup().MchBillno {
		t.Fatalf("sendgroupredpack: %+v, %v", res, err)
	}
	_, paths, _ := srv.requests()
	if !slices.Equal(paths, []string{PathSendRedpack, PathSendGroupRedpack}) {
		t.Errorf("paths %q", paths)
	}

	// A success naming another amount or openid: money moved, not as asked.
	for _, field := range []string{"total_amount", "re_openid"} {
		other := successParams(validSend().MchBillno)
		other[field] = "999"
		c, _ := newTestClient(t, newScriptServer(t, xmlReply(t, other)), nil)
		_, err := c.SendRedpack(context.Background(), validSend())
		var we *Error
		if !errors.As(err, &we) || we.Code != CodeMismatch || we.Outcome != OutcomeUnknown || we.Retryable {
			t.Errorf("success naming another %s: %v, want unknown MISMATCH", field, err)
		}
	}
}

// TestKeepAlive: one client, many calls, one TLS connection.
func TestKeepAlive(t *testing.T) {
	srv := newScriptServer(t, xmlReply(t, successParams(validSend().MchBillno)))
	c, _ := newTestClient(t, srv, nil)
	for i := range 10 {
		if _, err := c.SendRedpack(context.Background(), validSend()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := srv.newConns.Load(); n != 1 {
		t.Errorf("server saw %d TLS connections for 10 sequential calls, want 1", n)
	}
	// Error answers (read to the end) keep the connection too.
	srv2 := newScriptServer(t, xmlReply(t, errParams("NOTENOUGH", "")), reply{status: 400, body: "<html>bad</html>"})
	c2, _ := newTestClient(t, srv2, nil)
	for range 6 {
		c2.SendRedpack(context.Background(), validSend())
	}
	if n := srv2.newConns.Load(); n != 1 {
		t.Errorf("%d connections across error answers, want 1", n)
	}
	c2.CloseIdleConnections()
	c2.SendRedpack(context.Background(), validSend())
	if n := srv2.newConns.Load(); n != 2 {
		t.Errorf("%d connections after CloseIdleConnections, want 2", n)
	}
}

func TestClientConcurrentUse(t *testing.T) {
	srv := newScriptServer(t, xmlReply(t, successParams(validSend().MchBillno)))
	c, _ := newTestClient(t, srv, func(cfg *Config) { cfg.Rand = nil }) // crypto/rand is safe for concurrent use
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := c.SendRedpack(context.Background(), validSend())
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := srv.newConns.Load(); n > 8 {
		t.Errorf("%d connections", n)
	}
}

// TestSleep: the default wait ends after its duration, or with the
// context's error as soon as the context ends.
func TestSleep(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"elapsed", context.Background(), time.Millisecond, nil},
		{"context ended", canceled, time.Hour, context.Canceled},
	} {
		if err := Sleep(tc.ctx, tc.d); !errors.Is(err, tc.want) {
			t.Errorf("%s: Sleep = %v, want %v", tc.name, err, tc.want)
		}
	}
}
