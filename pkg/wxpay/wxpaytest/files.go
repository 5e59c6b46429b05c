package wxpaytest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The names of the files WriteFiles writes.
const (
	FileCA            = "ca.pem"                    // CA of the server certificate (SSL_CERT_FILE)
	FileCert          = "apiclient_cert.pem"        // merchant certificate
	FileKey           = "apiclient_key.pem"         // merchant private key
	FileP12Legacy     = "apiclient_cert.p12"        // PKCS#12 as WeChat issues it (RC2-40/3DES)
	FileP12Modern     = "apiclient_cert_modern.p12" // PKCS#12 with AES-256
	FileSecret        = "secret.json"               // Secrets Manager secret, PEM pair
	FileSecretP12     = "secret_p12.json"           // Secrets Manager secret, apiclient_p12
	FileEnv           = "wxpaysim.env"              // environment for a client
	FileCAKey         = "ca-key.pem"                // the server CA's key (for LoadCA)
	FileMerchantCA    = "merchant-ca.pem"           // CA of the merchant certificates
	FileMerchantCAKey = "merchant-ca-key.pem"       // its key (for LoadCA)
	FileAPIKey        = "apiv2_key.txt"             // the APIv2 key alone
)

// Files are the paths WriteFiles wrote.
type Files struct {
	// Dir is the directory, absolute.
	Dir string
	// CA is ca.pem, the CA of the server certificate: SSL_CERT_FILE.
	CA string
	// Cert and Key are apiclient_cert.pem and apiclient_key.pem.
	Cert, Key string
	// P12Legacy and P12Modern are apiclient_cert.p12 (WeChat's legacy
	// encryption) and apiclient_cert_modern.p12; the password is the
	// mch_id.
	P12Legacy, P12Modern string
	// Secret is secret.json: the contract's secret with the PEM pair.
	Secret string
	// SecretP12 is secret_p12.json: the secret with apiclient_p12.
	SecretP12 string
	// Env is wxpaysim.env, the EnvLines one a line.
	Env string
	// EnvLines are the environment a client of this server needs:
	// WXPAY_BASE_URL, WXPAY_BACKUP_BASE_URL and SSL_CERT_FILE.
	EnvLines []string
}

// WriteFiles writes the server's CA and the merchant's current credentials
// to dir (created if needed, mode 0700; key and secret files 0600), plus
// the CA keys, so that a restarted simulator can keep them (see LoadDir).
func (s *Server) WriteFiles(dir string) (*Files, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("wxpaytest: %w", err)
	}
	m := s.Merchant()
	f := &Files{
		Dir:       abs,
		CA:        filepath.Join(abs, FileCA),
		Cert:      filepath.Join(abs, FileCert),
		Key:       filepath.Join(abs, FileKey),
		P12Legacy: filepath.Join(abs, FileP12Legacy),
		P12Modern: filepath.Join(abs, FileP12Modern),
		Secret:    filepath.Join(abs, FileSecret),
		SecretP12: filepath.Join(abs, FileSecretP12),
		Env:       filepath.Join(abs, FileEnv),
	}
	f.EnvLines = []string{
		"WXPAY_BASE_URL=" + s.URL,
		"WXPAY_BACKUP_BASE_URL=" + s.BackupURL,
		"SSL_CERT_FILE=" + f.CA,
	}
	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.CA, s.serverCA.CertPEM(), 0o644},
		{filepath.Join(abs, FileCAKey), s.serverCA.KeyPEM(), 0o600},
		{filepath.Join(abs, FileMerchantCA), s.merchantCA.CertPEM(), 0o644},
		{filepath.Join(abs, FileMerchantCAKey), s.merchantCA.KeyPEM(), 0o600},
		{f.Cert, m.CertPEM, 0o644},
		{f.Key, m.KeyPEM, 0o600},
		{f.P12Legacy, m.P12Legacy, 0o600},
		{f.P12Modern, m.P12Modern, 0o600},
		{filepath.Join(abs, FileAPIKey), []byte(m.APIKey + "\n"), 0o600},
		{f.Secret, m.SecretJSON(), 0o600},
		{f.SecretP12, m.SecretP12JSON(), 0o600},
		{f.Env, []byte(strings.Join(f.EnvLines, "\n") + "\n"), 0o644},
	}
	for _, w := range writes {
		if err := writeFile(w.path, w.data, w.mode); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// writeFile replaces path atomically with data.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("wxpaytest: %w", err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := os.Chmod(name, mode); err != nil && werr == nil {
		werr = err
	}
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		_ = os.Remove(name)
		return fmt.Errorf("wxpaytest: write %s: %w", path, werr)
	}
	return nil
}

// LoadDir reads back what WriteFiles wrote to dir, as a Config's ServerCA,
// MerchantCA and Merchant, so that a restarted simulator keeps its CA (the
// clients' SSL_CERT_FILE) and the merchant's credentials (the secret
// already stored). It reports os.ErrNotExist (errors.Is) when dir holds no
// complete set.
func LoadDir(dir string) (*Config, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("wxpaytest: %w", err)
		}
		return b, nil
	}
	var data [7][]byte
	for i, name := range []string{FileCA, FileCAKey, FileMerchantCA, FileMerchantCAKey, FileCert, FileKey, FileAPIKey} {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	serverCA, err := LoadCA(data[0], data[1])
	if err != nil {
		return nil, err
	}
	merchantCA, err := LoadCA(data[2], data[3])
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data[4])
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("wxpaytest: %s: no PEM CERTIFICATE block", FileCert)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("wxpaytest: %s: %w", FileCert, err)
	}
	m, err := LoadMerchant(leaf.Subject.CommonName, strings.TrimSpace(string(data[6])), data[4], data[5])
	if err != nil {
		return nil, err
	}
	return &Config{ServerCA: serverCA, MerchantCA: merchantCA, Merchant: m, MchID: m.MchID, APIKey: m.APIKey}, nil
}
