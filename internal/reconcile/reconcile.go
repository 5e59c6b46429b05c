// Package reconcile follows every red packet in the ledger to its end. A
// Reconciler takes the items that are due (ledger.Store.Due), reads each
// one's record at WeChat (gethbinfo, with the record's own wxappid) and
// moves it as WeChat's record says, on the schedule in Schedule:
//
//   - RECORDED (its lease ended) or UNKNOWN: SENT, RECEIVED or REFUNDED
//     as paid; FAILED when WeChat says FAILED, or SENDING with a reason
//     (stored); SENDING without one is checked again later;
//   - NOT_FOUND: checked again after a few minutes; still NOT_FOUND, the
//     stored request is sent again through the one send path
//     (internal/payout), with its own billno and exactly its fields, while
//     WeChat's re-entry window is open; past it with no record, EXPIRED
//     (nothing paid);
//   - SENT: RECEIVED, or REFUNDED with refund_time and refund_amount, on
//     checks spaced to the 24-hour claim window;
//   - not final within 72 hours of the first try (or SENT, then FAILED at
//     WeChat): NEEDS_ATTENTION, logged as an error naming the billno; then
//     checked every 6 hours within WeChat's 30-day query window, and moved
//     only to RECEIVED or REFUNDED: anything else is for a person.
//
// Every write is conditional on the item as read (ledger.Store.Reconcile):
// two reconcilers at once never both move an item, and only the one whose
// write won sends a stored request again. A run that loses a race moves
// on.
//
// A pass's Summary gives its CloudWatch metrics (Summary.Metrics,
// Summary.TransitionMetrics): the moves, the items that need attention,
// and the gauges of the items it read (Backlog).
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Source is the source the ledger records for the reconciler's sends.
const Source = "reconcile"

// Defaults of a Reconciler's bounds.
const (
	// DefaultBudget is the most gethbinfo queries of one pass.
	DefaultBudget = 120
	// DefaultBatch is how many due items a pass reads at a time.
	DefaultBatch = 20
	// DefaultWorkers is how many items a pass checks at once.
	DefaultWorkers = 4
	// MinTimeLeft is the least time before the invocation's deadline in
	// which a pass starts another check: a query, and perhaps a send.
	MinTimeLeft = 3 * time.Second
)

// Why a pass ended before the due items did (Summary.Stopped).
const (
	StoppedBudget      = "budget"
	StoppedDeadline    = "deadline"
	StoppedLedger      = "ledger"
	StoppedCredentials = "credentials"
)

// Reconciler settles a merchant's red packets. Its zero bounds are the
// defaults. It is safe for concurrent use, and so is running several at
// once over one ledger.
type Reconciler struct {
	// Ledger is where the red packets are recorded.
	Ledger ledger.Store
	// WeChat queries and re-sends for the merchant.
	WeChat WeChat
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep is the send path's wait for a billno in flight (see
	// payout.Sender); wxpay.Sleep when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger gets a line per move, re-send and failure; slog.Default
	// when nil.
	Logger *slog.Logger

	// Budget bounds the gethbinfo queries of one pass, Batch the items
	// read from the ledger at a time, Workers the items checked at once.
	Budget, Batch, Workers int
}

// Summary is what a pass (or the check of one item) did.
type Summary struct {
	// Checked counts the items whose record was read at WeChat, NOT_FOUND
	// included.
	Checked int `json:"checked"`
	// Settled counts the items moved to SENT, RECEIVED, REFUNDED, FAILED
	// or EXPIRED, by a check or by a re-send.
	Settled int `json:"settled"`
	// Resent counts the stored requests sent again.
	Resent int `json:"resent"`
	// NeedsAttention counts the items moved to NEEDS_ATTENTION.
	NeedsAttention int `json:"needs_attention"`
	// Transitions counts the moves by "FROM->TO" (UNKNOWN->SENT).
	Transitions map[string]int `json:"transitions"`
	// LostRaces counts the items another writer changed between this
	// pass's read and its write: left to that writer.
	LostRaces int `json:"lost_races"`
	// Errors counts the queries and writes that failed (each logged).
	Errors int `json:"errors"`
	// Stopped says why the pass ended before the due items did: budget,
	// deadline, ledger or credentials; empty when none was left.
	Stopped string `json:"stopped,omitempty"`
	// StopError is the error that stopped the pass (ledger, credentials).
	StopError string `json:"stop_error,omitempty"`
	// Item is the item Check checked, as it is now.
	Item *ItemState `json:"item,omitempty"`
	// Campaigns are the campaigns whose items the pass moved, sorted:
	// their reports are due again.
	Campaigns []string `json:"campaigns,omitempty"`
	// Backlog is what the pass saw of the due items; nil for Check, and
	// for a pass that could not read them.
	Backlog *Backlog `json:"backlog,omitempty"`
}

