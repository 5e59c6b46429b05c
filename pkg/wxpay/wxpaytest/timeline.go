package wxpaytest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// The Timeline's defaults, as WeChat Pay documents (or, for SENDING and
// RFUND_ING, as merchants observe) them.
const (
	// DefaultSending is how long a red packet accepted with PROCESSING
	// shows SENDING before it becomes SENT.
	DefaultSending = 10 * time.Minute
	// DefaultClaimWindow is how long a receiver has to claim a red packet:
	// what is not claimed 24 hours after it was sent is refunded.
	DefaultClaimWindow = 24 * time.Hour
	// DefaultRefunding is how long a red packet shows RFUND_ING before
	// REFUND, when the money returns to the balance.
	DefaultRefunding = time.Hour
	// DefaultBillnoWindow is how long after its first try a billno WeChat
	// has no record of may still be sent: a try later than that answers
	// SEND_FAILED and pays nothing.
	DefaultBillnoWindow = 24 * time.Hour
)

// Timeline is how WeChat moves a red packet after its send, on the
// server's clock (Config.Now: inject a Clock, stopped or accelerated, to
// see a day pass at once). Zero fields take the defaults; a negative
// duration means never.
//
// The life of a red packet, as gethbinfo shows it:
//
//   - A send answered SUCCESS (or spoiled after the payment by a fault
//     other than FaultProcessingAfterPay) makes it SENT at once.
//   - FaultProcessingAfterPay makes it SENDING for Sending; then SENT, or
//     FAILED when its Fate says Fail: the money returns to the balance
//     and Payments no longer counts it. A repeat of the billno meanwhile
//     answers PROCESSING; a repeat of a FAILED one answers SEND_FAILED.
//   - SENT becomes RECEIVED when its receiver claims it: Receive, or
//     Claim (or its Fate's) after it became SENT.
//   - Not claimed within ClaimWindow of becoming SENT: RFUND_ING, then,
//     Refunding later, REFUND with refund_time and refund_amount (what was
//     not received), the amount credited to the balance.
//   - A billno first tried (any send request carrying it that the server
//     could read) more than BillnoWindow ago, with no record, can no
//     longer be paid: its sends answer SEND_FAILED, WeChat's "红包发放失败,
//     请更换单号再重试" (use a new billno), and move no money. SEND_FAILED
//     is the code WeChat documents for a billno that cannot pay any more;
//     it is a refusal (outcome failed), so a client never takes it for a
//     payment.
//
// The moves happen when the clock passes their time, and take that time
// (refund_time, rcv_time), whenever the server next looks at the red
// packet: a request, Record, Balance and the like.
type Timeline struct {
	// Sending is how long a red packet accepted with PROCESSING shows
	// SENDING (default DefaultSending; negative: for ever).
	Sending time.Duration
	// Claim is how long after it became SENT every red packet is claimed
	// by its receiver, unless its Fate says otherwise. Zero (the default)
	// or negative: never claimed, and refunded after ClaimWindow.
	Claim time.Duration
	// ClaimWindow is how long a SENT red packet may be claimed before it
	// is refunded (default DefaultClaimWindow; negative: never refunded).
	ClaimWindow time.Duration
	// Refunding is how long RFUND_ING lasts before REFUND (default
	// DefaultRefunding; negative: for ever).
	Refunding time.Duration
	// BillnoWindow is how long after its first try a billno with no
	// record may be paid (default DefaultBillnoWindow; negative: for
	// ever).
	BillnoWindow time.Duration
}

// withDefaults fills the zero fields.
func (tl Timeline) withDefaults() Timeline {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&tl.Sending, DefaultSending)
	def(&tl.ClaimWindow, DefaultClaimWindow)
	def(&tl.Refunding, DefaultRefunding)
	def(&tl.BillnoWindow, DefaultBillnoWindow)
	return tl
}

// Fate scripts what becomes of one red packet after WeChat accepted it
// (Server.SetFate). Zero fields take the Timeline's; a negative duration
// means never.
type Fate struct {
	// Sending is how long it shows SENDING when its send was answered
	// PROCESSING (FaultProcessingAfterPay).
	Sending time.Duration
	// Fail ends SENDING in FAILED instead of SENT: the money returns to
	// the balance and Payments counts 0. A red packet WeChat answered
	// SUCCESS for (SENT at once) never fails.
	Fail bool
	// Reason is gethbinfo's reason of a failing red packet: shown while it
	// is SENDING (WeChat's "SENDING with a reason", a failure) and once it
	// is FAILED. Empty: no reason while SENDING, "发放失败" once FAILED.
	Reason string
	// Claim is how long after it became SENT its receiver claims it, all
	// of it (a group red packet's remaining shares, one each to its
	// re_openid and friends). Claimed after the claim window: never.
	Claim time.Duration
}

// SetFate scripts billno's red packet, before or after its send: how long
// it stays SENDING, whether it then fails, when it is claimed. A later
// call replaces the script. Moves already made stay made.
func (s *Server) SetFate(billno string, f Fate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fates[billno] = f
}

// Timeline returns the timeline in force, defaults filled in.
func (s *Server) Timeline() Timeline {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeline
}

