package wxpaytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"software.sslmate.com/src/go-pkcs12"
)

// CA is a certificate authority of the simulator. A server has two: one
// signs its TLS server certificate (clients trust it through RootCAs or
// SSL_CERT_FILE), the other issues merchant API certificates, as WeChat
// Pay's own CA issues apiclient_cert.pem. CA keys are ECDSA P-256.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// NewCA creates a self-signed CA named commonName, valid from ten years
// ago to twenty years from now, so that tests may run on any injected
// clock.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject: pkix.Name{
			Country:            []string{"CN"},
			Organization:       []string{"wxpaytest"},
			OrganizationalUnit: []string{"WeChat Pay simulator"},
			CommonName:         commonName,
		},
		NotBefore:             now.AddDate(-10, 0, 0),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: CA key: %w", err)
	}
	return newCA(der, key, keyDER)
}

// LoadCA loads a CA written earlier (CertPEM and KeyPEM), so that a
// restarted simulator keeps the trust its clients were given.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("wxpaytest: CA certificate: no PEM CERTIFICATE block")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, errors.New("wxpaytest: CA key: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("wxpaytest: CA key: unsupported type %T", k)
	}
	ca, err := newCA(cb.Bytes, signer, kb.Bytes)
	if err != nil {
		return nil, err
	}
	if !ca.cert.IsCA || !publicKeysEqual(ca.cert.PublicKey, signer.Public()) {
		return nil, errors.New("wxpaytest: CA certificate and key do not belong together")
	}
	return ca, nil
}

func newCA(der []byte, key crypto.Signer, keyDER []byte) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: CA certificate: %w", err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return clone(ca.certPEM) }

// KeyPEM returns the CA's private key in PEM (PKCS#8). Keep it with the
// certificate only where LoadCA should find it again.
func (ca *CA) KeyPEM() []byte { return clone(ca.keyPEM) }

