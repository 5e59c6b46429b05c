package wxpaytest_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

func Example() {
	s := wxpaytest.NewServer()
	defer s.Close()

	c, err := s.NewClient(func(cfg *wxpay.Config) {
		// Tests do not wait out WeChat's one-second retry interval.
		cfg.Sleep = func(context.Context, time.Duration) error { return nil }
	})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()

	// The first answer is lost after WeChat paid; the client retries with
	// the same billno and gets the original red packet.
	s.FailNext(1, wxpaytest.Fault{Kind: wxpaytest.FaultSystemErrorAfterPay})
	res, err := c.SendMiniProgramHB(context.Background(), &wxpay.SendMiniRequest{
		MchBillno:   "10000098201411111234567890",
		WxAppID:     "wxd678efh567hg6787",
		SendName:    "天虹百货",
		ReOpenID:    "oxTWIuGaIt6gTKsQRLau2M0yL16E",
		TotalAmount: 888,
		TotalNum:    1,
		Wishing:     "恭喜发财",
		ActName:     "新年红包",
		Remark:      "新年快乐",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("attempts:", res.Attempts)
	fmt.Println("payments:", s.Payments(res.MchBillno))
	fmt.Println("package:", strings.HasPrefix(res.Package, "sendid="))
	fmt.Println("signType:", res.JSAPI.SignType)
	// Output:
	// attempts: 2
	// payments: 1
	// package: true
	// signType: MD5
}

func ExampleServer_FailBillno() {
	s := wxpaytest.NewServer(wxpaytest.WithBackup())
	defer s.Close()
	c, err := s.NewClient(func(cfg *wxpay.Config) {
		cfg.Sleep = func(context.Context, time.Duration) error { return nil }
	})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()

	// The connection drops after the payment is recorded: the client fails
	// over to the backup, which shares the ledger and answers the original
	// red packet.
	s.FailBillno("B20250101000001", wxpaytest.Fault{Kind: wxpaytest.FaultResetAfterLedger})
	res, err := c.SendRedpack(context.Background(), &wxpay.SendRequest{
		MchBillno: "B20250101000001", WxAppID: "wx8888888888888888", SendName: "天虹百货",
		ReOpenID: "oxTWIuGaIt6gTKsQRLau2M0yL16E", TotalAmount: 100, TotalNum: 1, Wishing: "感谢参与",
		ClientIP: "192.168.0.1", ActName: "周年庆", Remark: "快来抢",
	})
	fmt.Println(err, res.Attempts, s.Payments("B20250101000001"), s.BackupRequests())
	// Output: <nil> 2 1 1
}
