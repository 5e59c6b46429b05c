package credstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

func TestParseSecretValid(t *testing.T) {
	m := newMerchant(t, testMchID, certOpts{})
	mRSA := newMerchant(t, testMchID, certOpts{rsa: true})
	// Older WeChat certificates carry the mch_id in the OU.
	mOU := newMerchant(t, testMchID, certOpts{cn: "Tenpay.com merchant", ou: []string{testMchID}})

	tests := []struct {
		name   string
		secret string
		want   *merchant
	}{
		{"PEM PKCS#8 ECDSA", m.pemSecret(), m},
		{"PEM PKCS#1 RSA", mRSA.pemSecret(), mRSA},
		{"PEM with literal \\n", jsonString(map[string]string{
			"mch_id": m.mchID, "apiv2_key": m.apiKey,
			"apiclient_cert": strings.ReplaceAll(m.certPEM, "\n", `\n`),
			"apiclient_key":  strings.ReplaceAll(m.keyPEM, "\n", `\n`),
		}), m},
		{"mch_id as a JSON number, spaces around the key, extra fields", `{"mch_id": 1900000109, "apiv2_key": " ` + m.apiKey + `\n", "apiclient_cert": ` + jsonString(m.certPEM) + `, "apiclient_key": ` + jsonString(m.keyPEM) + `, "note": "rotated 2025", "apiclient_p12_password": null, "extra": {"a": [1]}}`, m},
		{"p12 legacy RC2, password defaults to mch_id", jsonString(map[string]string{
			"mch_id": m.mchID, "apiv2_key": m.apiKey, "apiclient_p12": b64(m.p12(t, pkcs12.LegacyRC2, m.mchID)),
		}), m},
		{"p12 legacy 3DES, explicit password", jsonString(map[string]string{
			"mch_id": m.mchID, "apiv2_key": m.apiKey, "apiclient_p12": b64(m.p12(t, pkcs12.LegacyDES, "s3cret pass")), "apiclient_p12_password": "s3cret pass",
		}), m},
		{"p12 modern AES, wrapped base64", jsonString(map[string]string{
			"mch_id": m.mchID, "apiv2_key": m.apiKey, "apiclient_p12": wrap64(b64(m.p12(t, pkcs12.Modern2023, m.mchID))) + "\n",
		}), m},
		{"p12 RSA legacy RC2, unpadded base64, empty password field", jsonString(map[string]string{
			"mch_id": m.mchID, "apiv2_key": mRSA.apiKey, "apiclient_p12": strings.TrimRight(b64(mRSA.p12(t, pkcs12.LegacyRC2, m.mchID)), "="), "apiclient_p12_password": "",
		}), &merchant{mchID: m.mchID, apiKey: mRSA.apiKey, cert: mRSA.cert}},
		{"mch_id in the OU", mOU.pemSecret(), mOU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := ParseSecret([]byte(tt.secret), testNow)
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			if creds.MchID != testMchID {
				t.Errorf("MchID = %q", creds.MchID)
			}
			if tt.want == nil {
				return
			}
			if creds.APIKey != tt.want.apiKey {
				t.Errorf("APIKey differs")
			}
			if creds.Certificate.Leaf == nil || !creds.Certificate.Leaf.Equal(tt.want.cert) {
				t.Errorf("certificate differs")
			}
			if s := creds.String(); strings.Contains(s, creds.APIKey) {
				t.Errorf("String leaks the key: %s", s)
			}
			if _, err := offlineClient(creds); err != nil {
				t.Errorf("wxpay.NewClient: %v", err)
			}
		})
	}
}

// badCase is a secret that must be refused with a *ConfigError naming
// field, whose text contains reason, and that leaks none of its values.
type badCase struct {
	name   string
	secret string
	field  string
	reason string
	leak   []string
}

