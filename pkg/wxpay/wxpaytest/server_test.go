package wxpaytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

func TestStartIsFast(t *testing.T) {
	// The process's first keyRingSize merchants each generate an RSA 2048
	// key, which the ring exists to pay for once: under the race detector
	// on a loaded machine one can take more than a second. What must stay
	// well under a second is a server on the filled ring, as every server
	// after the first few is.
	for range keyRingSize {
		merchantKey()
	}
	begin := time.Now()
	s := start(t)
	took := time.Since(begin)
	t.Logf("NewServer took %v", took)
	if took > time.Second {
		t.Errorf("NewServer took %v, want well under a second", took)
	}
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") || s.BackupURL != "" {
		t.Errorf("URL %q BackupURL %q", s.URL, s.BackupURL)
	}
	m := s.Merchant()
	if m.MchID != DefaultMchID || len(m.APIKey) != wxpay.APIKeyLength {
		t.Errorf("merchant %s key of %d bytes", m.MchID, len(m.APIKey))
	}
	if !wxpay.CertificateMatchesMchID(m.Certificate, DefaultMchID) {
		t.Errorf("merchant certificate subject %s", m.Certificate.Subject)
	}
	if got := m.Certificate.Subject.Organization; len(got) != 1 || got[0] != "Tenpay.com" {
		t.Errorf("merchant certificate O = %v", got)
	}
}

var (
	listIDPattern  = regexp.MustCompile(`^1000041701[0-9]{21}$`)
	packagePattern = regexp.MustCompile(`^sendid=[0-9a-f]{32}&ver=8&sign=[0-9a-f]{64}&mchid=([0-9]+)&appid=(wx[0-9a-z]+)$`)
)

func TestSendEachAPI(t *testing.T) {
	clock := NewClock(time.Date(2025, 2, 10, 1, 30, 0, 0, time.UTC)) // 09:30 in China
	s := start(t, WithClock(clock.Now))
	c, _ := client(t, s)
	ctx := context.Background()

	res, err := c.SendRedpack(ctx, sendReq("B1", "openid1", 1000))
	if err != nil {
		t.Fatalf("SendRedpack: %v", err)
	}
	if res.MchBillno != "B1" || res.MchID != DefaultMchID || res.ReOpenID != "openid1" || res.TotalAmount != 1000 ||
		res.WxAppID != "wx8888888888888888" || !listIDPattern.MatchString(res.SendListID) || res.Attempts != 1 {
		t.Errorf("SendRedpack result %+v", res)
	}
	if !strings.Contains(res.SendListID, "20250210") {
		t.Errorf("send_listid %s does not carry the China date", res.SendListID)
	}

	mini, err := c.SendMiniProgramHB(ctx, miniReq("M1", "openid2", 888))
	if err != nil {
		t.Fatalf("SendMiniProgramHB: %v", err)
	}
	m := packagePattern.FindStringSubmatch(mini.Package)
	if m == nil || m[1] != DefaultMchID || m[2] != "wxd678efh567hg6787" {
		t.Errorf("package %q", mini.Package)
	}
	if mini.JSAPI.Package != url.QueryEscape(mini.Package) && mini.JSAPI.Package != wxpay.EncodeURIComponent(mini.Package) {
		t.Errorf("jsapi package %q", mini.JSAPI.Package)
	}

	group, err := c.SendGroupRedpack(ctx, groupReq("G1", "openid3", 900, 3))
	if err != nil {
		t.Fatalf("SendGroupRedpack: %v", err)
	}
	if group.TotalAmount != 900 {
		t.Errorf("group result %+v", group)
	}

	for _, b := range []struct {
		billno, api, hbType string
		fen                 int64
	}{{"B1", "sendredpack", "NORMAL", 1000}, {"M1", "sendminiprogramhb", "NORMAL", 888}, {"G1", "sendgroupredpack", "GROUP", 900}} {
		rec, ok := s.Record(b.billno)
		if !ok || rec.API != b.api || rec.HBType != b.hbType || rec.TotalAmount != b.fen || rec.Status != wxpay.StatusSent || !rec.SendTime.Equal(clock.Now()) {
			t.Errorf("record %s = %+v, %v", b.billno, rec, ok)
		}
		if n := s.Payments(b.billno); n != 1 {
			t.Errorf("Payments(%s) = %d", b.billno, n)
		}
	}
	if got, want := s.Balance(), int64(DefaultBalance-1000-888-900); got != want {
		t.Errorf("balance %d, want %d", got, want)
	}
	if s.TotalPayments() != 3 || len(s.Records()) != 3 || s.Records()[0].MchBillno != "B1" {
		t.Errorf("TotalPayments %d, Records %d", s.TotalPayments(), len(s.Records()))
	}
	for path, n := range map[string]int{wxpay.PathSendRedpack: 1, wxpay.PathSendMiniProgramHB: 1, wxpay.PathSendGroupRedpack: 1, wxpay.PathGetHBInfo: 0} {
		if got := s.RequestsTo(path); got != n {
			t.Errorf("RequestsTo(%s) = %d, want %d", path, got, n)
		}
	}
	if s.Requests() != 3 || s.RequestsFor("M1") != 1 {
		t.Errorf("Requests %d, RequestsFor(M1) %d", s.Requests(), s.RequestsFor("M1"))
	}
}