// UnknownAlarmAge is how long after its first try an item whose outcome
// is not known (UNKNOWN, or RECORDED with its lease ended) is counted in
// Backlog.UnknownOverOneHour.
const UnknownAlarmAge = time.Hour

// Backlog is what a pass saw of the items it read from the ledger's due
// index (Store.Due): the gauges of its metrics. It covers only the items
// due during the pass, as far as the pass's budget and deadline let it
// read them (earliest next check first), not every item not final: an
// item waiting for a later check is not seen, and an item the pass saw
// is counted as the pass read it, before its check.
type Backlog struct {
	// Seen counts the due items the pass read.
	Seen int `json:"seen"`
	// UnknownOverOneHour counts the items seen UNKNOWN, or RECORDED with
	// their lease ended, more than UnknownAlarmAge after their first try.
	UnknownOverOneHour int `json:"unknown_over_one_hour"`
	// OldestUnsettledAgeSeconds is the age (seconds from the first try to
	// the read, to the millisecond) of the oldest item seen whose outcome
	// is not settled: not final and not Sent (NeedsAttention included);
	// 0 when none.
	OldestUnsettledAgeSeconds float64 `json:"oldest_unsettled_age_seconds"`
}

// ItemState is an item as Check shows it.
type ItemState struct {
	MchBillno   string    `json:"mch_billno"`
	State       string    `json:"state"`
	Status      string    `json:"status,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Attempts    int       `json:"attempts"`
	NextCheckAt time.Time `json:"next_check_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// RunOnce makes one pass over the merchant's due items, earliest first, a
// Batch at a time, Workers at once, until none is due, the Budget of
// queries is spent or the context's deadline is less than MinTimeLeft
// away. Failures are logged and counted in the Summary, never returned.
func (r *Reconciler) RunOnce(ctx context.Context) Summary {
	t := &tally{budget: r.bound(r.Budget, DefaultBudget)}
	mchID, err := r.WeChat.MchID(ctx)
	if err != nil {
		r.logger().ErrorContext(ctx, "reconcile: no merchant credentials; nothing checked", slog.String("error", err.Error()))
		t.stop(StoppedCredentials, err)
		return t.summary()
	}
	seen := make(map[string]bool)
	for more := true; more && !t.stopped(); {
		more = r.nextBatch(ctx, mchID, seen, t)
	}
	return t.summary()
}

// nextBatch reads the next due items (those not seen yet this pass) and checks
// them. It reports whether more may be due.
func (r *Reconciler) nextBatch(ctx context.Context, mchID string, seen map[string]bool, t *tally) (more bool) {
	limit := min(r.bound(r.Batch, DefaultBatch), t.budgetLeft())
	switch {
	case !timeLeft(ctx):
		t.stop(StoppedDeadline, nil)
		return false
	case limit == 0:
		t.stop(StoppedBudget, nil)
		return false
	}
	now := r.now()
	items, err := r.Ledger.Due(ctx, mchID, now, limit)
	if err != nil {
		r.logger().ErrorContext(ctx, "reconcile: the ledger's due items could not be read", slog.String("error", err.Error()))
		t.stop(StoppedLedger, err)
		return false
	}
	// An item whose write failed is still due: it is checked once a pass.
	var fresh []*ledger.Item
	for _, it := range items {
		if !seen[it.MchBillno] {
			seen[it.MchBillno] = true
			fresh = append(fresh, it)
		}
	}
	t.see(fresh, now)
	r.checkAll(ctx, fresh, t)
	return len(items) == limit && len(fresh) > 0
}

// Check checks the item k now, due or not: the operator's way to settle
// one red packet on demand. A final item, one a send holds, or a planned
// one never sent (Attempts 0: its Item says so) is not queried. The Summary's Item is the item as it is after the check; the
// error is the ledger's (ledger.ErrNotFound when the billno is not
// recorded).
func (r *Reconciler) Check(ctx context.Context, k ledger.Key) (Summary, error) {
	it, err := r.Ledger.Get(ctx, k)
	if err != nil {
		return Summary{}, err
	}
	t := &tally{budget: 1}
	if checkable(it, r.now()) && t.take() {
		r.check(ctx, it, t)
		if after, err := r.Ledger.Get(ctx, k); err == nil {
			it = after
		}
	}
	s := t.summary()
	s.Item = &ItemState{MchBillno: it.MchBillno, State: string(it.State), Status: it.Status, Reason: it.Reason,
		Attempts: it.Attempts, NextCheckAt: it.NextCheckAt, UpdatedAt: it.UpdatedAt}
	return s, nil
}

// checkAll checks items, Workers at once, while the budget and the
// deadline allow.
func (r *Reconciler) checkAll(ctx context.Context, items []*ledger.Item, t *tally) {
	sem := make(chan struct{}, r.bound(r.Workers, DefaultWorkers))
	var wg sync.WaitGroup
	for _, it := range items {
		if !checkable(it, r.now()) {
			continue
		}
		sem <- struct{}{} // a worker is free: the checks before it have started or ended
		if !r.startable(ctx, t) {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.check(ctx, it, t)
		})
	}
	wg.Wait()
}

