package wxpaytest

import (
	"context"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

func TestIdempotentRepeat(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	ctx := context.Background()

	first, err := c.SendMiniProgramHB(ctx, miniReq("REP1", "openid", 500))
	if err != nil {
		t.Fatal(err)
	}
	balance := s.Balance()
	for range 3 {
		again, err := c.SendMiniProgramHB(ctx, miniReq("REP1", "openid", 500))
		if err != nil {
			t.Fatal(err)
		}
		if again.SendListID != first.SendListID || again.Package != first.Package {
			t.Errorf("repeat answered %s %s, first %s %s", again.SendListID, again.Package, first.SendListID, first.Package)
		}
	}
	if s.Payments("REP1") != 1 || s.Balance() != balance || s.RequestsFor("REP1") != 4 {
		t.Errorf("payments %d, balance %d (was %d), requests %d", s.Payments("REP1"), s.Balance(), balance, s.RequestsFor("REP1"))
	}
	// A repeat is answered even when the limits would now refuse it.
	s.SetBalance(0)
	if _, err := c.SendMiniProgramHB(ctx, miniReq("REP1", "openid", 500)); err != nil {
		t.Errorf("repeat with an empty balance: %v", err)
	}
}

func TestConflictingRepeat(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	ctx := context.Background()
	if _, err := c.SendRedpack(ctx, sendReq("CONF1", "openid", 1000)); err != nil {
		t.Fatal(err)
	}
	other := sendReq("CONF1", "openid", 1000)
	other.WxAppID = "wx9999999999999999"
	for name, send := range map[string]func() error{
		"openid": func() error { _, err := c.SendRedpack(ctx, sendReq("CONF1", "someone", 1000)); return err },
		"amount": func() error { _, err := c.SendRedpack(ctx, sendReq("CONF1", "openid", 1001)); return err },
		"appid":  func() error { _, err := c.SendRedpack(ctx, other); return err },
		"api":    func() error { _, err := c.SendMiniProgramHB(ctx, miniReq("CONF1", "openid", 1000)); return err },
	} {
		e := wxErr(t, send())
		if e.Code != "FATAL_ERROR" || e.Outcome != wxpay.OutcomeFailed || e.Attempts != 1 {
			t.Errorf("%s: %+v", name, e)
		}
	}
	if s.Payments("CONF1") != 1 {
		t.Errorf("payments %d", s.Payments("CONF1"))
	}
}

func TestLimits(t *testing.T) {
	day := time.Date(2025, 3, 1, 15, 0, 0, 0, time.UTC) // 23:00 in China
	for _, tc := range []struct {
		name   string
		limits Limits
		setup  func(s *Server)
		sends  []*wxpay.SendRequest // all but the last succeed
		code   string
	}{
		{"balance", Limits{}, func(s *Server) { s.SetBalance(999) },
			[]*wxpay.SendRequest{sendReq("L1", "u1", 1000)}, "NOTENOUGH"},
		{"balance runs out", Limits{Balance: 1500}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 1000), sendReq("L2", "u2", 1000)}, "NOTENOUGH"},
		{"user daily count", Limits{UserDailyCount: 2}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 100), sendReq("L2", "u1", 100), sendReq("L3", "u1", 100)}, "SENDNUM_LIMIT"},
		{"user daily amount", Limits{UserDailyAmount: 15000}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 10000), sendReq("L2", "u1", 5001)}, "RCVDAMOUNT_LIMIT"},
		{"merchant daily amount", Limits{MerchantDailyAmount: 2500}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 1000), sendReq("L2", "u2", 1000), sendReq("L3", "u3", 1000)}, "SENDAMOUNT_LIMIT"},
		{"amount above the merchant's maximum", Limits{MaxAmount: 5000}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 5000), sendReq("L2", "u1", 5001)}, "MONEY_LIMIT"},
		{"amount below the merchant's minimum", Limits{MinAmount: 500}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 499)}, "MONEY_LIMIT"},
		{"scene amount above", Limits{SceneMaxAmount: 30000}, nil,
			[]*wxpay.SendRequest{withScene(sendReq("L1", "u1", 30000)), withScene(sendReq("L2", "u2", 30001))}, "MONEY_LIMIT"},
		{"scene amount below", Limits{SceneMinAmount: 50}, nil,
			[]*wxpay.SendRequest{withScene(sendReq("L1", "u1", 50)), withScene(sendReq("L2", "u1", 49))}, "MONEY_LIMIT"},
		{"unlimited user count", Limits{UserDailyCount: -1}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 100), sendReq("L2", "u1", 100), sendReq("L3", "u1", 100), sendReq("L4", "u1", 100),
				sendReq("L5", "u1", 100), sendReq("L6", "u1", 100), sendReq("L7", "u1", 100), sendReq("L8", "u1", 100),
				sendReq("L9", "u1", 100), sendReq("L10", "u1", 100), sendReq("L11", "u1", 100), sendReq("L12", "u2", 100), sendReq("L13", "u2", 100)}, ""},
		{"default user count", Limits{}, nil,
			[]*wxpay.SendRequest{sendReq("L1", "u1", 100), sendReq("L2", "u1", 100), sendReq("L3", "u1", 100), sendReq("L4", "u1", 100),
				sendReq("L5", "u1", 100), sendReq("L6", "u1", 100), sendReq("L7", "u1", 100), sendReq("L8", "u1", 100),
				sendReq("L9", "u1", 100), sendReq("L10", "u1", 100), sendReq("L11", "u1", 100)}, "SENDNUM_LIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock(day)
			s := start(t, WithLimits(tc.limits), WithClock(clock.Now))
			if tc.setup != nil {
				tc.setup(s)
			}
			c, _ := client(t, s)
			ctx := context.Background()
			last := len(tc.sends) - 1
			if tc.code == "" {
				last = len(tc.sends)
			}
			for _, r := range tc.sends[:last] {
				if _, err := c.SendRedpack(ctx, r); err != nil {
					t.Fatalf("%s: %v", r.MchBillno, err)
				}
			}
			if tc.code == "" {
				return
			}
			r := tc.sends[last]
			balance := s.Balance()
			_, err := c.SendRedpack(ctx, r)
			e := wxErr(t, err)
			if e.Code != tc.code || e.Outcome != wxpay.OutcomeFailed || e.Retryable || e.Attempts != 1 {
				t.Errorf("error %+v, want failed %s", e, tc.code)
			}
			if s.Payments(r.MchBillno) != 0 || s.Balance() != balance {
				t.Error("a refused red packet moved money")
			}
			if _, ok := s.Record(r.MchBillno); ok {
				t.Error("a refused red packet was recorded")
			}
			// The refusal recorded nothing: the same billno pays once the
			// day (China time) has turned and the balance is topped up.
			clock.Advance(time.Hour + time.Minute)
			s.SetBalance(DefaultBalance)
			s.SetLimits(Limits{})
			if _, err := c.SendRedpack(ctx, r); err != nil {
				t.Errorf("retry of the refused billno: %v", err)
			} else if s.Payments(r.MchBillno) != 1 {
				t.Errorf("payments %d", s.Payments(r.MchBillno))
			}
		})
	}
}