// The success answer as WeChat writes it: CDATA strings, plain numbers, no
// sign.
func TestSuccessAnswerShape(t *testing.T) {
	s := start(t)
	m := s.Merchant()
	rc := rawClient(t, s, m.TLSCertificate())
	status, body, hdr := post(t, rc, s.URL+wxpay.PathSendRedpack, signed(t, sendParams(s, "SHAPE1"), m.APIKey))
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, content type %q", status, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		"<xml>\n<return_code><![CDATA[SUCCESS]]></return_code>\n<return_msg><![CDATA[发放成功]]></return_msg>\n<result_code><![CDATA[SUCCESS]]></result_code>\n<err_code><![CDATA[SUCCESS]]></err_code>\n<err_code_des><![CDATA[发放成功]]></err_code_des>\n",
		"<mch_billno><![CDATA[SHAPE1]]></mch_billno>", "<mch_id><![CDATA[1900000109]]></mch_id>",
		"<total_amount>1000</total_amount>", "<send_listid><![CDATA[1000041701",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("answer lacks %q:\n%s", want, body)
		}
	}
	if bytes.Contains(body, []byte("<sign>")) || bytes.Contains(body, []byte("<package>")) {
		t.Errorf("sendredpack answer carries sign or package:\n%s", body)
	}
}

func TestDeterministic(t *testing.T) {
	run := func() (string, string) {
		clock := NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
		s := start(t, WithClock(clock.Now), WithRand(rand.NewChaCha8([32]byte{1, 2, 3})))
		c, _ := client(t, s)
		res, err := c.SendMiniProgramHB(context.Background(), miniReq("DET1", "openid", 100))
		if err != nil {
			t.Fatal(err)
		}
		return res.SendListID, res.Package
	}
	id1, pkg1 := run()
	id2, pkg2 := run()
	if id1 != id2 || pkg1 != pkg2 {
		t.Errorf("two seeded servers differ: %s %s / %s %s", id1, pkg1, id2, pkg2)
	}
}