// checkable reports whether item it may be checked at now: not while a
// send holds it (its Settle decides), not when final (nothing is left to
// check), and never a planned item (Attempts 0): it was never sent, so
// WeChat has no record of it, and its NOT_FOUND would lead to a re-send
// or an EXPIRED that no one asked for. Planned items are not Due; this
// guards Check, and a Due that returned one.
func checkable(it *ledger.Item, now time.Time) bool {
	return it.Attempts > 0 && it.LeaseFree(now) && !it.State.Final()
}

// startable reports whether the pass may start another check, taking a
// query from its budget, and stops it when not.
func (r *Reconciler) startable(ctx context.Context, t *tally) bool {
	switch {
	case t.stopped():
		return false
	case !timeLeft(ctx):
		t.stop(StoppedDeadline, nil)
		return false
	case !t.take():
		t.stop(StoppedBudget, nil)
		return false
	}
	return true
}

// check reads item it's record at WeChat, stores what decide makes of it
// (conditionally on it as read) and, when decided, sends its stored
// request again.
func (r *Reconciler) check(ctx context.Context, it *ledger.Item, t *tally) {
	log := r.logger().With(slog.String("mch_billno", it.MchBillno), slog.String("state", string(it.State)))
	res, err := r.WeChat.QueryRedpack(ctx, it.Fields["wxappid"], it.MchBillno)
	rd := reading{res: res, err: err}
	var werr *wxpay.Error
	var cerr *credstore.ConfigError
	switch {
	case err == nil:
		t.add(func(s *Summary) { s.Checked++ })
	case errors.As(err, &werr) && werr.Outcome == wxpay.OutcomeNotFound:
		rd = reading{notFound: true}
		t.add(func(s *Summary) { s.Checked++ })
	case errors.As(err, &cerr):
		// No credentials to query with: nothing is known, and every other
		// item would fail alike.
		log.ErrorContext(ctx, "reconcile: gethbinfo could not be called", slog.String("error", err.Error()))
		t.stop(StoppedCredentials, err)
		return
	default:
		log.WarnContext(ctx, "reconcile: gethbinfo failed; checked again later", slog.String("error", err.Error()))
		t.add(func(s *Summary) { s.Errors++ })
	}

	now := r.now()
	d := decide(it, rd, now)
	err = r.Ledger.Reconcile(ctx, it.Key(), ledger.Reconciliation{
		From: it.State, ReadNextCheckAt: it.NextCheckAt, To: d.to,
		Status: d.status, Reason: d.reason, RefundTime: d.refundTime, RefundAmount: d.refundAmount,
		NextCheckAt: d.next, Now: now,
	})
	switch {
	case errors.Is(err, ledger.ErrPrecondition):
		// Another reconciler, a send or the query function wrote first:
		// the item is theirs now.
		log.DebugContext(ctx, "reconcile: the item changed since it was read; left to its writer")
		t.add(func(s *Summary) { s.LostRaces++ })
		return
	case err != nil:
		log.ErrorContext(ctx, "reconcile: the ledger could not store the check", slog.String("to", string(d.to)), slog.String("error", err.Error()))
		t.add(func(s *Summary) { s.Errors++ })
		return
	}
	if d.to != it.State {
		t.move(it.State, d.to)
		t.campaign(it.CampaignID)
		level, msg := slog.LevelInfo, "reconcile: moved"
		if d.to == ledger.NeedsAttention {
			level, msg = slog.LevelError, "reconcile: the red packet needs attention: not final within 72 hours of its first try, or WeChat's record contradicts the ledger"
		}
		log.Log(ctx, level, msg, slog.String("to", string(d.to)), slog.String("status", d.status), slog.String("reason", d.reason),
			slog.Time("first_tried_at", it.FirstTriedAt))
	}
	if d.resend {
		r.resend(ctx, it, t, log)
	}
}

