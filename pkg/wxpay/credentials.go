package wxpay

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Credentials are what a merchant signs and authenticates with: the mch_id,
// the APIv2 key and the merchant API certificate (apiclient_cert) with its
// private key. The String method never prints the key or certificate.
type Credentials struct {
	// MchID is the merchant number (商户号).
	MchID string
	// APIKey is the 32-byte APIv2 key that MD5 signatures are made with.
	APIKey string
	// Certificate is the merchant API certificate and private key presented
	// in mutual TLS.
	Certificate tls.Certificate
}

// String describes the credentials without any secret material.
func (c *Credentials) String() string {
	if c == nil {
		return "wxpay.Credentials(nil)"
	}
	return c.describe()
}

// GoString is String, so %#v does not print the key either.
func (c *Credentials) GoString() string { return c.String() }

// Format prints the description String gives for every verb, and for a
// Credentials value as well as a pointer: without it fmt.Sprint(*c), or %d
// and %x of a pointer, would print the APIv2 key and the private key field
// by field.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.describe())
		return
	}
	io.WriteString(f, c.describe())
}

func (c *Credentials) describe() string {
	leaf := c.Certificate.Leaf
	if leaf == nil && len(c.Certificate.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(c.Certificate.Certificate[0])
	}
	return fmt.Sprintf("wxpay.Credentials{MchID: %q, APIKey: [redacted], Certificate: %s}", c.MchID, describeCert(leaf))
}

func describeCert(leaf *x509.Certificate) string {
	if leaf == nil {
		return "none"
	}
	return fmt.Sprintf("serial %s, CN %q, expires %s", leaf.SerialNumber.Text(16), leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
}

// APIKeyLength is the length of every APIv2 key.
const APIKeyLength = 32

// Credential problems. Each error returned by LoadPEM, LoadPKCS12 and
// Credentials.Check wraps one of these, and none of them carries secret
// material.
var (
	ErrCertificate   = errors.New("wxpay: merchant certificate unusable")
	ErrPrivateKey    = errors.New("wxpay: merchant private key unusable")
	ErrKeyMismatch   = errors.New("wxpay: private key does not match the certificate")
	ErrP12Password   = errors.New("wxpay: PKCS#12 password incorrect")
	ErrExpired       = errors.New("wxpay: merchant certificate expired or not yet valid")
	ErrWrongMerchant = errors.New("wxpay: merchant certificate belongs to another mch_id")
	ErrAPIKey        = errors.New("wxpay: APIv2 key must be 32 bytes")
	ErrMchID         = errors.New("wxpay: mch_id must be digits")
)

// LoadPEM builds the TLS certificate from apiclient_cert.pem and
// apiclient_key.pem (PKCS#8 or PKCS#1).
func LoadPEM(certPEM, keyPEM []byte) (tls.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, fmt.Errorf("%w: no PEM CERTIFICATE block", ErrCertificate)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	keyBlock, _ := pem.Decode(keyPEM)
	if keyBlock == nil || (keyBlock.Type != "PRIVATE KEY" && keyBlock.Type != "RSA PRIVATE KEY" && keyBlock.Type != "EC PRIVATE KEY") {
		return tls.Certificate{}, fmt.Errorf("%w: no PEM PRIVATE KEY block", ErrPrivateKey)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls.X509KeyPair's messages name the problem, never the key.
		if _, perr := parsePrivateKey(keyBlock.Bytes); perr != nil {
			return tls.Certificate{}, fmt.Errorf("%w: %v", ErrPrivateKey, perr)
		}
		return tls.Certificate{}, fmt.Errorf("%w: %v", ErrKeyMismatch, err)
	}
	return cert, nil
}

func parsePrivateKey(der []byte) (crypto.PrivateKey, error) {
	if key, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return key, nil
	}
	if key, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return key, nil
	}
	if key, err := x509.ParseECPrivateKey(der); err == nil {
		return key, nil
	}
	return nil, errors.New("not a PKCS#8, PKCS#1 or EC private key")
}

// LoadPKCS12 builds the TLS certificate from apiclient_cert.p12. WeChat's
// files use the legacy RC2-40/3DES encryption with the mch_id as password;
// files re-exported with modern AES encryption load too.
func LoadPKCS12(p12 []byte, password string) (tls.Certificate, error) {
	key, leaf, chain, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return tls.Certificate{}, ErrP12Password
		}
		return tls.Certificate{}, fmt.Errorf("%w: PKCS#12: %v", ErrCertificate, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("%w: unsupported key type %T", ErrPrivateKey, key)
	}
	if !publicKeysEqual(signer.Public(), leaf.PublicKey) {
		return tls.Certificate{}, ErrKeyMismatch
	}
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// Check verifies that the credentials can work before any of them is used:
// an mch_id of digits, a 32-byte APIv2 key, a certificate valid at now and
// issued to MchID. WeChat's merchant certificates carry the mch_id as their
// subject's common name (older ones in the organizational unit).
func (c *Credentials) Check(now time.Time) error {
	if c.MchID == "" || !isDigits(c.MchID) || len(c.MchID) > 32 {
		return ErrMchID
	}
	if len(c.APIKey) != APIKeyLength {
		return fmt.Errorf("%w (got %d bytes)", ErrAPIKey, len(c.APIKey))
	}
	leaf := c.Certificate.Leaf
	if leaf == nil {
		if len(c.Certificate.Certificate) == 0 {
			return fmt.Errorf("%w: no certificate", ErrCertificate)
		}
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate.Certificate[0]); err != nil {
			return fmt.Errorf("%w: %v", ErrCertificate, err)
		}
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("%w (valid %s to %s)", ErrExpired, leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if !CertificateMatchesMchID(leaf, c.MchID) {
		return fmt.Errorf("%w (certificate CN %q)", ErrWrongMerchant, leaf.Subject.CommonName)
	}
	return nil
}

// CertificateMatchesMchID reports whether a merchant certificate was issued
// to mchID: its subject's common name, or one of its organizational units,
// is the mch_id.
func CertificateMatchesMchID(leaf *x509.Certificate, mchID string) bool {
	if leaf.Subject.CommonName == mchID {
		return true
	}
	for _, ou := range leaf.Subject.OrganizationalUnit {
		if ou == mchID {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
