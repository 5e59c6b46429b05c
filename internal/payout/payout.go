// Package payout is the one path every red packet takes, whoever asks for
// it (API Gateway, SQS, a direct invoke, a campaign or the reconciler):
//
//  1. the request, validated by the caller;
//  2. its record in the ledger, written conditionally before any byte goes
//     to WeChat (or the stored answer, for a repeat WeChat has paid);
//  3. the call to WeChat, made by the caller's function;
//  4. the outcome, settled in the ledger.
//
// A repeat of a billno with the same request is answered from the ledger
// when WeChat has paid it, and sent again with the same billno otherwise;
// the same billno with another request is refused. Two sends of one billno
// never run at once: the record's lease admits one at a time.
package payout

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// The codes of the refusals Send makes itself, before anything is sent.
const (
	// CodeBillnoConflict: the billno is recorded with another request.
	CodeBillnoConflict = "BILLNO_CONFLICT"
	// CodeInProgress: another request for the billno is in flight.
	CodeInProgress = "IN_PROGRESS"
	// CodeLedgerUnavailable: the ledger could not record the request.
	CodeLedgerUnavailable = "LEDGER_UNAVAILABLE"
	// CodeConfig is the err_code stored for a send the merchant's
	// credentials kept from being made (a credstore.ConfigError).
	CodeConfig = "CONFIG_ERROR"
)

