package wxpaytest

import (
	"context"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// checkpoint is what gethbinfo and the books show at an offset from the
// send, on the injected clock.
type checkpoint struct {
	at       time.Duration // from the send
	status   string
	reason   string
	rcvd     int   // hbinfo entries
	refund   int64 // refund_amount (0: none shown)
	balance  int64 // the balance's change since before the send
	payments int
}

// TestTimeline: each red packet's life on an injected clock, as gethbinfo
// shows it and as the balance and Payments count it, at each checkpoint.
func TestTimeline(t *testing.T) {
	const fen = 1000
	processing := []Fault{{Kind: FaultProcessingAfterPay}}
	for _, tc := range []struct {
		name     string
		timeline Timeline
		fate     *Fate
		faults   []Fault
		group    int64 // total_num of a group red packet; 0: a normal one
		receive  []int64
		checks   []checkpoint
	}{
		{name: "SENT, unclaimed: RFUND_ING at 24 h, REFUND an hour later, credited",
			checks: []checkpoint{
				{at: 0, status: wxpay.StatusSent, balance: -fen, payments: 1},
				{at: 24*time.Hour - time.Second, status: wxpay.StatusSent, balance: -fen, payments: 1},
				{at: 24 * time.Hour, status: wxpay.StatusRefunding, balance: -fen, payments: 1},
				{at: 25*time.Hour - time.Second, status: wxpay.StatusRefunding, balance: -fen, payments: 1},
				{at: 25 * time.Hour, status: wxpay.StatusRefund, refund: fen, balance: 0, payments: 1},
				{at: 90 * time.Hour, status: wxpay.StatusRefund, refund: fen, balance: 0, payments: 1},
			}},
		{name: "PROCESSING: SENDING for 10 min, then SENT, refunded from then",
			faults: processing,
			checks: []checkpoint{
				{at: 0, status: wxpay.StatusSending, balance: -fen, payments: 1},
				{at: 10*time.Minute - time.Second, status: wxpay.StatusSending, balance: -fen, payments: 1},
				{at: 10 * time.Minute, status: wxpay.StatusSent, balance: -fen, payments: 1},
				{at: 24*time.Hour + 9*time.Minute, status: wxpay.StatusSent, balance: -fen, payments: 1},
				{at: 24*time.Hour + 10*time.Minute, status: wxpay.StatusRefunding, balance: -fen, payments: 1},
				{at: 25*time.Hour + 10*time.Minute, status: wxpay.StatusRefund, refund: fen, balance: 0, payments: 1},
			}},
		{name: "PROCESSING, scripted: SENDING for 3 h, then SENT",
			faults: processing, fate: &Fate{Sending: 3 * time.Hour},
			checks: []checkpoint{
				{at: 2 * time.Hour, status: wxpay.StatusSending, balance: -fen, payments: 1},
				{at: 3 * time.Hour, status: wxpay.StatusSent, balance: -fen, payments: 1},
			}},
		{name: "PROCESSING, failing with a reason: SENDING with it, then FAILED, the money back",
			faults: processing, fate: &Fate{Sending: 20 * time.Hour, Fail: true, Reason: "帐号余额不足"},
			checks: []checkpoint{
				{at: time.Minute, status: wxpay.StatusSending, reason: "帐号余额不足", balance: -fen, payments: 1},
				{at: 20 * time.Hour, status: wxpay.StatusFailed, reason: "帐号余额不足", balance: 0, payments: 0},
				{at: 50 * time.Hour, status: wxpay.StatusFailed, reason: "帐号余额不足", balance: 0, payments: 0},
			}},
		{name: "PROCESSING, failing without a reason: SENDING, then FAILED with WeChat's",
			faults: processing, fate: &Fate{Fail: true},
			checks: []checkpoint{
				{at: time.Minute, status: wxpay.StatusSending, balance: -fen, payments: 1},
				{at: 10 * time.Minute, status: wxpay.StatusFailed, reason: "发放失败", balance: 0, payments: 0},
			}},
		{name: "PROCESSING for ever (Timeline.Sending < 0)",
			faults: processing, timeline: Timeline{Sending: -1},
			checks: []checkpoint{{at: 70 * time.Hour, status: wxpay.StatusSending, balance: -fen, payments: 1}}},
		{name: "a Fail fate does not fail a red packet answered SUCCESS",
			fate:   &Fate{Fail: true},
			checks: []checkpoint{{at: time.Hour, status: wxpay.StatusSent, balance: -fen, payments: 1}}},
		{name: "scripted claim 30 min after the send: RECEIVED, never refunded",
			fate: &Fate{Claim: 30 * time.Minute},
			checks: []checkpoint{
				{at: 29 * time.Minute, status: wxpay.StatusSent, balance: -fen, payments: 1},
				{at: 30 * time.Minute, status: wxpay.StatusReceived, rcvd: 1, balance: -fen, payments: 1},
				{at: 48 * time.Hour, status: wxpay.StatusReceived, rcvd: 1, balance: -fen, payments: 1},
			}},
		{name: "claim after the claim window: never, refunded",
			fate:   &Fate{Claim: 30 * time.Hour},
			checks: []checkpoint{{at: 40 * time.Hour, status: wxpay.StatusRefund, refund: fen, balance: 0, payments: 1}}},
		{name: "every red packet claimed (Timeline.Claim), this one never (Fate.Claim < 0)",
			timeline: Timeline{Claim: time.Minute}, fate: &Fate{Claim: -1},
			checks: []checkpoint{{at: 26 * time.Hour, status: wxpay.StatusRefund, refund: fen, balance: 0, payments: 1}}},
		{name: "every red packet claimed a minute after it became SENT (Timeline.Claim)",
			timeline: Timeline{Claim: time.Minute}, faults: processing,
			checks: []checkpoint{
				{at: 10*time.Minute + 59*time.Second, status: wxpay.StatusSent, balance: -fen, payments: 1},
				{at: 11 * time.Minute, status: wxpay.StatusReceived, rcvd: 1, balance: -fen, payments: 1},
			}},
		{name: "a group red packet partly received: the rest refunded",
			group: 3, receive: []int64{400},
			checks: []checkpoint{
				{at: time.Hour, status: wxpay.StatusSent, rcvd: 1, balance: -fen, payments: 1},
				{at: 25 * time.Hour, status: wxpay.StatusRefund, rcvd: 1, refund: fen - 400, balance: -400, payments: 1},
			}},
		{name: "a group red packet claimed by a script: every share",
			group: 3, receive: []int64{100}, fate: &Fate{Claim: 2 * time.Hour},
			checks: []checkpoint{{at: 2 * time.Hour, status: wxpay.StatusReceived, rcvd: 3, balance: -fen, payments: 1}}},
		{name: "a claim window and a refund that never end",
			timeline: Timeline{ClaimWindow: -1},
			checks:   []checkpoint{{at: 100 * time.Hour, status: wxpay.StatusSent, balance: -fen, payments: 1}}},
		{name: "a refund that never ends",
			timeline: Timeline{Refunding: -1},
			checks:   []checkpoint{{at: 100 * time.Hour, status: wxpay.StatusRefunding, balance: -fen, payments: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start0 := time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC)
			clock := NewClock(start0)
			s := start(t, WithClock(clock.Now), WithTimeline(tc.timeline))
			c, _ := client(t, s)
			ctx := context.Background()
			const billno = "TL0001"
			if tc.fate != nil {
				s.SetFate(billno, *tc.fate)
			}
			s.FailBillno(billno, tc.faults...)
			before := s.Balance()
			var err error
			if tc.group > 0 {
				_, err = c.SendGroupRedpack(ctx, groupReq(billno, "seed", fen, tc.group))
			} else {
				_, err = c.SendRedpack(ctx, sendReq(billno, "openid1", fen))
			}
			if len(tc.faults) > 0 {
				if e := wxErr(t, err); e.Code != "PROCESSING" {
					t.Fatalf("send: %+v, want PROCESSING", e)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for _, amount := range tc.receive {
				if err := s.Receive(billno, "seed", amount); err != nil {
					t.Fatal(err)
				}
			}
			for _, cp := range tc.checks {
				clock.Set(start0.Add(cp.at))
				res, err := c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: billno, AppID: "wx8888888888888888"})
				if err != nil {
					t.Fatalf("at %v: %v", cp.at, err)
				}
				if res.Status != cp.status || res.Reason != cp.reason || len(res.Receivers) != cp.rcvd {
					t.Errorf("at %v: %s (reason %q, %d received), want %s (reason %q, %d received)",
						cp.at, res.Status, res.Reason, len(res.Receivers), cp.status, cp.reason, cp.rcvd)
				}
				if res.RefundAmount != cp.refund || (cp.refund > 0) != (res.RefundTime != "") {
					t.Errorf("at %v: refund %d at %q, want %d", cp.at, res.RefundAmount, res.RefundTime, cp.refund)
				}
				if got := s.Balance() - before; got != cp.balance {
					t.Errorf("at %v: balance moved %d, want %d", cp.at, got, cp.balance)
				}
				if got := s.Payments(billno); got != cp.payments {
					t.Errorf("at %v: Payments %d, want %d", cp.at, got, cp.payments)
				}
			}
		})
	}
}

// TestTimelineTimes: the moves carry their own times, however late the
// server looks: rcv_time at the claim, refund_time at the refund.
func TestTimelineTimes(t *testing.T) {
	start0 := time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC) // 10:00 in China
	clock := NewClock(start0)
	s := start(t, WithClock(clock.Now))
	c, _ := client(t, s)
	ctx := context.Background()
	s.SetFate("TT1", Fate{Claim: 90 * time.Minute})
	for _, b := range []string{"TT1", "TT2"} {
		if _, err := c.SendRedpack(ctx, sendReq(b, "openid1", 300)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(72 * time.Hour)
	claimed, _ := s.Record("TT1")
	refunded, _ := s.Record("TT2")
	if claimed.Status != wxpay.StatusReceived || len(claimed.Receivers) != 1 || !claimed.Receivers[0].RcvTime.Equal(start0.Add(90*time.Minute)) ||
		claimed.Receivers[0].OpenID != "openid1" || claimed.Receivers[0].Amount != 300 {
		t.Errorf("claimed %+v", claimed)
	}
	if refunded.Status != wxpay.StatusRefund || !refunded.RefundTime.Equal(start0.Add(25*time.Hour)) || refunded.RefundAmount != 300 {
		t.Errorf("refunded %+v", refunded)
	}
	res, err := c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: "TT2", AppID: "wx8888888888888888"})
	if err != nil || res.RefundTime != "2025-05-21 11:00:00" || res.SendTime != "2025-05-20 10:00:00" {
		t.Errorf("gethbinfo %+v, %v: want refund_time 25 h after send_time, China time", res, err)
	}
}