// Pool returns a new pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// issueServer issues a TLS server certificate for hosts (DNS names or IP
// addresses), valid on the real clock, since TLS clients verify it with
// theirs.
func (ca *CA) issueServer(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("wxpaytest: server key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{Country: []string{"CN"}, Organization: []string{"wxpaytest"}, CommonName: "api.mch.weixin.qq.com"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("wxpaytest: server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("wxpaytest: server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// MerchantSpec describes a merchant API certificate to issue.
type MerchantSpec struct {
	// MchID is the merchant number, the certificate's subject CN.
	// Required.
	MchID string
	// APIKey is the merchant's 32-byte APIv2 key; random when empty.
	APIKey string
	// Name is the merchant's name, the subject's OU (default
	// "wxpaytest merchant").
	Name string
	// NotBefore and NotAfter bound the certificate's validity. Defaults:
	// a day before now (or Now, if earlier) to five years after now (or
	// Now, if later), as WeChat's certificates last five years.
	NotBefore, NotAfter time.Time
	// Now is the injected clock the defaults also cover; time.Now when
	// nil.
	Now func() time.Time
	// Rand is the source of a random APIKey; crypto/rand when nil.
	Rand io.Reader
}

// MerchantFiles are a merchant's credentials in every form WeChat Pay hands
// them out, plus the APIv2 key the merchant sets on its platform.
type MerchantFiles struct {
	// MchID is the merchant number.
	MchID string
	// APIKey is the APIv2 key (32 bytes).
	APIKey string
	// CertPEM is apiclient_cert.pem; its subject CN is MchID.
	CertPEM []byte
	// KeyPEM is apiclient_key.pem (PKCS#8, RSA 2048).
	KeyPEM []byte
	// P12Legacy is apiclient_cert.p12 as WeChat Pay issues it: RC2-40
	// certificate, 3DES key, SHA-1 MAC; the password is MchID.
	P12Legacy []byte
	// P12Modern is the same file re-exported with AES-256 and SHA-256
	// (OpenSSL 3's default); the password is MchID.
	P12Modern []byte
	// Certificate is the parsed CertPEM.
	Certificate *x509.Certificate

	key crypto.Signer
}

// NewMerchant issues credentials for mchID from ca; a new merchant CA is
// made when ca is nil.
func NewMerchant(mchID string, ca *CA) (*MerchantFiles, error) {
	if ca == nil {
		var err error
		if ca, err = NewCA(merchantCAName); err != nil {
			return nil, err
		}
	}
	return ca.IssueMerchant(MerchantSpec{MchID: mchID})
}

// merchantCAName is the subject CN of the merchant CAs a Server makes.
const merchantCAName = "wxpaytest Tenpay.com Merchant CA"

// IssueMerchant issues a merchant API certificate (RSA 2048, subject
// "CN=<mch_id>, OU=<name>, O=Tenpay.com, L=Shenzhen, C=CN", client
// authentication) with its key and PKCS#12 files.
func (ca *CA) IssueMerchant(spec MerchantSpec) (*MerchantFiles, error) {
	if spec.MchID == "" {
		return nil, errors.New("wxpaytest: MerchantSpec.MchID is required")
	}
	if spec.Name == "" {
		spec.Name = "wxpaytest merchant"
	}
	if spec.APIKey == "" {
		key, err := randomKey(spec.Rand)
		if err != nil {
			return nil, err
		}
		spec.APIKey = key
	}
	now := time.Now()
	clock := now
	if spec.Now != nil {
		clock = spec.Now()
	}
	if spec.NotBefore.IsZero() {
		spec.NotBefore = minTime(now, clock).Add(-24 * time.Hour)
	}
	if spec.NotAfter.IsZero() {
		spec.NotAfter = maxTime(now, clock).AddDate(5, 0, 0)
	}
	key := merchantKey()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject: pkix.Name{
			Country:            []string{"CN"},
			Locality:           []string{"Shenzhen"},
			Organization:       []string{"Tenpay.com"},
			OrganizationalUnit: []string{spec.Name},
			CommonName:         spec.MchID,
		},
		NotBefore:   spec.NotBefore,
		NotAfter:    spec.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: merchant certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: merchant certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: merchant key: %w", err)
	}
	m := &MerchantFiles{
		MchID:       spec.MchID,
		APIKey:      spec.APIKey,
		CertPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Certificate: leaf,
		key:         key,
	}
	if m.P12Legacy, err = pkcs12.LegacyRC2.Encode(key, leaf, nil, spec.MchID); err != nil {
		return nil, fmt.Errorf("wxpaytest: legacy PKCS#12: %w", err)
	}
	if m.P12Modern, err = pkcs12.Modern2023.Encode(key, leaf, nil, spec.MchID); err != nil {
		return nil, fmt.Errorf("wxpaytest: modern PKCS#12: %w", err)
	}
	return m, nil
}

// LoadMerchant rebuilds MerchantFiles from a certificate and key in PEM
// written earlier (apiclient_cert.pem, apiclient_key.pem), regenerating
// the PKCS#12 files.
func LoadMerchant(mchID, apiKey string, certPEM, keyPEM []byte) (*MerchantFiles, error) {
	cert, err := wxpay.LoadPEM(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("wxpaytest: merchant key: unsupported type %T", cert.PrivateKey)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	m := &MerchantFiles{MchID: mchID, APIKey: apiKey, CertPEM: clone(certPEM), KeyPEM: clone(keyPEM), Certificate: leaf, key: signer}
	if m.P12Legacy, err = pkcs12.LegacyRC2.Encode(signer, leaf, nil, mchID); err != nil {
		return nil, fmt.Errorf("wxpaytest: legacy PKCS#12: %w", err)
	}
	if m.P12Modern, err = pkcs12.Modern2023.Encode(signer, leaf, nil, mchID); err != nil {
		return nil, fmt.Errorf("wxpaytest: modern PKCS#12: %w", err)
	}
	return m, nil
}

// TLSCertificate returns the certificate and key as the client presents
// them in mutual TLS.
func (m *MerchantFiles) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{m.Certificate.Raw}, PrivateKey: m.key, Leaf: m.Certificate}
}

// Credentials returns the merchant's credentials as wxpay.LoadPEM builds
// them from the PEM files.
func (m *MerchantFiles) Credentials() (*wxpay.Credentials, error) {
	cert, err := wxpay.LoadPEM(m.CertPEM, m.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &wxpay.Credentials{MchID: m.MchID, APIKey: m.APIKey, Certificate: cert}, nil
}

// SecretJSON returns the Secrets Manager secret of the project's contract
// with the PEM pair: mch_id, apiv2_key, apiclient_cert, apiclient_key.
func (m *MerchantFiles) SecretJSON() []byte {
	out, _ := json.MarshalIndent(struct {
		MchID         string `json:"mch_id"`
		APIv2Key      string `json:"apiv2_key"`
		ApiclientCert string `json:"apiclient_cert"`
		ApiclientKey  string `json:"apiclient_key"`
	}{m.MchID, m.APIKey, string(m.CertPEM), string(m.KeyPEM)}, "", "  ")
	return append(out, '\n')
}

// SecretP12JSON returns the secret with the legacy PKCS#12 file instead of
// the PEM pair: mch_id, apiv2_key, apiclient_p12 (base64; its password is
// the mch_id).
func (m *MerchantFiles) SecretP12JSON() []byte {
	out, _ := json.MarshalIndent(struct {
		MchID        string `json:"mch_id"`
		APIv2Key     string `json:"apiv2_key"`
		ApiclientP12 string `json:"apiclient_p12"`
	}{m.MchID, m.APIKey, base64.StdEncoding.EncodeToString(m.P12Legacy)}, "", "  ")
	return append(out, '\n')
}

// fingerprint identifies a certificate.
func fingerprint(der []byte) [32]byte { return sha256.Sum256(der) }

// Merchant RSA keys. Generating an RSA 2048 key takes tens of
// milliseconds, so a process keeps a few and hands them out in turn:
// consecutive merchants (a rotation) get different keys, and a test suite
// starting many servers does not pay for a key each time.
var (
	keyMu   sync.Mutex
	keyRing []*rsa.PrivateKey
	keyNext int
)

const keyRingSize = 3

func merchantKey() *rsa.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	if len(keyRing) < keyRingSize {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("wxpaytest: RSA key: %v", err)) // crypto/rand does not fail
		}
		keyRing = append(keyRing, key)
		return key
	}
	key := keyRing[keyNext%len(keyRing)]
	keyNext++
	return key
}

func newSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[0] &= 0x7f
	b[0] |= 0x40
	return new(big.Int).SetBytes(b[:])
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomKey returns a 32-character alphanumeric APIv2 key from r
// (crypto/rand when nil).
func randomKey(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var raw [wxpay.APIKeyLength]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return "", fmt.Errorf("wxpaytest: APIv2 key: %w", err)
	}
	for i, b := range raw {
		raw[i] = alnum[int(b)%len(alnum)]
	}
	return string(raw[:]), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
