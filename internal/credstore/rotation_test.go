package credstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// rotationRig is a store reading a secret from the Secrets Manager fake,
// through the real SDK, for a merchant served by the WeChat Pay simulator.
type rotationRig struct {
	sim   *wxpaytest.Server
	sm    *smtest.Server
	store *Store
	mu    sync.Mutex
	waits []time.Duration
}

func newRotationRig(t *testing.T) *rotationRig {
	t.Helper()
	r := &rotationRig{sim: wxpaytest.NewServer(), sm: newSMServer(t)}
	t.Cleanup(r.sim.Close)
	r.sm.Put("prod/wxpay", string(r.sim.Merchant().SecretJSON()))
	r.store = New(Config{
		SecretID:       "prod/wxpay",
		SecretsManager: sdkClient(r.sm.URL()),
		NewClient: func(c *wxpay.Credentials) (*wxpay.Client, error) {
			cfg := r.sim.ClientConfig() // base URL and roots of the simulator
			cfg.Credentials = c         // credentials from the secret
			return wxpay.NewClient(cfg)
		},
		Logger: discard(),
		Sleep: func(_ context.Context, d time.Duration) error {
			r.mu.Lock()
			r.waits = append(r.waits, d)
			r.mu.Unlock()
			return nil
		},
	})
	return r
}

func (r *rotationRig) send(t *testing.T, billno string) (*wxpay.SendResult, error) {
	t.Helper()
	req := &wxpay.SendRequest{
		MchBillno: billno, WxAppID: "wx8888888888888888", SendName: "Shop", ReOpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		TotalAmount: 100, TotalNum: 1, Wishing: "Thanks", ClientIP: "192.168.0.1", ActName: "Launch", Remark: "Enjoy",
	}
	return Do(context.Background(), r.store, func(c *wxpay.Client) (*wxpay.SendResult, error) {
		return c.SendRedpack(context.Background(), req) // the same request, so the same billno, on a retry
	})
}

func TestRotationCAError(t *testing.T) {
	r := newRotationRig(t)
	// Warm: one secret fetch and one TLS handshake for two red packets.
	for _, billno := range []string{"R1", "R2"} {
		if _, err := r.send(t, billno); err != nil {
			t.Fatalf("send %s: %v", billno, err)
		}
	}
	if r.sm.Calls() != 1 || r.sim.Handshakes() != 1 {
		t.Fatalf("warm: %d secret fetches, %d handshakes; want 1 and 1", r.sm.Calls(), r.sim.Handshakes())
	}

	// The merchant rotates its certificate at WeChat (the old one is
	// revoked) and stores the new one in the secret. The store still
	// holds the old one: WeChat answers CA_ERROR once.
	next := r.sim.Rotate(wxpaytest.RotateOptions{RevokeOld: true, KeepAPIKey: true})
	r.sm.Put("prod/wxpay", string(next.SecretJSON()))

	res, err := r.send(t, "R3")
	if err != nil {
		t.Fatalf("send after rotation: %v", err)
	}
	if res.MchBillno != "R3" {
		t.Errorf("result for billno %q", res.MchBillno)
	}
	if got := r.sim.RequestsFor("R3"); got != 2 {
		t.Errorf("requests for R3 = %d, want 2: CA_ERROR, then the retry with the same billno", got)
	}
	if got := r.sim.Payments("R3"); got != 1 {
		t.Errorf("payments for R3 = %d, want 1", got)
	}
	if r.sm.Calls() != 2 {
		t.Errorf("secret fetches = %d, want 2 (one forced refresh)", r.sm.Calls())
	}
	c, _ := r.store.Client(context.Background())
	if c == nil || len(r.waits) != 1 || r.waits[0] <= 0 || r.waits[0] > wxpay.MinRetryInterval {
		t.Errorf("retry waits %v, want one of at most %v", r.waits, wxpay.MinRetryInterval)
	}

	// The new client stays: warm again, no fetch and no new handshake.
	hs := r.sim.Handshakes()
	if _, err := r.send(t, "R4"); err != nil {
		t.Fatal(err)
	}
	if r.sm.Calls() != 2 || r.sim.Handshakes() != hs {
		t.Errorf("after rotation: %d fetches, %d handshakes (was %d)", r.sm.Calls(), r.sim.Handshakes(), hs)
	}
}

func TestRotationSignError(t *testing.T) {
	r := newRotationRig(t)
	if _, err := r.send(t, "S1"); err != nil {
		t.Fatal(err)
	}
	// Only the APIv2 key changes: the old one signs, WeChat answers
	// SIGN_ERROR.
	next := r.sim.Rotate(wxpaytest.RotateOptions{KeepCertificate: true})
	r.sm.Put("prod/wxpay", string(next.SecretJSON()))
	res, err := r.send(t, "S2")
	if err != nil || res.MchBillno != "S2" {
		t.Fatalf("send after key rotation: %v, %v", res, err)
	}
	if r.sim.RequestsFor("S2") != 2 || r.sim.Payments("S2") != 1 || r.sm.Calls() != 2 {
		t.Errorf("requests %d, payments %d, fetches %d; want 2, 1, 2", r.sim.RequestsFor("S2"), r.sim.Payments("S2"), r.sm.Calls())
	}
}

func TestRotationNotYetInSecret(t *testing.T) {
	r := newRotationRig(t)
	if _, err := r.send(t, "N1"); err != nil {
		t.Fatal(err)
	}
	// Rotated at WeChat, but the secret still holds the old key: the
	// refusal stands, after one refresh and no second request.
	r.sim.Rotate(wxpaytest.RotateOptions{KeepCertificate: true})
	_, err := r.send(t, "N2")
	var we *wxpay.Error
	if !errors.As(err, &we) || we.Code != "SIGN_ERROR" || we.MchBillno != "N2" {
		t.Fatalf("send = %v, want WeChat's SIGN_ERROR unchanged", err)
	}
	if r.sim.RequestsFor("N2") != 1 || r.sm.Calls() != 2 {
		t.Errorf("requests %d, fetches %d; want 1 and 2", r.sim.RequestsFor("N2"), r.sm.Calls())
	}
	// Not a Secrets Manager call per refused request.
	_, _ = r.send(t, "N3")
	if r.sm.Calls() != 2 {
		t.Errorf("fetches = %d, want still 2 within RetryAfter", r.sm.Calls())
	}
}

// TestSimulatorSecretsParse: the secrets the simulator writes for local
// runs (PEM pair; WeChat's legacy PKCS#12) load.
func TestSimulatorSecretsParse(t *testing.T) {
	sim := wxpaytest.NewServer()
	defer sim.Close()
	m := sim.Merchant()
	for name, secret := range map[string][]byte{"pem": m.SecretJSON(), "p12": m.SecretP12JSON()} {
		creds, err := ParseSecret(secret, time.Now())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if creds.MchID != m.MchID || creds.APIKey != m.APIKey || !creds.Certificate.Leaf.Equal(m.Certificate) {
			t.Errorf("%s: credentials differ from the simulator's", name)
		}
	}
}