// TestTimelineRepeats: a repeat of a billno answers as its red packet
// stands: PROCESSING while SENDING, SEND_FAILED once FAILED, the original
// answer once SENT; none moves money.
func TestTimelineRepeats(t *testing.T) {
	clock := NewClock(time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC))
	s := start(t, WithClock(clock.Now))
	c, _ := client(t, s, func(cfg *wxpay.Config) { cfg.MaxAttempts = 1 })
	ctx := context.Background()
	s.SetFate("RP1", Fate{Fail: true, Reason: "风控拦截"})
	for _, b := range []string{"RP1", "RP2"} {
		s.FailBillno(b, Fault{Kind: FaultProcessingAfterPay})
		if _, err := c.SendRedpack(ctx, sendReq(b, "openid1", 500)); wxErr(t, err).Code != "PROCESSING" {
			t.Fatalf("%s: %v", b, err)
		}
		if _, err := c.SendRedpack(ctx, sendReq(b, "openid1", 500)); wxErr(t, err).Code != "PROCESSING" || wxpay.OutcomeOf(err) != wxpay.OutcomeUnknown {
			t.Errorf("%s repeated while SENDING: %v, want PROCESSING", b, err)
		}
	}
	clock.Advance(DefaultSending)
	_, err := c.SendRedpack(ctx, sendReq("RP1", "openid1", 500))
	if e := wxErr(t, err); e.Code != "SEND_FAILED" || e.Outcome != wxpay.OutcomeFailed {
		t.Errorf("repeat of a FAILED red packet: %+v, want SEND_FAILED", e)
	}
	res, err := c.SendRedpack(ctx, sendReq("RP2", "openid1", 500))
	if rec, _ := s.Record("RP2"); err != nil || res.SendListID != rec.SendListID {
		t.Errorf("repeat of a SENT red packet: %+v, %v, want the original answer", res, err)
	}
	if s.Payments("RP1") != 0 || s.Payments("RP2") != 1 || s.Balance() != DefaultBalance-500 {
		t.Errorf("payments %d and %d, balance %d", s.Payments("RP1"), s.Payments("RP2"), s.Balance())
	}
}