// Error is a refusal by the send path: nothing was sent by this request.
type Error struct {
	Code      string // one of the codes above
	Message   string
	Retryable bool
	Err       error // the ledger's error, for LEDGER_UNAVAILABLE
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the ledger's error.
func (e *Error) Unwrap() error { return e.Err }

// Request is one red packet to send.
type Request struct {
	// API is WeChat's API: "sendredpack", "sendminiprogramhb" or
	// "sendgroupredpack".
	API string
	// Fields are the request's signed fields (wxpay's Fields method): the
	// merchant's mch_id and the mch_billno among them.
	Fields map[string]string
	// Source, Caller and CampaignID are recorded with the item.
	Source, Caller, CampaignID string
}

// Key returns the request's ledger key.
func (r *Request) Key() ledger.Key {
	return ledger.Key{MchID: r.Fields["mch_id"], MchBillno: r.Fields["mch_billno"]}
}

// Sender sends red packets through the ledger. A zero Sender, or one
// without a Ledger, sends without a record.
type Sender struct {
	// Ledger records every red packet; nil sends without a record.
	Ledger ledger.Store
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep waits between looks at a billno in flight; wxpay.Sleep when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger reports ledger failures after a send; slog.Default when nil.
	Logger *slog.Logger
}

// Timing of the send path.
const (
	// MaxWait is the longest a request waits for another one holding its
	// billno, before it answers IN_PROGRESS.
	MaxWait = 5 * time.Second
	// poll is how often a waiting request reads the record again.
	poll = 200 * time.Millisecond
	// defaultLease is a send's lease when its context has no deadline;
	// with one, the lease lasts until the deadline and leaseMargin more.
	defaultLease = time.Minute
	leaseMargin  = 2 * time.Second
	// settleTime bounds the ledger update after a send: it runs even when
	// the send used the whole deadline.
	settleTime = time.Second
)

// Outcome is what Send came to: WeChat's answer, or the stored one.
type Outcome struct {
	// Result is WeChat's answer (a *wxpay.SendResult or
	// *wxpay.SendMiniResult), or for a replay the stored answer (a
	// *Replay or *ReplayMini), which encodes with "replayed": true.
	Result any
	// Replayed is true when the answer came from the ledger.
	Replayed bool
	// Item is the ledger's record as this send left it; nil without a
	// ledger.
	Item *ledger.Item
}

// Send records r, calls send (the call to WeChat) and settles its outcome.
// send's error is returned as is: WeChat's outcome reaches the caller even
// when the ledger cannot be updated after it (that is logged, and the item
// stays for the reconciler). Send's own refusals are *Error.
func (s *Sender) Send(ctx context.Context, r Request, send func(context.Context) (any, error)) (Outcome, error) {
	if s.Ledger == nil {
		res, err := send(ctx)
		return Outcome{Result: res}, err
	}
	owner := rand.Text() // which send holds the billno
	it, replay, err := s.record(ctx, r, owner)
	switch {
	case err != nil:
		return Outcome{}, err
	case replay:
		return Outcome{Result: stored(it), Replayed: true, Item: it}, nil
	}
	res, sendErr := send(ctx)
	return Outcome{Result: res, Item: s.settle(ctx, it, owner, res, sendErr)}, sendErr
}

// record admits one send of r's billno: it creates the item, or takes the
// lease of an existing one that may be sent again, or finds the stored
// answer to replay (replay true). It waits up to MaxWait for a send in
// flight, and MinRetryGap after the billno's last try.
func (s *Sender) record(ctx context.Context, r Request, owner string) (it *ledger.Item, replay bool, err error) {
	key, hash := r.Key(), ledger.Hash(r.API, r.Fields)
	giveUp := s.now().Add(MaxWait)
	for {
		it, err = s.Ledger.Get(ctx, key)
		if errors.Is(err, ledger.ErrNotFound) {
			now := s.now()
			it = &ledger.Item{
				MchID: key.MchID, MchBillno: key.MchBillno, API: r.API, Fields: r.Fields,
				RecordedAt: now, LeaseOwner: owner, LeaseUntil: leaseEnd(ctx, now),
				Source: r.Source, Caller: r.Caller, CampaignID: r.CampaignID,
			}
			err = s.Ledger.Create(ctx, it)
			if err == nil {
				return it, false, nil
			}
			if errors.Is(err, ledger.ErrExists) {
				continue // another request recorded the billno first: read its record
			}
		}
		if err != nil {
			return nil, false, unavailable(key, err)
		}
		if it.Hash != hash {
			return nil, false, &Error{Code: CodeBillnoConflict,
				Message: "mch_billno " + key.MchBillno + " is recorded with another request (" + it.API + "); nothing was sent"}
		}
		if it.State.Paid() {
			return it, true, nil
		}
		now := s.now()
		next := it.LastTriedAt.Add(ledger.MinRetryGap)
		if it.LeaseFree(now) && !now.Before(next) {
			taken, err := s.Ledger.Acquire(ctx, key, ledger.Lease{Hash: hash, Owner: owner, Until: leaseEnd(ctx, now), Now: now})
			if err == nil {
				return taken, false, nil
			}
			if !errors.Is(err, ledger.ErrPrecondition) {
				return nil, false, unavailable(key, err)
			}
			continue // another request took it first: read it again
		}
		// In flight, or tried less than MinRetryGap ago: wait and look again.
		wait := poll
		if it.LeaseFree(now) {
			wait = next.Sub(now)
		}
		if now.Add(wait).After(giveUp) || !roomFor(ctx, wait) || s.sleep(ctx, wait) != nil {
			return nil, false, &Error{Code: CodeInProgress, Retryable: true,
				Message: "another request for mch_billno " + key.MchBillno + " is in flight; nothing was sent by this one: retry later with the same billno"}
		}
	}
}

// settle stores a send's outcome. A failure is logged, not returned: the
// caller still gets WeChat's outcome, and the item stays Recorded or
// Unknown for the reconciler.
func (s *Sender) settle(ctx context.Context, it *ledger.Item, owner string, res any, sendErr error) *ledger.Item {
	outcome, set := outcomeOf(res, sendErr)
	set.Owner, set.Now = owner, s.now()
	set.State = ledger.AfterSend(it.State, it.EarlierUnknown(), outcome)
	// The send may have used the whole deadline; the record must still
	// be written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTime)
	defer cancel()
	if err := s.Ledger.Settle(ctx, it.Key(), set); err != nil {
		s.logger().ErrorContext(ctx, "ledger: the outcome of a send could not be recorded; the reconciler will settle it",
			slog.String("mch_billno", it.MchBillno), slog.String("outcome", string(outcome)),
			slog.String("err_code", set.ErrCode), slog.String("state", string(set.State)), slog.String("error", err.Error()))
		return it
	}
	settled := *it
	settled.State, settled.UpdatedAt, settled.Settled = set.State, set.Now, it.Settled+1
	settled.SendListID, settled.ErrCode, settled.ErrCodeDes = set.SendListID, set.ErrCode, set.ErrCodeDes
	settled.Package, settled.JSAPI = set.Package, set.JSAPI
	settled.LeaseOwner, settled.LeaseUntil = "", time.Time{}
	settled.NextCheckAt = ledger.FirstCheck(set.State, set.Now)
	return &settled
}

// outcomeOf reads a send's outcome and what of WeChat's answer the ledger
// keeps.
func outcomeOf(res any, err error) (ledger.Outcome, ledger.Settlement) {
	var set ledger.Settlement
	if err != nil {
		var werr *wxpay.Error
		if !errors.As(err, &werr) {
			// Not WeChat's answer: a failure to load the credentials
			// (nothing sent) or something unexplained (maybe sent).
			var cerr *credstore.ConfigError
			if errors.As(err, &cerr) {
				// Nothing was sent; the code tells a campaign that the
				// row may be sent again.
				set.ErrCode, set.ErrCodeDes = CodeConfig, cerr.Error()
				return ledger.OutcomeFailed, set
			}
			return ledger.OutcomeUnknown, set
		}
		set.ErrCode, set.ErrCodeDes = werr.Code, werr.Message
		if werr.Outcome == wxpay.OutcomeFailed {
			return ledger.OutcomeFailed, set
		}
		return ledger.OutcomeUnknown, set
	}
	switch r := res.(type) {
	case *wxpay.SendResult:
		set.SendListID = r.SendListID
	case *wxpay.SendMiniResult:
		set.SendListID, set.Package, set.JSAPI = r.SendListID, r.Package, jsapiMap(r.JSAPI)
	}
	return ledger.OutcomeSuccess, set
}

// Replay is a stored answer of sendredpack or sendgroupredpack.
type Replay struct {
	wxpay.SendResult
	Replayed bool `json:"replayed"`
}

// ReplayMini is a stored answer of sendminiprogramhb: the same package and
// jsapi parameters as the first answer.
type ReplayMini struct {
	wxpay.SendMiniResult
	Replayed bool `json:"replayed"`
}

// stored rebuilds a paid item's answer from its record: the request's own
// fields (WeChat's success answer echoes them; the client checks that it
// does) and WeChat's send_listid, package and jsapi.
func stored(it *ledger.Item) any {
	amount, _ := strconv.ParseInt(it.Fields["total_amount"], 10, 64)
	res := wxpay.SendResult{
		MchBillno: it.MchBillno, MchID: it.MchID, WxAppID: it.Fields["wxappid"], ReOpenID: it.Fields["re_openid"],
		TotalAmount: amount, SendListID: it.SendListID,
	}
	if it.API != "sendminiprogramhb" {
		return &Replay{SendResult: res, Replayed: true}
	}
	j := it.JSAPI
	return &ReplayMini{SendMiniResult: wxpay.SendMiniResult{SendResult: res, Package: it.Package, JSAPI: wxpay.JSAPIParams{
		TimeStamp: j["timeStamp"], NonceStr: j["nonceStr"], Package: j["package"], SignType: j["signType"], PaySign: j["paySign"],
	}}, Replayed: true}
}

// jsapiMap is the ledger's form of the wx.sendBizRedPacket parameters,
// under their JSON names.
func jsapiMap(p wxpay.JSAPIParams) map[string]string {
	return map[string]string{"timeStamp": p.TimeStamp, "nonceStr": p.NonceStr, "package": p.Package, "signType": p.SignType, "paySign": p.PaySign}
}

func unavailable(key ledger.Key, err error) *Error {
	return &Error{Code: CodeLedgerUnavailable, Retryable: true, Err: err,
		Message: fmt.Sprintf("the ledger could not record mch_billno %s; nothing was sent: retry later with the same billno", key.MchBillno)}
}

// leaseEnd is when a send started at now gives up its billno at the
// latest: after the invocation's deadline, by when it has ended.
func leaseEnd(ctx context.Context, now time.Time) time.Time {
	if deadline, ok := ctx.Deadline(); ok {
		return deadline.Add(leaseMargin)
	}
	return now.Add(defaultLease)
}

// roomFor reports whether ctx leaves time to wait d and then send.
func roomFor(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d+time.Second
}

// now is the clock to the millisecond, as the ledger keeps times, so that
// the records Send and Observe return are the stored ones.
func (s *Sender) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return now().UTC().Truncate(time.Millisecond)
}

