package credstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// The secret's JSON fields (contract.md, "The secret").
const (
	fieldMchID       = "mch_id"
	fieldAPIKey      = "apiv2_key"
	fieldCert        = "apiclient_cert"
	fieldKey         = "apiclient_key"
	fieldP12         = "apiclient_p12"
	fieldP12Password = "apiclient_p12_password"
)

// ParseSecret reads the secret's SecretString and returns credentials that
// passed Credentials.Check(now).
//
// The JSON object holds mch_id (a string of digits; a JSON number is
// accepted too), apiv2_key, and either the PEM pair apiclient_cert and
// apiclient_key or apiclient_p12: the base64 (standard alphabet, padding
// optional, whitespace and line breaks ignored) of apiclient_cert.p12, with
// apiclient_p12_password (the mch_id when absent or empty). Giving both the
// PEM pair and apiclient_p12 is an error, since it is unclear which is
// meant. Other fields are ignored. Whitespace around mch_id and apiv2_key
// is ignored; PEM values pasted with literal "\n" sequences instead of line
// breaks are accepted.
//
// Every error is a *ConfigError naming the field ("secret.apiv2_key"); no
// error carries any part of a value.
func ParseSecret(secretString []byte, now time.Time) (*wxpay.Credentials, error) {
	if len(bytes.TrimSpace(secretString)) == 0 {
		return nil, &ConfigError{Field: "secret", Reason: "SecretString is empty"}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(secretString, &raw); err != nil || raw == nil {
		// json's messages can quote the input: report offsets only.
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, &ConfigError{Field: "secret", Reason: fmt.Sprintf("SecretString is not valid JSON (syntax error at byte %d)", syn.Offset)}
		}
		return nil, &ConfigError{Field: "secret", Reason: "SecretString is not a JSON object"}
	}
	f := fields(raw)

	mchID, err := f.required(fieldMchID, true)
	if err != nil {
		return nil, err
	}
	if !isDigits(mchID) || len(mchID) > 32 {
		return nil, &ConfigError{Field: "secret." + fieldMchID, Reason: "must be the merchant number (digits only)", Err: wxpay.ErrMchID}
	}
	apiKey, err := f.required(fieldAPIKey, false)
	if err != nil {
		return nil, err
	}
	if len(apiKey) != wxpay.APIKeyLength {
		return nil, &ConfigError{Field: "secret." + fieldAPIKey, Reason: fmt.Sprintf("must be %d bytes, got %d", wxpay.APIKeyLength, len(apiKey)), Err: wxpay.ErrAPIKey}
	}

	certPEM, hasCert, err := f.optional(fieldCert)
	if err != nil {
		return nil, err
	}
	keyPEM, hasKey, err := f.optional(fieldKey)
	if err != nil {
		return nil, err
	}
	p12, hasP12, err := f.optional(fieldP12)
	if err != nil {
		return nil, err
	}
	password, hasPassword, err := f.optional(fieldP12Password)
	if err != nil {
		return nil, err
	}

	creds := &wxpay.Credentials{MchID: mchID, APIKey: apiKey}
	var certField, keyField string
	switch {
	case hasP12 && (hasCert || hasKey):
		return nil, &ConfigError{Field: "secret." + fieldP12, Reason: "give either apiclient_cert with apiclient_key (PEM) or apiclient_p12, not both"}
	case hasP12:
		certField, keyField = fieldP12, fieldP12
		der, cerr := decodeP12(p12)
		if cerr != nil {
			return nil, cerr
		}
		if !hasPassword {
			password = mchID
		}
		cert, lerr := wxpay.LoadPKCS12(der, password)
		if lerr != nil {
			ce := credError(lerr, certField, keyField, hasPassword)
			if errors.Is(lerr, wxpay.ErrCertificate) {
				// The decoder's ASN.1 details stay in Err.
				ce.Reason = "not a readable PKCS#12 file"
			}
			return nil, ce
		}
		creds.Certificate = cert
	case hasCert || hasKey:
		certField, keyField = fieldCert, fieldKey
		if !hasCert {
			return nil, &ConfigError{Field: "secret." + fieldCert, Reason: "missing: apiclient_key is given without its certificate"}
		}
		if !hasKey {
			return nil, &ConfigError{Field: "secret." + fieldKey, Reason: "missing: apiclient_cert is given without its private key"}
		}
		cert, lerr := wxpay.LoadPEM(unescapeNewlines(certPEM), unescapeNewlines(keyPEM))
		if lerr != nil {
			return nil, credError(lerr, certField, keyField, false)
		}
		creds.Certificate = cert
	default:
		return nil, &ConfigError{Field: "secret." + fieldCert, Reason: "missing: give apiclient_cert and apiclient_key (PEM), or apiclient_p12 (base64 PKCS#12)"}
	}
	if err := creds.Check(now); err != nil {
		return nil, credError(err, certField, keyField, hasPassword)
	}
	return creds, nil
}

