package wxpay

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is a 2048-bit key, as WeChat issues, generated once.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

var (
	certValidFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	certValidTo   = time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
)

// merchantCert issues a merchant certificate for key.
func merchantCert(t testing.TB, cn string, ou []string, key crypto.Signer) *x509.Certificate {
	return fixture(t).issue(t, pkix.Name{CommonName: cn, OrganizationalUnit: ou, Organization: []string{"Tenpay.com"}}, key.Public(), certValidFrom, certValidTo)
}

func TestLoadPEM(t *testing.T) {
	rsaK := testRSAKey(t)
	ecK, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaCert := pemBlock("CERTIFICATE", merchantCert(t, testMchID, nil, rsaK).Raw)
	ecCert := pemBlock("CERTIFICATE", merchantCert(t, testMchID, nil, ecK).Raw)
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(rsaK)
	pkcs8EC, _ := x509.MarshalPKCS8PrivateKey(ecK)
	sec1EC, _ := x509.MarshalECPrivateKey(ecK)
	pkcs8Other, _ := x509.MarshalPKCS8PrivateKey(otherEC)

	tests := []struct {
		name      string
		cert, key []byte
		want      error // nil: loads
	}{
		{"RSA PKCS#8", rsaCert, pemBlock("PRIVATE KEY", pkcs8RSA), nil},
		{"RSA PKCS#1", rsaCert, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaK)), nil},
		{"EC SEC1", ecCert, pemBlock("EC PRIVATE KEY", sec1EC), nil},
		{"EC PKCS#8", ecCert, pemBlock("PRIVATE KEY", pkcs8EC), nil},
		{"CRLF line ends", []byte(strings.ReplaceAll(string(rsaCert), "\n", "\r\n")), []byte(strings.ReplaceAll(string(pemBlock("PRIVATE KEY", pkcs8RSA)), "\n", "\r\n")), nil},
		{"mismatch EC", ecCert, pemBlock("PRIVATE KEY", pkcs8Other), ErrKeyMismatch},
		{"mismatch RSA cert, EC key", rsaCert, pemBlock("PRIVATE KEY", pkcs8EC), ErrKeyMismatch},
		{"cert garbage", []byte("garbage"), pemBlock("PRIVATE KEY", pkcs8RSA), ErrCertificate},
		{"cert empty", nil, pemBlock("PRIVATE KEY", pkcs8RSA), ErrCertificate},
		{"cert block garbage", pemBlock("CERTIFICATE", []byte("not DER")), pemBlock("PRIVATE KEY", pkcs8RSA), ErrCertificate},
		{"cert is a key", pemBlock("PRIVATE KEY", pkcs8RSA), pemBlock("PRIVATE KEY", pkcs8RSA), ErrCertificate},
		{"key garbage", rsaCert, []byte("-----BEGIN nothing"), ErrPrivateKey},
		{"key empty", rsaCert, nil, ErrPrivateKey},
		{"key is a cert", rsaCert, rsaCert, ErrPrivateKey},
		{"key block garbage", rsaCert, pemBlock("PRIVATE KEY", []byte("not DER")), ErrPrivateKey},
		{"key PKCS#1 labelled PKCS#8 garbage", rsaCert, pemBlock("RSA PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}), ErrPrivateKey},
		{"encrypted key", rsaCert, pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}), ErrPrivateKey},
		{"cert and key swapped", pemBlock("PRIVATE KEY", pkcs8RSA), rsaCert, ErrCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := LoadPEM(tt.cert, tt.key)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(cert.Certificate) != 1 || cert.PrivateKey == nil {
					t.Fatalf("certificate %d certs, key %T", len(cert.Certificate), cert.PrivateKey)
				}
				creds := &Credentials{MchID: testMchID, APIKey: testKey, Certificate: cert}
				if err := creds.Check(testStart); err != nil {
					t.Errorf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			assertNoSecrets(t, err.Error(), rsaK, ecK, otherEC)
		})
	}
}