func (s *Sender) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	return wxpay.Sleep(ctx, d)
}

func (s *Sender) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Observe stores in the billno's record a status gethbinfo reported and
// moves the record's state when the status settles it (SENT, RECEIVED,
// REFUND, FAILED) and the move is one the ledger allows. An empty status
// only reads the record. It returns the record as it is now: ErrNotFound
// when there is none.
func (s *Sender) Observe(ctx context.Context, key ledger.Key, status string) (*ledger.Item, error) {
	it, err := s.Ledger.Get(ctx, key)
	if err != nil || status == "" {
		return it, err
	}
	o := ledger.Observation{Status: status, Now: s.now()}
	if to, ok := stateOf[status]; ok && to != it.State && ledger.ValidTransition(it.State, to) && it.LeaseFree(o.Now) {
		o.From, o.To = it.State, to
	}
	switch err := s.Ledger.Observe(ctx, key, o); {
	case errors.Is(err, ledger.ErrPrecondition):
		// Moved by another writer since it was read: show that.
		return s.Ledger.Get(ctx, key)
	case err != nil:
		return it, err
	}
	seen := *it
	seen.Status, seen.UpdatedAt = status, o.Now
	if o.To != "" {
		seen.State, seen.NextCheckAt = o.To, ledger.FirstCheck(o.To, o.Now)
	}
	return &seen, nil
}

// stateOf is the ledger state a gethbinfo status settles. SENDING and
// RFUND_ING settle nothing yet.
var stateOf = map[string]ledger.State{
	wxpay.StatusSent:     ledger.Sent,
	wxpay.StatusReceived: ledger.Received,
	wxpay.StatusRefund:   ledger.Refunded,
	wxpay.StatusFailed:   ledger.Failed,
}
