package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
	"github.com/redpacket-lambda/wxredpack/internal/runtimeapi"
	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// TestBootstrap runs this function's bootstrap, built as for Lambda,
// under the Runtime API stand-in, with the environment the other
// functions have: the simulator, the secret in a Secrets Manager fake and
// the ledger in moto_server's DynamoDB. A red packet WeChat paid but
// answered SYSTEMERROR, recorded UNKNOWN, is SENT after a scheduled pass;
// a direct invoke naming it shows it.
func TestBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bootstrap; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := runtimeapi.Build(ctx, "../..", "./functions/reconcile", dir)
	if err != nil {
		t.Fatal(err)
	}

	sim := wxpaytest.NewServer()
	t.Cleanup(sim.Close)
	sm := smtest.NewServer()
	t.Cleanup(sm.Close)
	sm.Put("wxpay/reconcile", string(sim.Merchant().SecretJSON()))
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, sim.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	dynamoURL := mototest.Start(t)
	_, store := ledgertest.DynamoDBTable(t, dynamoURL, "reconcile-bootstrap")

	// Paid at WeChat, answered SYSTEMERROR, recorded UNKNOWN ten minutes ago.
	const billno = "RCBOOT0001"
	req := &wxpay.SendRequest{MchBillno: billno, WxAppID: "wx8888888888888888", SendName: "天虹百货", ReOpenID: "oxTWIuXq2Z7fLk9sDdVbNcW4eR1t",
		TotalAmount: 188, TotalNum: 1, Wishing: "感谢您参加猜灯谜活动", ClientIP: "203.0.113.10", ActName: "猜灯谜抢红包活动", Remark: "猜越多得越多"}
	sim.FailBillno(billno, wxpaytest.Fault{Kind: wxpaytest.FaultSystemErrorAfterPay})
	wx, err := sim.NewClient(func(c *wxpay.Config) { c.MaxAttempts = 1 })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wx.SendRedpack(ctx, req); wxpay.OutcomeOf(err) != wxpay.OutcomeUnknown {
		t.Fatalf("send: %v, want unknown", err)
	}
	mchID := sim.Merchant().MchID
	first := time.Now().Add(-10 * time.Minute)
	if err := store.Create(ctx, &ledger.Item{MchID: mchID, MchBillno: billno, API: "sendredpack", Fields: req.Fields(mchID),
		RecordedAt: first, LeaseOwner: "send", LeaseUntil: first.Add(30 * time.Second), Source: "direct"}); err != nil {
		t.Fatal(err)
	}
	if err := store.Settle(ctx, ledger.Key{MchID: mchID, MchBillno: billno}, ledger.Settlement{Owner: "send", State: ledger.Unknown,
		ErrCode: "SYSTEMERROR", Now: first.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}

	rt, err := runtimeapi.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	p, err := rt.StartProcess(bin, []string{
		"WXPAY_SECRET_ID=wxpay/reconcile",
		"WXPAY_LEDGER_TABLE=reconcile-bootstrap",
		"WXPAY_BASE_URL=" + sim.URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + sm.URL(),
		"AWS_ENDPOINT_URL_DYNAMODB=" + dynamoURL,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"SSL_CERT_FILE=" + caFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	invoke := func(payload string) map[string]any {
		t.Helper()
		r, err := rt.Invoke(ctx, []byte(payload), 30*time.Second)
		if err != nil || r.Err != nil {
			t.Fatalf("invoke %s: %v %v\n%s", payload, err, r.Err, p.Output())
		}
		var m map[string]any
		if err := json.Unmarshal(r.Payload, &m); err != nil {
			t.Fatalf("answer %s: %v", r.Payload, err)
		}
		return m
	}

	s := invoke(`{"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}`)
	if s["checked"] != 1.0 || s["settled"] != 1.0 || s["error"] != nil {
		t.Errorf("pass: %v, want 1 checked, 1 settled\n%s", s, p.Output())
	}
	it, err := store.Get(ctx, ledger.Key{MchID: mchID, MchBillno: billno})
	if err != nil || it.State != ledger.Sent || it.Status != wxpay.StatusSent {
		t.Errorf("item %+v, %v; want SENT", it, err)
	}
	s = invoke(`{"mch_billno": "` + billno + `"}`)
	if item, _ := s["item"].(map[string]any); item["state"] != "SENT" {
		t.Errorf("check: %v", s)
	}
	if n := sim.Payments(billno); n != 1 {
		t.Errorf("paid %d times", n)
	}
	out := p.Output()
	if !strings.Contains(out, `"function":"reconcile"`) {
		t.Errorf("no invocation line:\n%s", out)
	}
	for _, secret := range []string{sim.Merchant().APIKey, "PRIVATE KEY"} {
		if strings.Contains(out, secret) {
			t.Errorf("the output holds a secret")
		}
	}
}