// TestBillnoWindow: a billno WeChat has no record of pays within 24 hours
// of its first try, and answers SEND_FAILED after, moving no money; a
// billno never tried, or one with a record, is not affected.
func TestBillnoWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration // Timeline.BillnoWindow
		after  time.Duration
		code   string // "" for paid
	}{
		{name: "an hour later: paid", after: time.Hour},
		{name: "24 h later: paid", after: 24 * time.Hour},
		{name: "24 h and a second later: SEND_FAILED", after: 24*time.Hour + time.Second, code: "SEND_FAILED"},
		{name: "a week later: SEND_FAILED", after: 7 * 24 * time.Hour, code: "SEND_FAILED"},
		{name: "a 2 h window, 3 h later: SEND_FAILED", window: 2 * time.Hour, after: 3 * time.Hour, code: "SEND_FAILED"},
		{name: "no window, a week later: paid", window: -1, after: 7 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start0 := time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC)
			clock := NewClock(start0)
			s := start(t, WithClock(clock.Now), WithTimeline(Timeline{BillnoWindow: tc.window}))
			c, _ := client(t, s, func(cfg *wxpay.Config) { cfg.MaxAttempts = 1 })
			ctx := context.Background()
			// The first try reaches WeChat and leaves no record.
			s.FailSends("BW1", Fault{Kind: FaultSystemError})
			if _, err := c.SendRedpack(ctx, sendReq("BW1", "openid1", 100)); wxErr(t, err).Code != "SYSTEMERROR" {
				t.Fatalf("first try: %v", err)
			}
			if first, ok := s.FirstTried("BW1"); !ok || !first.Equal(start0) {
				t.Errorf("FirstTried = %v, %v", first, ok)
			}
			if _, err := c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: "BW1", AppID: "wx8888888888888888"}); wxErr(t, err).Code != "NOT_FOUND" {
				t.Fatalf("query: %v", err)
			}
			clock.Advance(tc.after)
			_, err := c.SendRedpack(ctx, sendReq("BW1", "openid1", 100))
			if tc.code == "" {
				if err != nil || s.Payments("BW1") != 1 {
					t.Errorf("try after %v: %v, %d payments; want paid", tc.after, err, s.Payments("BW1"))
				}
				return
			}
			e := wxErr(t, err)
			if e.Code != tc.code || e.Outcome != wxpay.OutcomeFailed || e.Message != "红包发放失败,请更换单号再重试" {
				t.Errorf("try after %v: %+v, want %s (failed)", tc.after, e, tc.code)
			}
			if _, ok := s.Record("BW1"); ok || s.Payments("BW1") != 0 || s.Balance() != DefaultBalance {
				t.Error("an expired billno moved money")
			}
			// A new billno pays; so does the repeat of a billno WeChat has
			// a record of, however old.
			if _, err := c.SendRedpack(ctx, sendReq("BW2", "openid1", 100)); err != nil {
				t.Errorf("new billno: %v", err)
			}
			clock.Advance(tc.after)
			if _, err := c.SendRedpack(ctx, sendReq("BW2", "openid1", 100)); err != nil || s.Payments("BW2") != 1 {
				t.Errorf("repeat of a paid billno: %v", err)
			}
		})
	}
}

