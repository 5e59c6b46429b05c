package credstore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// testNow is the clock of the tests that fake it: the generated
// certificates are valid around it.
var testNow = time.Now().Truncate(time.Second)

const testMchID = "1900000109"

// merchant is throwaway merchant material: a self-signed certificate with
// CN = mch_id, its key, and an APIv2 key.
type merchant struct {
	mchID   string
	apiKey  string
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM string
	keyPEM  string
}

type certOpts struct {
	cn        string   // default: the mch_id
	ou        []string // default: WeChat's "Tenpay.com CA Center"
	notBefore time.Time
	notAfter  time.Time
	rsa       bool // RSA 2048 with a PKCS#1 key PEM instead of ECDSA P-256/PKCS#8
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func newMerchant(t testing.TB, mchID string, o certOpts) *merchant {
	t.Helper()
	if o.cn == "" {
		o.cn = mchID
	}
	if o.ou == nil {
		o.ou = []string{"Tenpay.com CA Center"}
	}
	if o.notBefore.IsZero() {
		o.notBefore = testNow.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.Add(365 * 24 * time.Hour)
	}
	var key crypto.Signer
	var keyBlock *pem.Block
	if o.rsa {
		rsaOnce.Do(func() {
			var err error
			if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		})
		key = rsaKey
		keyBlock = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}
	} else {
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(ec)
		if err != nil {
			t.Fatal(err)
		}
		key = ec
		keyBlock = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.cn, Organization: []string{"Tenpay.com"}, OrganizationalUnit: o.ou},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &merchant{
		mchID:   mchID,
		apiKey:  randomAPIKey(),
		cert:    cert,
		key:     key,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(keyBlock)),
	}
}

func randomAPIKey() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [32]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:])
}

// pemSecret is the contract's JSON with the PEM pair.
func (m *merchant) pemSecret() string {
	return jsonString(map[string]any{
		"mch_id":         m.mchID,
		"apiv2_key":      m.apiKey,
		"apiclient_cert": m.certPEM,
		"apiclient_key":  m.keyPEM,
	})
}

// p12 encodes the merchant's certificate and key with enc.
func (m *merchant) p12(t testing.TB, enc p12Encoder, password string) []byte {
	t.Helper()
	data, err := enc.Encode(m.key, m.cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type p12Encoder interface {
	Encode(key any, cert *x509.Certificate, ca []*x509.Certificate, password string) ([]byte, error)
}

func jsonString(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

// wrap64 breaks s into lines of 64, as base64 tools print it.
func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteString("\r\n")
		s = s[64:]
	}
	b.WriteString(s)
	return b.String()
}

// secretValues lists what must never appear in an error or log: the API
// key, every PEM body line, pieces of the base64 PKCS#12 and the password.
func secretValues(apiKey string, pems []string, p12 string, password string) []string {
	var vals []string
	if apiKey != "" {
		vals = append(vals, apiKey)
	}
	for _, p := range pems {
		for _, line := range strings.Split(p, "\n") {
			line = strings.TrimSpace(line)
			if len(line) >= 12 && !strings.HasPrefix(line, "-----") {
				vals = append(vals, line)
			}
		}
	}
	for i := 0; i+16 <= len(p12); i += 16 {
		vals = append(vals, p12[i:i+16])
	}
	if password != "" {
		vals = append(vals, password)
	}
	return vals
}

// assertNoLeak fails if text contains any of vals.
func assertNoLeak(t testing.TB, what, text string, vals []string) {
	t.Helper()
	for _, v := range vals {
		if strings.Contains(text, v) {
			t.Errorf("%s leaks a secret value %q: %s", what, v, text)
			return
		}
	}
}

// errorTexts is the text of err and of everything it wraps, and its %+v
// and %#v renderings.
func errorTexts(err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v\n%+v\n%#v\n", err, err, err)
	for e := err; e != nil; e = errors.Unwrap(e) {
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

// fakeSM is a GetSecretValueAPI in memory, for the store's unit tests.
type fakeSM struct {
	mu     sync.Mutex
	value  *string
	errs   []error
	calls  int
	delay  time.Duration
	inputs []string
	onCall func() // run on each call, outside the lock
}

func newFakeSM(value string) *fakeSM { return &fakeSM{value: &value} }

func (f *fakeSM) set(value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = &value
}

// fail makes the next calls return errs, one each.
func (f *fakeSM) fail(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, errs...)
}

func (f *fakeSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	f.calls++
	f.inputs = append(f.inputs, aws.ToString(in.SecretId))
	delay := f.delay
	var err error
	if len(f.errs) > 0 {
		err, f.errs = f.errs[0], f.errs[1:]
	}
	value := f.value
	onCall := f.onCall
	f.mu.Unlock()
	if onCall != nil {
		onCall()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &secretsmanager.GetSecretValueOutput{
		ARN:          aws.String("arn:aws:secretsmanager:us-east-1:123456789012:secret:" + aws.ToString(in.SecretId) + "-AbCdEf"),
		Name:         in.SecretId,
		SecretString: value,
		VersionId:    aws.String("v1"),
	}, nil
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "test"}
}

// clock is a settable fake clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Since(t time.Time) int64 { return c.ns.Load() - t.UnixNano() }

// logBuffer collects a store's log lines, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// offlineClient builds a wxpay client that is never called.
func offlineClient(c *wxpay.Credentials) (*wxpay.Client, error) {
	return wxpay.NewClient(wxpay.Config{Credentials: c, BaseURL: "https://127.0.0.1:1", Now: func() time.Time { return testNow }})
}

// newTestStore is a store over fake with a fake clock.
func newTestStore(t testing.TB, fake GetSecretValueAPI, clk *clock) (*Store, *logBuffer) {
	t.Helper()
	logger, logs := newLogger()
	s := New(Config{
		SecretID:       "wxpay/merchant",
		SecretsManager: fake,
		NewClient:      offlineClient,
		Now:            clk.Now,
		Logger:         logger,
		Sleep:          func(context.Context, time.Duration) error { return nil },
	})
	return s, logs
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// binarySM answers with a SecretBinary secret.
type binarySM struct{}

func (binarySM) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return &secretsmanager.GetSecretValueOutput{SecretBinary: []byte("{}")}, nil
}