// credError names the field behind one of wxpay's credential errors.
func credError(err error, certField, keyField string, hasPassword bool) *ConfigError {
	field := certField
	reason := strings.TrimPrefix(err.Error(), "wxpay: ")
	switch {
	case errors.Is(err, wxpay.ErrMchID):
		field = fieldMchID
	case errors.Is(err, wxpay.ErrAPIKey):
		field = fieldAPIKey
	case errors.Is(err, wxpay.ErrP12Password):
		field = fieldP12Password
		if !hasPassword {
			reason += " (apiclient_p12_password is not set, so the mch_id was tried)"
		}
	case errors.Is(err, wxpay.ErrPrivateKey), errors.Is(err, wxpay.ErrKeyMismatch):
		field = keyField
	case errors.Is(err, wxpay.ErrWrongMerchant):
		reason += ", not to secret.mch_id"
	}
	return &ConfigError{Field: "secret." + field, Reason: reason, Err: err}
}

// decodeP12 decodes apiclient_p12's base64, ignoring whitespace.
func decodeP12(s string) ([]byte, *ConfigError) {
	if strings.Contains(s, "-----BEGIN") {
		return nil, &ConfigError{Field: "secret." + fieldP12, Reason: "holds PEM, not base64 PKCS#12: put PEM in apiclient_cert and apiclient_key instead"}
	}
	compact := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	der, err := base64.StdEncoding.DecodeString(compact)
	if err != nil {
		der, err = base64.RawStdEncoding.DecodeString(compact)
	}
	if err != nil || len(der) == 0 {
		// base64's error names an offset only, but there is no need.
		return nil, &ConfigError{Field: "secret." + fieldP12, Reason: "not valid base64 (standard alphabet)"}
	}
	return der, nil
}

// unescapeNewlines turns a PEM pasted with literal \n sequences into
// lines.
func unescapeNewlines(s string) []byte {
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	return []byte(s)
}

// fields reads the secret's JSON members one by one, so that a wrong type
// names its field and echoes nothing.
type fields map[string]json.RawMessage

// optional returns a string member. Absent, null and "" (or only
// whitespace) are all absent.
func (f fields) optional(name string) (string, bool, *ConfigError) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, &ConfigError{Field: "secret." + name, Reason: "must be a JSON string"}
	}
	if strings.TrimSpace(s) == "" {
		return "", false, nil
	}
	return s, true, nil
}

// required returns a string member that must be present and not empty,
// without surrounding whitespace. With number, a JSON number of digits is
// taken as its literal text (an mch_id typed as a number).
func (f fields) required(name string, number bool) (string, *ConfigError) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return "", &ConfigError{Field: "secret." + name, Reason: "missing"}
	}
	if number && len(raw) > 0 && raw[0] >= '0' && raw[0] <= '9' {
		if isDigits(string(raw)) {
			return string(raw), nil
		}
		return "", &ConfigError{Field: "secret." + name, Reason: "must be a JSON string of digits"}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &ConfigError{Field: "secret." + name, Reason: "must be a JSON string"}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", &ConfigError{Field: "secret." + name, Reason: "empty"}
	}
	return s, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