func withScene(r *wxpay.SendRequest) *wxpay.SendRequest {
	r.SceneID = "PRODUCT_2"
	return r
}

// The default per-scene range is 30 to 499900 fen.
func TestSceneAmountLimits(t *testing.T) {
	// The client refuses amounts outside WeChat's absolute bounds (30 to
	// 499900 fen) before sending; a merchant's narrower product settings
	// are the simulator's to enforce.
	s := start(t, WithLimits(Limits{UserDailyAmount: -1, SceneMinAmount: 50, SceneMaxAmount: 300000}))
	c, _ := client(t, s)
	ctx := context.Background()
	for _, tc := range []struct {
		fen  int64
		code string
	}{{49, "MONEY_LIMIT"}, {50, ""}, {300000, ""}, {300001, "MONEY_LIMIT"}} {
		_, err := c.SendRedpack(ctx, withScene(sendReq(billnoN("SC", int(tc.fen%10000)), billnoN("u", int(tc.fen%10000)), tc.fen)))
		if tc.code == "" && err != nil || tc.code != "" && wxErr(t, err).Code != tc.code {
			t.Errorf("%d fen: %v", tc.fen, err)
		}
	}
	if DefaultSceneMinAmount != 30 || DefaultSceneMaxAmount != 499900 {
		t.Errorf("default scene bounds %d..%d, want WeChat's 30..499900", DefaultSceneMinAmount, DefaultSceneMaxAmount)
	}
}

