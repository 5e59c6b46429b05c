package wxpay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// TestEarlierUnknownOutcomeSticks: when a try may have paid and a later try
// of the same billno is refused, the call's outcome is unknown, never
// failed: a caller told "failed" would send again under a new billno.
func TestEarlierUnknownOutcomeSticks(t *testing.T) {
	cases := []struct {
		name   string
		faults []wxpaytest.Fault
	}{
		{"SYSTEMERROR after pay, then FREQ_LIMIT", []wxpaytest.Fault{{Kind: wxpaytest.FaultSystemErrorAfterPay}, {Kind: wxpaytest.FaultFreqLimit}, {Kind: wxpaytest.FaultFreqLimit}}},
		{"reset after pay, then CA_ERROR", []wxpaytest.Fault{{Kind: wxpaytest.FaultResetAfterLedger}, {Kind: wxpaytest.FaultErrCode, Code: "CA_ERROR"}}},
		{"timeout, then NOTENOUGH", []wxpaytest.Fault{{Kind: wxpaytest.FaultHTTP5xx, Status: 504}, {Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim := wxpaytest.NewServer()
			defer sim.Close()
			client, err := sim.NewClient(func(c *wxpay.Config) {
				c.Sleep = func(context.Context, time.Duration) error { return nil }
			})
			if err != nil {
				t.Fatal(err)
			}
			sim.FailBillno("STICKY1", tc.faults...)
			_, err = client.SendRedpack(context.Background(), &wxpay.SendRequest{
				MchBillno: "STICKY1", WxAppID: "wx8888888888888888", SendName: "shop", ReOpenID: "openid1",
				TotalAmount: 100, TotalNum: 1, Wishing: "w", ClientIP: "192.0.2.1", ActName: "a", Remark: "r",
			})
			var e *wxpay.Error
			if !errors.As(err, &e) || e.Outcome != wxpay.OutcomeUnknown || !e.Retryable {
				t.Fatalf("err = %v, want an unknown, retryable outcome", err)
			}
			if wxpay.IsCredentialError(err) {
				t.Error("IsCredentialError: a refresh and resend could pay twice")
			}
			if n := sim.Payments("STICKY1"); n > 1 {
				t.Errorf("payments = %d", n)
			}
			if sim.Requests() != sim.RequestsFor("STICKY1") || sim.Requests() < 2 {
				t.Errorf("requests %d, for the billno %d: every try must carry the billno", sim.Requests(), sim.RequestsFor("STICKY1"))
			}
		})
	}
}

// TestNotAttemptedAfterDeadline: a call whose deadline has already passed
// sends nothing and says so (failed, retryable), rather than unknown.
func TestNotAttemptedAfterDeadline(t *testing.T) {
	sim := wxpaytest.NewServer()
	defer sim.Close()
	client, err := sim.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = client.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: "B1", AppID: "wx8888888888888888"})
	var e *wxpay.Error
	if !errors.As(err, &e) || e.Code != wxpay.CodeNotAttempted || e.Outcome != wxpay.OutcomeFailed || !e.Retryable {
		t.Fatalf("err = %v, want NOT_ATTEMPTED failed retryable", err)
	}
	if sim.Requests() != 0 {
		t.Errorf("the simulator saw %d requests", sim.Requests())
	}
}