// TestFailSends: a send script leaves the billno's queries alone.
func TestFailSends(t *testing.T) {
	s := start(t)
	c, _ := client(t, s, func(cfg *wxpay.Config) { cfg.MaxAttempts = 1 })
	ctx := context.Background()
	s.FailSends("FS1", Fault{Kind: FaultSystemError}, Fault{Kind: FaultSystemError})
	q := &wxpay.QueryRequest{MchBillno: "FS1", AppID: "wx8888888888888888"}
	if _, err := c.QueryRedpack(ctx, q); wxErr(t, err).Code != "NOT_FOUND" {
		t.Errorf("query: %v, want NOT_FOUND", err)
	}
	for range 2 {
		if _, err := c.SendRedpack(ctx, sendReq("FS1", "openid1", 100)); wxErr(t, err).Code != "SYSTEMERROR" {
			t.Errorf("send: %v, want SYSTEMERROR", err)
		}
	}
	if _, err := c.SendRedpack(ctx, sendReq("FS1", "openid1", 100)); err != nil {
		t.Errorf("third send: %v", err)
	}
	// FailBillno's script comes first, for queries and sends alike.
	s.FailSends("FS1", Fault{Kind: FaultFreqLimit})
	s.FailBillno("FS1", Fault{Kind: FaultSystemError})
	if _, err := c.SendRedpack(ctx, sendReq("FS1", "openid1", 100)); wxErr(t, err).Code != "SYSTEMERROR" {
		t.Errorf("send: %v, want FailBillno's SYSTEMERROR", err)
	}
	if _, err := c.SendRedpack(ctx, sendReq("FS1", "openid1", 100)); wxErr(t, err).Code != "FREQ_LIMIT" {
		t.Errorf("send: %v, want FailSends' FREQ_LIMIT", err)
	}
	s.FailSends("FS1", Fault{Kind: FaultSystemError})
	s.ClearFaults()
	if _, err := c.SendRedpack(ctx, sendReq("FS1", "openid1", 100)); err != nil || s.Payments("FS1") != 1 {
		t.Errorf("after ClearFaults: %v, %d payments", err, s.Payments("FS1"))
	}
}