func TestDailyLimitsFollowChinaTime(t *testing.T) {
	clock := NewClock(time.Date(2025, 3, 1, 15, 59, 0, 0, time.UTC)) // 23:59 in China
	s := start(t, WithLimits(Limits{UserDailyCount: 1}), WithClock(clock.Now))
	c, _ := client(t, s)
	ctx := context.Background()
	if _, err := c.SendRedpack(ctx, sendReq("D1", "u1", 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendRedpack(ctx, sendReq("D2", "u1", 100)); wxErr(t, err).Code != "SENDNUM_LIMIT" {
		t.Fatalf("second on the same day: %v", err)
	}
	clock.Advance(time.Minute) // 00:00 in China, still March 1 in UTC
	if _, err := c.SendRedpack(ctx, sendReq("D2", "u1", 100)); err != nil {
		t.Errorf("after midnight in China: %v", err)
	}
}

func TestFreqLimit(t *testing.T) {
	clock := NewClock(time.Date(2025, 3, 1, 4, 0, 0, 0, time.UTC))
	s := start(t, WithLimits(Limits{RequestsPerSecond: 2}), WithClock(clock.Now))
	c, sl := client(t, s)
	ctx := context.Background()
	for i := range 2 {
		if _, err := c.SendRedpack(ctx, sendReq(billnoN("FQ", i), "u"+billnoN("", i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	// The third request of the second is refused; the client backs off
	// (the fake sleep moves the clock on) and its retry, same billno,
	// passes.
	sl.clock = clock
	res, err := c.SendRedpack(ctx, sendReq("FQ9", "u9", 100))
	if err != nil {
		t.Fatalf("after back-off: %v", err)
	}
	if res.Attempts != 2 || s.RequestsFor("FQ9") != 2 || s.Payments("FQ9") != 1 {
		t.Errorf("attempts %d, requests %d, payments %d", res.Attempts, s.RequestsFor("FQ9"), s.Payments("FQ9"))
	}
	if w := sl.Waits(); len(w) != 1 || w[0] < wxpay.MinRetryInterval {
		t.Errorf("waits %v", w)
	}
	// Without the clock moving, every try is refused: failed FREQ_LIMIT.
	sl.clock = nil
	c2, _ := client(t, s, func(cfg *wxpay.Config) { cfg.MaxAttempts = 2 })
	for i := range 3 {
		_, err = c2.SendRedpack(ctx, sendReq(billnoN("FR", i), "x"+billnoN("", i), 100))
	}
	if e := wxErr(t, err); e.Code != "FREQ_LIMIT" || e.Outcome != wxpay.OutcomeFailed {
		t.Errorf("error %+v", e)
	}
}

func TestQuery(t *testing.T) {
	clock := NewClock(time.Date(2025, 1, 28, 16, 0, 5, 0, time.UTC)) // Spring Festival, 00:00:05 in China
	s := start(t, WithClock(clock.Now))
	c, _ := client(t, s)
	ctx := context.Background()
	q := func(billno string) (*wxpay.QueryResult, error) {
		return c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: billno, AppID: "wx8888888888888888"})
	}

	_, err := q("QNONE")
	if e := wxErr(t, err); e.Code != "NOT_FOUND" || e.Outcome != wxpay.OutcomeNotFound || e.Message != "指定单号数据不存在" {
		t.Errorf("unknown billno: %+v", e)
	}

	sent, err := c.SendRedpack(ctx, sendReq("Q1", "openid1", 1000))
	if err != nil {
		t.Fatal(err)
	}
	res, err := q("Q1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != wxpay.StatusSent || res.DetailID != sent.SendListID || res.SendType != "API" || res.HBType != "NORMAL" ||
		res.TotalNum != 1 || res.TotalAmount != 1000 || res.SendTime != "2025-01-29 00:00:05" || res.MchBillno != "Q1" ||
		res.MchID != DefaultMchID || res.ActName != "猜灯谜抢红包活动" || res.Wishing == "" || res.Remark == "" || len(res.Receivers) != 0 {
		t.Errorf("sent record %+v", res)
	}

	// One receiver.
	clock.Advance(90 * time.Second)
	if err := s.Receive("Q1", "openid1", 0); err != nil {
		t.Fatal(err)
	}
	res, err = q("Q1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != wxpay.StatusReceived || len(res.Receivers) != 1 ||
		res.Receivers[0] != (wxpay.Receiver{OpenID: "openid1", Amount: 1000, RcvTime: "2025-01-29 00:01:35"}) {
		t.Errorf("received record %+v", res)
	}
	if err := s.Receive("Q1", "openid1", 0); err == nil {
		t.Error("received twice")
	}

	// A group red packet, received by several.
	if _, err := c.SendGroupRedpack(ctx, groupReq("Q2", "seed", 900, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Receive("Q2", "seed", 400); err != nil {
		t.Fatal(err)
	}
	if err := s.Receive("Q2", "friend1", 300); err != nil {
		t.Fatal(err)
	}
	res, err = q("Q2")
	if err != nil {
		t.Fatal(err)
	}
	if res.HBType != "GROUP" || res.Status != wxpay.StatusSent || len(res.Receivers) != 2 || res.Receivers[1].OpenID != "friend1" || res.Receivers[1].Amount != 300 {
		t.Errorf("group record %+v", res)
	}
	if err := s.Receive("Q2", "friend2", 201); err == nil {
		t.Error("received more than the total")
	}
	if err := s.Receive("Q2", "friend2", 200); err != nil {
		t.Fatal(err)
	}
	if res, _ = q("Q2"); res.Status != wxpay.StatusReceived || len(res.Receivers) != 3 {
		t.Errorf("fully received group %+v", res)
	}

	// Refund of what was not received.
	if _, err := c.SendRedpack(ctx, sendReq("Q3", "openid3", 700)); err != nil {
		t.Fatal(err)
	}
	balance := s.Balance()
	clock.Advance(24 * time.Hour)
	if err := s.SetStatus("Q3", wxpay.StatusRefund); err != nil {
		t.Fatal(err)
	}
	res, err = q("Q3")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != wxpay.StatusRefund || res.RefundAmount != 700 || res.RefundTime != "2025-01-30 00:01:35" || s.Balance() != balance+700 {
		t.Errorf("refunded record %+v, balance %d (was %d)", res, s.Balance(), balance)
	}
	if err := s.SetStatus("Q3", "LOST"); err == nil {
		t.Error("unknown status accepted")
	}
	if err := s.SetStatus("QNONE", wxpay.StatusFailed); err == nil {
		t.Error("status of an unknown billno set")
	}
	if err := s.SetStatus("Q1", wxpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	if res, _ = q("Q1"); res.Status != wxpay.StatusFailed || res.Reason == "" {
		t.Errorf("failed record %+v", res)
	}
}

// gethbinfo's answer as WeChat writes it, <hblist> a direct child of <xml>.
func TestQueryAnswerShape(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	if _, err := c.SendGroupRedpack(context.Background(), groupReq("QS1", "seed", 300, 3)); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"seed", "f1", "f2"} {
		if err := s.Receive("QS1", who, 100); err != nil {
			t.Fatal(err)
		}
	}
	m := s.Merchant()
	p := wxpay.Params{"nonce_str": "n", "mch_billno": "QS1", "mch_id": m.MchID, "appid": "wx8888888888888888", "bill_type": "MCHT"}
	_, body, _ := post(t, rawClient(t, s, m.TLSCertificate()), s.URL+wxpay.PathGetHBInfo, signed(t, p, m.APIKey))
	top, records, err := wxpay.DecodeXMLRecords(body, "hblist", "hbinfo")
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if top["status"] != "RECEIVED" || top["total_num"] != "3" || len(records) != 3 || records[2]["openid"] != "f2" || records[2]["amount"] != "100" {
		t.Errorf("top %v records %v", top, records)
	}
	if _, err := wxpay.DecodeXML(body); err == nil {
		t.Error("a flat decode accepted the hblist")
	}
}