func TestLoadPKCS12(t *testing.T) {
	rsaK := testRSAKey(t)
	leaf := merchantCert(t, testMchID, nil, rsaK)
	ecK, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecLeaf := merchantCert(t, testMchID, nil, ecK)
	encode := func(enc *pkcs12.Encoder, key any, cert *x509.Certificate, ca []*x509.Certificate, pw string) []byte {
		t.Helper()
		data, err := enc.Encode(key, cert, ca, pw)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name     string
		p12      []byte
		password string
		want     error
		chain    int
	}{
		{"legacy RC2 (WeChat's files)", encode(pkcs12.LegacyRC2, rsaK, leaf, nil, testMchID), testMchID, nil, 1},
		{"legacy 3DES", encode(pkcs12.LegacyDES, rsaK, leaf, nil, testMchID), testMchID, nil, 1},
		{"modern 2023 AES", encode(pkcs12.Modern2023, rsaK, leaf, nil, testMchID), testMchID, nil, 1},
		{"modern EC", encode(pkcs12.Modern2023, ecK, ecLeaf, nil, "secret"), "secret", nil, 1},
		{"with CA chain", encode(pkcs12.Modern2023, rsaK, leaf, []*x509.Certificate{fixture(t).caCert}, testMchID), testMchID, nil, 2},
		{"legacy wrong password", encode(pkcs12.LegacyRC2, rsaK, leaf, nil, testMchID), "1900000108", ErrP12Password, 0},
		{"modern wrong password", encode(pkcs12.Modern2023, rsaK, leaf, nil, testMchID), "", ErrP12Password, 0},
		{"key of another certificate", encode(pkcs12.Modern2023, ecK, leaf, nil, testMchID), testMchID, ErrKeyMismatch, 0},
		{"garbage", []byte("not a p12 file"), testMchID, ErrCertificate, 0},
		{"empty", nil, testMchID, ErrCertificate, 0},
		{"PEM instead of p12", pemBlock("CERTIFICATE", leaf.Raw), testMchID, ErrCertificate, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := LoadPKCS12(tt.p12, tt.password)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				assertNoSecrets(t, err.Error(), rsaK, ecK)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cert.Certificate) != tt.chain || cert.Leaf == nil || cert.PrivateKey == nil {
				t.Fatalf("chain %d (want %d), leaf %v, key %T", len(cert.Certificate), tt.chain, cert.Leaf != nil, cert.PrivateKey)
			}
			creds := &Credentials{MchID: testMchID, APIKey: testKey, Certificate: cert}
			if err := creds.Check(testStart); err != nil {
				t.Errorf("Check: %v", err)
			}
			// The certificate works for TLS: the key signs for the leaf.
			if _, err := tls.X509KeyPair(pemBlock("CERTIFICATE", cert.Certificate[0]), mustPKCS8PEM(t, cert.PrivateKey)); err != nil {
				t.Errorf("loaded key does not pair with the leaf: %v", err)
			}
		})
	}
}

func mustPKCS8PEM(t *testing.T, key any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func TestCredentialsCheck(t *testing.T) {
	ecK, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pair := func(leaf *x509.Certificate, withLeaf bool) tls.Certificate {
		c := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: ecK}
		if withLeaf {
			c.Leaf = leaf
		}
		return c
	}
	good := merchantCert(t, testMchID, nil, ecK)
	byOU := merchantCert(t, "商户证书", []string{"Tenpay.com CA Center", testMchID}, ecK)
	other := merchantCert(t, "1900000110", nil, ecK)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	tests := []struct {
		name  string
		creds Credentials
		now   time.Time
		want  error
	}{
		{"valid", Credentials{testMchID, testKey, pair(good, true)}, now, nil},
		{"leaf parsed from DER", Credentials{testMchID, testKey, pair(good, false)}, now, nil},
		{"mch_id in OU", Credentials{testMchID, testKey, pair(byOU, true)}, now, nil},
		{"first valid day", Credentials{testMchID, testKey, pair(good, true)}, certValidFrom, nil},
		{"last valid instant", Credentials{testMchID, testKey, pair(good, true)}, certValidTo, nil},
		{"mch_id empty", Credentials{"", testKey, pair(good, true)}, now, ErrMchID},
		{"mch_id letters", Credentials{"19000001a9", testKey, pair(good, true)}, now, ErrMchID},
		{"mch_id padded", Credentials{" 1900000109", testKey, pair(good, true)}, now, ErrMchID},
		{"mch_id 33 digits", Credentials{strings.Repeat("1", 33), testKey, pair(good, true)}, now, ErrMchID},
		{"key empty", Credentials{testMchID, "", pair(good, true)}, now, ErrAPIKey},
		{"key 31 bytes", Credentials{testMchID, testKey[:31], pair(good, true)}, now, ErrAPIKey},
		{"key 33 bytes", Credentials{testMchID, testKey + "x", pair(good, true)}, now, ErrAPIKey},
		{"key 32 runes, more bytes", Credentials{testMchID, strings.Repeat("密", 32), pair(good, true)}, now, ErrAPIKey},
		{"expired", Credentials{testMchID, testKey, pair(good, true)}, certValidTo.Add(time.Second), ErrExpired},
		{"not yet valid", Credentials{testMchID, testKey, pair(good, true)}, certValidFrom.Add(-time.Second), ErrExpired},
		{"another merchant", Credentials{testMchID, testKey, pair(other, true)}, now, ErrWrongMerchant},
		{"another merchant, DER only", Credentials{testMchID, testKey, pair(other, false)}, now, ErrWrongMerchant},
		{"no certificate", Credentials{testMchID, testKey, tls.Certificate{}}, now, ErrCertificate},
		{"garbage certificate", Credentials{testMchID, testKey, tls.Certificate{Certificate: [][]byte{[]byte("junk")}}}, now, ErrCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.creds.Check(tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), testKey[:16]) {
				t.Errorf("error %q shows the key", err)
			}
			// NewClient refuses what Check refuses.
			_, nerr := NewClient(Config{Credentials: &tt.creds, Now: func() time.Time { return tt.now }, Transport: &countingTransport{}})
			if !errors.Is(nerr, tt.want) || (tt.want == nil) != (nerr == nil) {
				t.Errorf("NewClient = %v, want %v", nerr, tt.want)
			}
		})
	}
	if _, err := NewClient(Config{}); err == nil {
		t.Error("NewClient without credentials succeeded")
	}
}