func badSecrets(t *testing.T) []badCase {
	m := newMerchant(t, testMchID, certOpts{})
	other := newMerchant(t, testMchID, certOpts{})
	expired := newMerchant(t, testMchID, certOpts{notBefore: testNow.Add(-400 * 24 * time.Hour), notAfter: testNow.Add(-time.Hour)})
	future := newMerchant(t, testMchID, certOpts{notBefore: testNow.Add(time.Hour), notAfter: testNow.Add(400 * 24 * time.Hour)})
	foreign := newMerchant(t, "1900000999", certOpts{})

	p12RC2 := b64(m.p12(t, pkcs12.LegacyRC2, m.mchID))
	p12Pass := b64(m.p12(t, pkcs12.Modern2023, "correct horse"))
	p12Expired := b64(expired.p12(t, pkcs12.LegacyDES, m.mchID))
	p12Foreign := b64(foreign.p12(t, pkcs12.Modern2023, m.mchID))
	p12Other := b64(other.p12(t, pkcs12.LegacyRC2, "nobody knows"))

	pems := []string{m.certPEM, m.keyPEM, other.keyPEM, expired.certPEM, expired.keyPEM, future.certPEM, foreign.certPEM, foreign.keyPEM}
	leak := func(p12, password string) []string {
		return secretValues(m.apiKey, pems, p12, password)
	}
	// overridden returns the secret v with over's fields set, or removed
	// where over holds nil.
	overridden := func(v, over map[string]any) string {
		for k, x := range over {
			if x == nil {
				delete(v, k)
			} else {
				v[k] = x
			}
		}
		return jsonString(v)
	}
	pemJSON := func(over map[string]any) string {
		return overridden(map[string]any{"mch_id": m.mchID, "apiv2_key": m.apiKey, "apiclient_cert": m.certPEM, "apiclient_key": m.keyPEM}, over)
	}
	p12JSON := func(p12 string, over map[string]any) string {
		return overridden(map[string]any{"mch_id": m.mchID, "apiv2_key": m.apiKey, "apiclient_p12": p12}, over)
	}
	valid := pemJSON(nil)
	return []badCase{
		{"empty", "", "secret", "empty", leak("", "")},
		{"blank", " \n\t", "secret", "empty", leak("", "")},
		{"not JSON", "mch_id=" + m.mchID + "&apiv2_key=" + m.apiKey, "secret", "not valid JSON", leak("", "")},
		{"truncated JSON", valid[:len(valid)/2], "secret", "not valid JSON", leak("", "")},
		{"JSON with a stray character after the key", `{"mch_id": "1900000109", "apiv2_key": "` + m.apiKey + `" x}`, "secret", "byte", leak("", "")},
		{"JSON array", `["` + m.apiKey + `"]`, "secret", "not a JSON object", leak("", "")},
		{"JSON string", jsonString(m.apiKey), "secret", "not a JSON object", leak("", "")},
		{"JSON null", "null", "secret", "not a JSON object", leak("", "")},
		{"mch_id missing", pemJSON(map[string]any{"mch_id": nil}), "secret.mch_id", "missing", leak("", "")},
		{"mch_id empty", pemJSON(map[string]any{"mch_id": " "}), "secret.mch_id", "empty", leak("", "")},
		{"mch_id not digits", pemJSON(map[string]any{"mch_id": "mch-1900"}), "secret.mch_id", "digits", leak("", "")},
		{"mch_id a boolean", pemJSON(map[string]any{"mch_id": true}), "secret.mch_id", "JSON string", leak("", "")},
		{"mch_id a fraction", `{"mch_id": 1900000109.5}`, "secret.mch_id", "digits", leak("", "")},
		{"apiv2_key missing", pemJSON(map[string]any{"apiv2_key": nil}), "secret.apiv2_key", "missing", leak("", "")},
		{"apiv2_key empty", pemJSON(map[string]any{"apiv2_key": ""}), "secret.apiv2_key", "empty", leak("", "")},
		{"apiv2_key 31 bytes", pemJSON(map[string]any{"apiv2_key": m.apiKey[:31]}), "secret.apiv2_key", "32 bytes, got 31", leak("", "")},
		{"apiv2_key 33 bytes", pemJSON(map[string]any{"apiv2_key": m.apiKey + "x"}), "secret.apiv2_key", "32 bytes, got 33", leak("", "")},
		{"apiv2_key a number", pemJSON(map[string]any{"apiv2_key": 1234567890.5}), "secret.apiv2_key", "JSON string", leak("", "")},
		{"no certificate at all", pemJSON(map[string]any{"apiclient_cert": nil, "apiclient_key": nil}), "secret.apiclient_cert", "missing", leak("", "")},
		{"certificate without key", pemJSON(map[string]any{"apiclient_key": nil}), "secret.apiclient_key", "missing", leak("", "")},
		{"key empty", pemJSON(map[string]any{"apiclient_key": ""}), "secret.apiclient_key", "missing", leak("", "")},
		{"key without certificate", pemJSON(map[string]any{"apiclient_cert": nil}), "secret.apiclient_cert", "missing", leak("", "")},
		{"certificate a number", pemJSON(map[string]any{"apiclient_cert": 42}), "secret.apiclient_cert", "JSON string", leak("", "")},
		{"certificate not PEM", pemJSON(map[string]any{"apiclient_cert": "MIIB" + m.apiKey}), "secret.apiclient_cert", "no PEM CERTIFICATE", leak("", "")},
		{"certificate PEM corrupt", pemJSON(map[string]any{"apiclient_cert": corruptPEM(m.certPEM)}), "secret.apiclient_cert", "certificate unusable", leak("", "")},
		{"certificate and key swapped", pemJSON(map[string]any{"apiclient_cert": m.keyPEM, "apiclient_key": m.certPEM}), "secret.apiclient_cert", "no PEM CERTIFICATE", leak("", "")},
		{"key not PEM", pemJSON(map[string]any{"apiclient_key": "not a key " + m.apiKey}), "secret.apiclient_key", "private key unusable", leak("", "")},
		{"key PEM corrupt", pemJSON(map[string]any{"apiclient_key": corruptPEM(m.keyPEM)}), "secret.apiclient_key", "private key unusable", leak("", "")},
		{"key of another certificate", pemJSON(map[string]any{"apiclient_key": other.keyPEM}), "secret.apiclient_key", "does not match", leak("", "")},
		{"certificate expired", pemJSON(map[string]any{"apiclient_cert": expired.certPEM, "apiclient_key": expired.keyPEM}), "secret.apiclient_cert", "expired", leak("", "")},
		{"certificate not yet valid", pemJSON(map[string]any{"apiclient_cert": future.certPEM, "apiclient_key": future.keyPEM}), "secret.apiclient_cert", "not yet valid", leak("", "")},
		{"certificate of another mch_id", pemJSON(map[string]any{"apiclient_cert": foreign.certPEM, "apiclient_key": foreign.keyPEM}), "secret.apiclient_cert", "another mch_id", leak("", "")},
		{"both PEM and p12", pemJSON(map[string]any{"apiclient_p12": p12RC2}), "secret.apiclient_p12", "not both", leak(p12RC2, "")},
		{"p12 not base64", p12JSON("%%%"+p12RC2[10:40]+"%%%", nil), "secret.apiclient_p12", "base64", leak(p12RC2, "")},
		{"p12 holding PEM", p12JSON(m.certPEM+m.keyPEM, nil), "secret.apiclient_p12", "PEM", leak("", "")},
		{"p12 not PKCS#12", p12JSON(b64([]byte("this is not a PKCS#12 file at all "+m.apiKey)), nil), "secret.apiclient_p12", "PKCS#12", leak("", "")},
		{"p12 truncated", p12JSON(p12RC2[:len(p12RC2)/2], nil), "secret.apiclient_p12", "", leak(p12RC2, "")},
		{"p12 wrong password", p12JSON(p12Pass, map[string]any{"apiclient_p12_password": "battery staple"}), "secret.apiclient_p12_password", "password incorrect", leak(p12Pass, "battery staple")},
		{"p12 password not the mch_id", p12JSON(p12Other, nil), "secret.apiclient_p12_password", "mch_id was tried", leak(p12Other, "nobody knows")},
		{"p12 password a number", p12JSON(p12Pass, map[string]any{"apiclient_p12_password": 1234}), "secret.apiclient_p12_password", "JSON string", leak(p12Pass, "")},
		{"p12 expired", p12JSON(p12Expired, nil), "secret.apiclient_p12", "expired", leak(p12Expired, "")},
		{"p12 of another mch_id", p12JSON(p12Foreign, nil), "secret.apiclient_p12", "another mch_id", leak(p12Foreign, "")},
		{"p12 with a short key", p12JSON(p12RC2, map[string]any{"apiv2_key": "short"}), "secret.apiv2_key", "got 5", leak(p12RC2, "")},
	}
}