// SetTimeline replaces the timeline (zero fields take their defaults).
// Red packets move by the new one from now on.
func (s *Server) SetTimeline(tl Timeline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeline = tl.withDefaults()
}

// pick is a Fate's duration d, or the Timeline's def when d is zero.
func pick(d, def time.Duration) time.Duration {
	if d != 0 {
		return d
	}
	return def
}

// tick moves every red packet whose next move is due at now. Called under
// s.mu, with now read before taking it.
func (s *Server) tick(now time.Time) {
	for billno, rec := range s.live {
		s.advance(rec, now)
		if !s.moving(rec) {
			delete(s.live, billno)
		}
	}
}

// moving reports whether rec has a move ahead of it.
func (s *Server) moving(rec *Record) bool {
	switch rec.Status {
	case wxpay.StatusSending, wxpay.StatusSent, wxpay.StatusRefunding:
		return true
	}
	return false
}

// watch makes tick follow rec while it has a move ahead. Called under s.mu.
func (s *Server) watch(rec *Record) {
	if s.moving(rec) {
		s.live[rec.MchBillno] = rec
	} else {
		delete(s.live, rec.MchBillno)
	}
}

// advance makes rec's moves due at now, each at its own time. Called
// under s.mu.
func (s *Server) advance(rec *Record, now time.Time) {
	fate := s.fates[rec.MchBillno]
	tl := s.timeline
	for {
		switch rec.Status {
		case wxpay.StatusSending:
			d := pick(fate.Sending, tl.Sending)
			at := rec.sendingSince.Add(d)
			if d < 0 || now.Before(at) {
				return
			}
			if fate.Fail {
				rec.Status = wxpay.StatusFailed
				rec.Reason = fate.Reason
				if rec.Reason == "" {
					rec.Reason = "发放失败"
				}
				s.balance += rec.TotalAmount
				s.payments[rec.MchBillno]--
				return
			}
			rec.Status, rec.Reason, rec.sentAt = wxpay.StatusSent, "", at
		case wxpay.StatusSent:
			window := tl.ClaimWindow
			refundAt := rec.sentAt.Add(window)
			if claim := pick(fate.Claim, tl.Claim); claim > 0 {
				at := rec.sentAt.Add(claim)
				if (window < 0 || at.Before(refundAt)) && !now.Before(at) {
					s.claimAll(rec, at)
					return
				}
			}
			if window < 0 || now.Before(refundAt) {
				return
			}
			rec.Status, rec.refundingAt = wxpay.StatusRefunding, refundAt
		case wxpay.StatusRefunding:
			at := rec.refundingAt.Add(tl.Refunding)
			if tl.Refunding < 0 || now.Before(at) {
				return
			}
			s.refund(rec, at)
			rec.Status = wxpay.StatusRefund
			return
		default:
			return
		}
	}
}

// claimAll has rec's remaining shares received at at: a normal red packet
// by its re_openid, a group one's shares by its re_openid and then
// friends, evenly, the last taking what is left. Called under s.mu.
func (s *Server) claimAll(rec *Record, at time.Time) {
	left, shares := rec.TotalAmount, rec.TotalNum-int64(len(rec.Receivers))
	for _, rv := range rec.Receivers {
		left -= rv.Amount
	}
	for i := int64(0); i < shares; i++ {
		amount := left / (shares - i)
		if i == shares-1 {
			amount = left
		}
		who := rec.ReOpenID
		if n := int64(len(rec.Receivers)); n > 0 {
			who = rec.ReOpenID + "_" + strconv.FormatInt(n, 10)
		}
		rec.Receivers = append(rec.Receivers, Receiver{OpenID: who, Amount: amount, RcvTime: at})
		left -= amount
	}
	rec.Status = wxpay.StatusReceived
}

// refund returns what rec's receivers did not take to the balance, at at,
// once. Called under s.mu.
func (s *Server) refund(rec *Record, at time.Time) {
	if !rec.RefundTime.IsZero() {
		return
	}
	left := rec.TotalAmount
	for _, rv := range rec.Receivers {
		left -= rv.Amount
	}
	rec.RefundTime, rec.RefundAmount = at, left
	s.balance += left
}

// noteTry remembers when billno was first tried, for Timeline.BillnoWindow.
func (s *Server) noteTry(billno string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.firstTry[billno]; !ok {
		s.firstTry[billno] = now
	}
}

// expired reports whether billno, which has no record, can no longer be
// paid at now. Called under s.mu.
func (s *Server) expired(billno string, now time.Time) bool {
	first, ok := s.firstTry[billno]
	w := s.timeline.BillnoWindow
	return ok && w >= 0 && now.Sub(first) > w
}

// FirstTried returns when a send request carrying billno first reached the
// server (readable, whatever its answer), on the server's clock.
func (s *Server) FirstTried(billno string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.firstTry[billno]
	return t, ok
}

// statusError is SetStatus's and Receive's error for a red packet that
// cannot take the move.
func statusError(billno, status, move string) error {
	return fmt.Errorf("wxpaytest: red packet %q is %s: it cannot be %s", billno, status, move)
}