func TestCertificateMatchesMchID(t *testing.T) {
	ecK, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		cn   string
		ou   []string
		want bool
	}{
		{testMchID, nil, true},
		{"x", []string{"a", testMchID}, true},
		{testMchID + "0", nil, false},
		{"x", []string{testMchID[:9]}, false},
		{"", nil, false},
	}
	for _, tt := range tests {
		leaf := merchantCert(t, tt.cn, tt.ou, ecK)
		if got := CertificateMatchesMchID(leaf, testMchID); got != tt.want {
			t.Errorf("CN %q OU %q: %v, want %v", tt.cn, tt.ou, got, tt.want)
		}
	}
}

// assertNoSecrets fails if s shows the APIv2 key or any form of the keys.
func assertNoSecrets(t *testing.T, s string, keys ...any) {
	t.Helper()
	secrets := []string{testKey, strings.ToUpper(testKey), hex.EncodeToString([]byte(testKey)), base64.StdEncoding.EncodeToString([]byte(testKey))[:20]}
	for _, k := range keys {
		var d interface{ String() string }
		switch k := k.(type) {
		case *rsa.PrivateKey:
			d = k.D
			secrets = append(secrets, k.Primes[0].String(), k.Primes[0].Text(16))
		case *ecdsa.PrivateKey:
			b, _ := k.Bytes()
			secrets = append(secrets, hex.EncodeToString(b), fmt.Sprint(b))
			raw, _ := x509.MarshalECPrivateKey(k)
			secrets = append(secrets, base64.StdEncoding.EncodeToString(raw)[:40])
			continue
		}
		if d != nil {
			secrets = append(secrets, d.String(), d.String()[:40])
		}
		if der, err := x509.MarshalPKCS8PrivateKey(k); err == nil {
			secrets = append(secrets, base64.StdEncoding.EncodeToString(der)[60:120], hex.EncodeToString(der)[100:160])
		}
	}
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Fatalf("output shows secret material %.20q...:\n%.300s", secret, s)
		}
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	ecK := fixture(t).merchant.PrivateKey.(*ecdsa.PrivateKey)
	rsaK := testRSAKey(t)
	rsaCreds := &Credentials{MchID: testMchID, APIKey: testKey,
		Certificate: tls.Certificate{Certificate: [][]byte{merchantCert(t, testMchID, nil, rsaK).Raw}, PrivateKey: rsaK}}
	ecCreds := testCredentials(t)
	type wrapper struct {
		Name  string
		Creds *Credentials
		Value Credentials
	}
	cfg := Config{Credentials: ecCreds, BaseURL: "https://x"}
	var nilCreds *Credentials
	for _, c := range []*Credentials{ecCreds, rsaCreds} {
		outs := []string{
			c.String(), c.GoString(),
			fmt.Sprint(c), fmt.Sprint(*c),
			fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%X|%d", c, c, c, c, c, c, c, c),
			fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%X|%d", *c, *c, *c, *c, *c, *c, *c, *c),
			fmt.Sprintf("%v|%+v|%#v", wrapper{"w", c, *c}, wrapper{"w", c, *c}, wrapper{"w", c, *c}),
			fmt.Sprintf("%v|%+v|%#v", []*Credentials{c}, []Credentials{*c}, map[string]Credentials{"a": *c}),
			fmt.Sprintf("%v|%+v|%#v", cfg, cfg, &cfg),
		}
		for _, out := range outs {
			assertNoSecrets(t, out, ecK, rsaK)
		}
		if !strings.Contains(c.String(), testMchID) {
			t.Errorf("String() %q does not name the merchant", c.String())
		}
		if !strings.Contains(fmt.Sprintf("%+v", *c), testMchID) {
			t.Errorf("%%+v of a value does not name the merchant: %q", fmt.Sprintf("%+v", *c))
		}
	}
	// Without a parsed Leaf the description still names the certificate.
	if s := rsaCreds.String(); !strings.Contains(s, `CN "`+testMchID+`"`) || !strings.Contains(s, "2029-01-01") {
		t.Errorf("String() without Leaf = %q", s)
	}
	if s := fmt.Sprint(nilCreds); strings.Contains(s, "APIKey:") && !strings.Contains(s, "redacted") {
		t.Errorf("nil credentials print %q", s)
	}
	_ = nilCreds.String() // must not panic
}