// corruptPEM keeps the PEM armour but damages the DER inside.
func corruptPEM(p string) string {
	lines := strings.Split(p, "\n")
	if len(lines) > 2 {
		lines[1] = strings.Repeat("A", len(lines[1]))
	}
	return strings.Join(lines, "\n")
}

func TestParseSecretInvalid(t *testing.T) {
	for _, tt := range badSecrets(t) {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := ParseSecret([]byte(tt.secret), testNow)
			if err == nil {
				t.Fatalf("ParseSecret accepted it: %v", creds)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v, want *ConfigError", err, err)
			}
			if ce.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", ce.Field, tt.field, err)
			}
			if !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to mention %q", ce.Reason, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "configuration error: "+tt.field+": ") {
				t.Errorf("Error() = %q", err.Error())
			}
			if ce.Code() != "CONFIG_ERROR" || ce.Temporary() || ce.HTTPStatus() != 500 {
				t.Errorf("Code %q Temporary %v HTTPStatus %d", ce.Code(), ce.Temporary(), ce.HTTPStatus())
			}
			assertNoLeak(t, "error", errorTexts(err), tt.leak)
		})
	}
}

// TestBadSecretThroughStore: the same secrets, fetched by a store, give
// the same *ConfigError from Client and Do, and no log line leaks them.
func TestBadSecretThroughStore(t *testing.T) {
	for _, tt := range badSecrets(t) {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeSM(tt.secret)
			s, logs := newTestStore(t, fake, newClock(testNow))
			_, err := s.Client(context.Background())
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Client: %v, want a *ConfigError on %s", err, tt.field)
			}
			_, err = Do(context.Background(), s, func(*wxpay.Client) (int, error) {
				t.Error("fn called without a client")
				return 0, nil
			})
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Do: %v, want a *ConfigError on %s", err, tt.field)
			}
			if !strings.Contains(logs.String(), tt.field) {
				t.Errorf("log does not name %s:\n%s", tt.field, logs)
			}
			assertNoLeak(t, "error", errorTexts(err), tt.leak)
			assertNoLeak(t, "log", logs.String(), tt.leak)
		})
	}
}

// TestBadRotationKeepsServing: a secret rotated to something unusable is a
// failed refresh: the last good client stays, a warning names the field,
// and no log line leaks a value.
func TestBadRotationKeepsServing(t *testing.T) {
	good := newMerchant(t, testMchID, certOpts{}).pemSecret()
	for _, tt := range badSecrets(t) {
		if strings.TrimSpace(tt.secret) == "" {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeSM(good)
			clk := newClock(testNow)
			s, logs := newTestStore(t, fake, clk)
			c1, err := s.Client(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			fake.set(tt.secret)
			clk.Add(DefaultTTL + time.Second)
			c2, err := s.Client(context.Background())
			if err != nil || c2 != c1 {
				t.Fatalf("Client after a bad rotation = %p, %v; want the last good %p", c2, err, c1)
			}
			out := logs.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, tt.field) {
				t.Errorf("no warning naming %s:\n%s", tt.field, out)
			}
			assertNoLeak(t, "log", out, tt.leak)
		})
	}
}