// TestReceiveOnlySent: a scripted claim needs a SENT red packet.
func TestReceiveOnlySent(t *testing.T) {
	clock := NewClock(time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC))
	s := start(t, WithClock(clock.Now))
	c, _ := client(t, s, func(cfg *wxpay.Config) { cfg.MaxAttempts = 1 })
	ctx := context.Background()
	s.FailBillno("RO1", Fault{Kind: FaultProcessingAfterPay})
	c.SendRedpack(ctx, sendReq("RO1", "openid1", 100))
	if err := s.Receive("RO1", "openid1", 0); err == nil {
		t.Error("a SENDING red packet was received")
	}
	if _, err := c.SendRedpack(ctx, sendReq("RO2", "openid1", 100)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if err := s.Receive("RO2", "openid1", 0); err == nil {
		t.Error("a red packet past its claim window was received")
	}
	// SetStatus puts one back, and the timeline runs on from then.
	if err := s.SetStatus("RO2", wxpay.StatusSent); err != nil {
		t.Fatal(err)
	}
	if err := s.Receive("RO2", "openid1", 0); err != nil {
		t.Errorf("after SetStatus SENT: %v", err)
	}
	if err := s.SetStatus("RO1", wxpay.StatusSending); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultSending - time.Second)
	if rec, _ := s.Record("RO1"); rec.Status != wxpay.StatusSending {
		t.Errorf("RO1 %s, want SENDING for 10 min from SetStatus", rec.Status)
	}
	clock.Advance(time.Second)
	if rec, _ := s.Record("RO1"); rec.Status != wxpay.StatusSent {
		t.Errorf("RO1 %s, want SENT", rec.Status)
	}
}