// resend sends item it's stored request again through the one send path:
// its API, its fields exactly, its billno.
func (r *Reconciler) resend(ctx context.Context, it *ledger.Item, t *tally, log *slog.Logger) {
	sender := &payout.Sender{Ledger: r.Ledger, Now: r.Now, Sleep: r.Sleep, Logger: r.logger()}
	sent := false
	req := payout.Request{API: it.API, Fields: it.Fields, Source: Source, CampaignID: it.CampaignID}
	out, err := sender.Send(ctx, req, func(ctx context.Context) (any, error) {
		sent = true
		return r.WeChat.SendFields(ctx, it.API, it.Fields)
	})
	var perr *payout.Error
	if errors.As(err, &perr) {
		// Nothing sent: in flight elsewhere, or the ledger unavailable.
		log.WarnContext(ctx, "reconcile: not sent again", slog.String("err_code", perr.Code), slog.String("error", perr.Message))
		return
	}
	if !sent {
		return // paid meanwhile: answered from the ledger
	}
	t.add(func(s *Summary) { s.Resent++ })
	var errCode string
	var werr *wxpay.Error
	if errors.As(err, &werr) {
		errCode = werr.Code
	}
	log.InfoContext(ctx, "reconcile: sent again with its billno, WeChat found no record",
		slog.String("api", it.API), slog.String("outcome", string(wxpay.OutcomeOf(err))), slog.String("err_code", errCode))
	if out.Item != nil && out.Item.State != it.State {
		t.move(it.State, out.Item.State)
		t.campaign(it.CampaignID)
	}
}

// timeLeft reports whether ctx leaves MinTimeLeft for another check. The
// deadline is wall-clock time, whatever clock the reconciler was given.
func timeLeft(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) >= MinTimeLeft
}

func (r *Reconciler) bound(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// now is the clock to the millisecond, as the ledger keeps times.
func (r *Reconciler) now() time.Time {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return now().UTC().Truncate(time.Millisecond)
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// tally is a pass's Summary, written by its workers.
type tally struct {
	mu      sync.Mutex
	s       Summary
	budget  int
	queries int
}

func (t *tally) add(f func(*Summary)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.s)
}

// move counts a move from one state to another.
func (t *tally) move(from, to ledger.State) {
	t.add(func(s *Summary) {
		if s.Transitions == nil {
			s.Transitions = make(map[string]int)
		}
		s.Transitions[string(from)+"->"+string(to)]++
		switch {
		case to == ledger.NeedsAttention:
			s.NeedsAttention++
		case to == ledger.Sent || to.Final():
			s.Settled++
		}
	})
}

// campaign notes that an item of campaign id moved (nothing for "").
func (t *tally) campaign(id string) {
	if id == "" {
		return
	}
	t.add(func(s *Summary) {
		if !slices.Contains(s.Campaigns, id) {
			s.Campaigns = append(s.Campaigns, id)
			slices.Sort(s.Campaigns)
		}
	})
}

// see counts items, read from the due index at now, in the pass's
// Backlog (created by the first read, even of no item).
func (t *tally) see(items []*ledger.Item, now time.Time) {
	t.add(func(s *Summary) {
		if s.Backlog == nil {
			s.Backlog = &Backlog{}
		}
		b := s.Backlog
		for _, it := range items {
			b.Seen++
			// SENT is settled as far as money goes: WeChat paid, and the
			// claim or the refund follows on WeChat's own clock.
			if it.State.Final() || it.State == ledger.Sent || it.FirstTriedAt.IsZero() {
				continue
			}
			age := now.Sub(it.FirstTriedAt)
			if notKnown := it.State == ledger.Unknown || (it.State == ledger.Recorded && it.LeaseFree(now)); notKnown && age > UnknownAlarmAge {
				b.UnknownOverOneHour++
			}
			if secs := float64(age.Milliseconds()) / 1000; secs > b.OldestUnsettledAgeSeconds {
				b.OldestUnsettledAgeSeconds = secs
			}
		}
	})
}

// take takes one query from the budget, if any is left.
func (t *tally) take() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.queries >= t.budget {
		return false
	}
	t.queries++
	return true
}

func (t *tally) budgetLeft() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.budget - t.queries
}

// stop ends the pass for why (the first reason stays).
func (t *tally) stop(why string, err error) {
	t.add(func(s *Summary) {
		if s.Stopped != "" {
			return
		}
		s.Stopped = why
		if err != nil {
			s.StopError = err.Error()
			s.Errors++
		}
	})
}

func (t *tally) stopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s.Stopped != ""
}

func (t *tally) summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	if s.Transitions == nil {
		s.Transitions = map[string]int{}
	}
	if s.Backlog != nil {
		b := *s.Backlog
		s.Backlog = &b
	}
	return s
}