func TestCredentialFiles(t *testing.T) {
	s := start(t, WithMchID("1234567890"), WithBackup())
	dir := filepath.Join(t.TempDir(), "sim")
	files, err := s.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m := s.Merchant()
	if !bytes.Equal(read(files.CA), s.CAPEM()) {
		t.Error("ca.pem is not CAPEM")
	}
	if fi, err := os.Stat(files.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}

	// PEM, legacy PKCS#12 and modern PKCS#12 all load as the client loads
	// them, and all authenticate.
	pemCert, err := wxpay.LoadPEM(read(files.Cert), read(files.Key))
	if err != nil {
		t.Fatalf("LoadPEM: %v", err)
	}
	legacy, err := wxpay.LoadPKCS12(read(files.P12Legacy), "1234567890")
	if err != nil {
		t.Fatalf("LoadPKCS12 legacy: %v", err)
	}
	modern, err := wxpay.LoadPKCS12(read(files.P12Modern), "1234567890")
	if err != nil {
		t.Fatalf("LoadPKCS12 modern: %v", err)
	}
	if _, err := wxpay.LoadPKCS12(m.P12Legacy, "wrong"); err != wxpay.ErrP12Password {
		t.Errorf("wrong password: %v", err)
	}
	for name, cert := range map[string]tls.Certificate{"pem": pemCert, "legacy": legacy, "modern": modern} {
		c, _ := client(t, s, func(cfg *wxpay.Config) {
			cfg.Credentials = &wxpay.Credentials{MchID: "1234567890", APIKey: m.APIKey, Certificate: cert}
		})
		if _, err := c.SendRedpack(context.Background(), sendReq("F"+name, "openid", 100)); err != nil {
			t.Errorf("%s credentials: %v", name, err)
		}
	}

	var secret map[string]string
	if err := json.Unmarshal(read(files.Secret), &secret); err != nil {
		t.Fatal(err)
	}
	if secret["mch_id"] != "1234567890" || secret["apiv2_key"] != m.APIKey ||
		secret["apiclient_cert"] != string(m.CertPEM) || secret["apiclient_key"] != string(m.KeyPEM) || len(secret) != 4 {
		t.Errorf("secret.json fields %v", keys(secret))
	}
	var p12 map[string]string
	if err := json.Unmarshal(read(files.SecretP12), &p12); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(p12["apiclient_p12"])
	if err != nil || !bytes.Equal(der, m.P12Legacy) || p12["mch_id"] != "1234567890" {
		t.Errorf("secret_p12.json: %v", err)
	}
	env := string(read(files.Env))
	for _, line := range []string{"WXPAY_BASE_URL=" + s.URL, "WXPAY_BACKUP_BASE_URL=" + s.BackupURL, "SSL_CERT_FILE=" + files.CA} {
		if !strings.Contains(env, line+"\n") {
			t.Errorf("env file lacks %q:\n%s", line, env)
		}
	}

	// A server started from the directory keeps the CA and the merchant.
	cfg, err := LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	s2, err := Start(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !bytes.Equal(s2.CAPEM(), s.CAPEM()) || s2.Merchant().APIKey != m.APIKey || !bytes.Equal(s2.Merchant().CertPEM, m.CertPEM) {
		t.Error("restarted server changed its CA or merchant")
	}
	c2, _ := client(t, s2, func(cfg *wxpay.Config) { cfg.RootCAs = s.RootCAs(); cfg.Credentials = s.Credentials() })
	if _, err := c2.SendRedpack(context.Background(), sendReq("RESTART1", "openid", 100)); err != nil {
		t.Errorf("old client against restarted server: %v", err)
	}
	if _, err := LoadDir(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadDir of an empty directory: %v", err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNewMerchantStandalone(t *testing.T) {
	m, err := NewMerchant("1900000109", nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := m.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Check(time.Now()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if strings.Contains(creds.String(), m.APIKey) {
		t.Error("credentials print the key")
	}
}

func TestStartErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"mch_id":      {MchID: "abc"},
		"key":         {APIKey: "short"},
		"addr":        {Addr: "256.0.0.1:0"},
		"merchant":    {Merchant: &MerchantFiles{}},
		"backup addr": {BackupAddr: "nonsense"},
	} {
		if s, err := Start(cfg); err == nil {
			s.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewServer did not panic")
		}
	}()
	NewServer(WithMchID("x"))
}