// TestClock: a stopped clock moves only when told; an accelerated one
// runs speed times as fast as the wall clock, and moves when told too.
func TestClock(t *testing.T) {
	t0 := time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC)
	stopped := NewClock(t0)
	time.Sleep(5 * time.Millisecond)
	if !stopped.Now().Equal(t0) || stopped.Speed() != 0 {
		t.Errorf("stopped clock at %v (speed %v)", stopped.Now(), stopped.Speed())
	}
	stopped.Advance(time.Hour)
	if !stopped.Now().Equal(t0.Add(time.Hour)) {
		t.Errorf("after Advance: %v", stopped.Now())
	}

	wall := time.Now()
	fast := NewAcceleratedClock(t0, 3600)
	time.Sleep(20 * time.Millisecond)
	got := fast.Now().Sub(t0)
	elapsed := time.Since(wall)
	// At least 20 ms of wall time passed (72 s on the clock), and at most
	// what was measured around it.
	if got < 72*time.Second || got > elapsed*3600+time.Millisecond {
		t.Errorf("after %v: the clock moved %v, want 3600 times as much", elapsed, got)
	}
	if fast.Speed() != 3600 {
		t.Errorf("Speed = %v", fast.Speed())
	}
	// The clock runs on between two readings: an hour a second, so the
	// bounds leave a loaded machine several seconds.
	before := fast.Now()
	fast.Advance(24 * time.Hour)
	if d := fast.Now().Sub(before); d < 24*time.Hour || d > 36*time.Hour {
		t.Errorf("Advance(24h) moved it %v", d)
	}
	fast.Set(t0)
	if d := fast.Now().Sub(t0); d < 0 || d > 12*time.Hour {
		t.Errorf("after Set: %v past t0", d)
	}
	if c := NewAcceleratedClock(t0, 0); c.Speed() != 0 || !c.Now().Equal(t0) {
		t.Errorf("speed 0: %v at %v", c.Speed(), c.Now())
	}

	// SetSpeed: from the time shown, at the new speed; 0 stops it.
	c := NewClock(t0)
	c.SetSpeed(3600)
	time.Sleep(20 * time.Millisecond)
	if d := c.Now().Sub(t0); d < 72*time.Second || c.Speed() != 3600 {
		t.Errorf("after SetSpeed(3600) and 20 ms: moved %v", d)
	}
	c.SetSpeed(0)
	at := c.Now()
	time.Sleep(5 * time.Millisecond)
	if !c.Now().Equal(at) || c.Speed() != 0 {
		t.Errorf("after SetSpeed(0): %v, then %v", at, c.Now())
	}
}

// TestAcceleratedTimeline: on a clock at 3600 times the wall clock's
// speed, a red packet's 24-hour claim window passes within a wall-clock
// minute: refunded without anyone advancing the clock.
func TestAcceleratedTimeline(t *testing.T) {
	clock := NewAcceleratedClock(time.Date(2025, 5, 20, 2, 0, 0, 0, time.UTC), 3600)
	s := start(t, WithClock(clock.Now), WithTimeline(Timeline{ClaimWindow: time.Hour, Refunding: time.Minute}))
	c, _ := client(t, s)
	if _, err := c.SendRedpack(context.Background(), sendReq("AC1", "openid1", 100)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rec, _ := s.Record("AC1")
		if rec.Status == wxpay.StatusRefund {
			if rec.RefundTime.Sub(rec.SendTime) != time.Hour+time.Minute {
				t.Errorf("refunded at %v, sent at %v", rec.RefundTime, rec.SendTime)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s after a wall-clock minute", rec.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
