package campaign

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/metrics"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// WeChat is what a campaign asks of WeChat Pay, for one merchant.
type WeChat interface {
	// MchID is the merchant that pays.
	MchID(ctx context.Context) (string, error)
	// SendFields sends a recorded request exactly: its API and its
	// signed fields (wxpay.Client.SendFields).
	SendFields(ctx context.Context, api string, fields map[string]string) (any, error)
}

// Defaults of an Engine.
const (
	// DefaultRateLimit is WeChat's default limit of sends per second for
	// a merchant (1,800 a minute).
	DefaultRateLimit = 30
	// DefaultAPIReserve is the sends per second a campaign leaves to API
	// sends by default.
	DefaultAPIReserve = 10
	// DefaultWorkers is how many sends a runner has in flight at most:
	// enough to reach the rate when WeChat takes a few hundred
	// milliseconds per answer.
	DefaultWorkers = 16
)

// Engine starts, runs and controls campaigns. Build it once per execution
// environment; it is safe for concurrent use.
type Engine struct {
	// Campaigns keeps the campaigns' state.
	Campaigns Store
	// Ledger records every red packet; required.
	Ledger ledger.Store
	// Window is the stack's shared count of sends per second; nil paces
	// the campaign by its own rate only.
	Window Window
	// WeChat sends the rows.
	WeChat WeChat
	// Open opens a campaign's file by its Source (a local path, or
	// s3://bucket/key).
	Open func(source string) (Source, error)
	// Reports receives the reports.
	Reports Sink
	// RateLimit is WeChat's limit of sends per second for the merchant
	// (DefaultRateLimit when 0), and APIReserve the part of it campaigns
	// leave to API sends (DefaultAPIReserve when 0; negative for none).
	RateLimit, APIReserve int
	// Workers bounds the sends in flight (DefaultWorkers when 0).
	Workers int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep waits; wxpay.Sleep when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger logs; slog.Default when nil.
	Logger *slog.Logger
	// Progress, when set, is called after every checkpoint of a run.
	Progress func(*Campaign)
}

// CampaignRate is the most sends per second a campaign makes: RateLimit
// less APIReserve, at least 1.
func (e *Engine) CampaignRate() int {
	limit, reserve := e.RateLimit, e.APIReserve
	if limit <= 0 {
		limit = DefaultRateLimit
	}
	switch {
	case reserve == 0:
		reserve = DefaultAPIReserve
	case reserve < 0:
		reserve = 0
	}
	return max(1, limit-reserve)
}

// rateOf is a campaign's send rate: its settings' rate, within
// CampaignRate.
func (e *Engine) rateOf(s Settings) float64 {
	top := float64(e.CampaignRate())
	if s.Rate > 0 && s.Rate < top {
		return s.Rate
	}
	return top
}

// Errors of Run.
var (
	// errLost: another runner holds the campaign (this one's lease ended).
	errLost = errors.New("campaign: the runner's lease was lost")
)

// runnerMargin is how long a runner's lease outlasts its invocation's
// deadline, and defaultRun how long a run without a deadline holds it.
const (
	runnerMargin = 5 * time.Second
	defaultRun   = 15 * time.Minute
	// reserve is the time a run leaves itself before its deadline to
	// stop sending, let the sends in flight end and save its progress.
	reserve = 20 * time.Second
	// saveEvery is how often a run saves its progress and looks for a
	// pause or a cancel by request.
	saveEvery = 500 * time.Millisecond
)

// Run works on a campaign until no row is left to send, it is paused or
// cancelled, or its context's deadline nears: it plans the rows of a
// Planning campaign, then sends the rows of a Running one. At most one
// Run works on a campaign at a time; another returns at once with the
// campaign as it is. Work is saved in the campaign and the ledger as it
// goes, so that a run that dies is followed by one that goes on where it
// stopped, paying nothing twice.
func (e *Engine) Run(ctx context.Context, id string) (*Campaign, error) {
	owner := rand.Text()
	c, err := e.update(ctx, id, func(c *Campaign) error {
		if c.State != Planning && c.State != Running {
			return errNothingToDo
		}
		if !c.RunnerFree(e.now()) {
			return errNothingToDo
		}
		c.RunnerOwner, c.RunnerUntil = owner, runnerUntil(ctx, e.now())
		return nil
	})
	if errors.Is(err, errNothingToDo) {
		return e.Campaigns.Get(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	defer e.release(ctx, id, owner)
	log := e.logger().With(slog.String("campaign_id", id))

	if c.State == Planning {
		if c, err = e.planRows(ctx, c, owner, log); err != nil || c.State != Running {
			return c, err
		}
	}
	return e.sendRows(ctx, c, owner, log)
}

var errNothingToDo = errors.New("campaign: nothing to do")

// planRows records the rows of a Planning campaign and moves it to
// Running, or to Refused when rows' billnos are taken.
func (e *Engine) planRows(ctx context.Context, c *Campaign, owner string, log *slog.Logger) (*Campaign, error) {
	src, err := e.Open(c.Source)
	if err != nil {
		return c, fmt.Errorf("campaign %s: %w", c.ID, err)
	}
	planCtx, stop := context.WithCancel(ctx)
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		planCtx, stop = context.WithDeadline(ctx, deadline.Add(-reserve))
		defer stop()
	}
	errs, err := plan(planCtx, c, src, e.Ledger, e.now, func(planned int) error {
		saved, err := e.checkpoint(ctx, c.ID, owner, func(c *Campaign) { c.Planned = planned })
		if err == nil && saved.State != Planning {
			return errStopped
		}
		return err
	})
	switch {
	case errors.Is(err, ErrRefused):
		log.WarnContext(ctx, "campaign refused: rows' billnos are recorded otherwise", slog.Int("rows", len(errs)))
		c, uerr := e.checkpoint(ctx, c.ID, owner, func(c *Campaign) {
			c.State, c.Reason = Refused, fmt.Sprintf("%d rows' billnos are recorded with other requests", len(errs))
		})
		if uerr != nil {
			return c, uerr
		}
		return c, WriteRefusal(ctx, e.Reports, c, errs, e.now())
	case errors.Is(err, errStopped), err != nil && planCtx.Err() != nil && ctx.Err() == nil:
		return e.Campaigns.Get(ctx, c.ID) // paused, or out of time: the next run goes on
	case err != nil:
		return c, err
	}
	return e.checkpoint(ctx, c.ID, owner, func(c *Campaign) {
		c.Planned = c.Rows
		if c.State == Planning {
			c.State = Running
		}
	})
}

var errStopped = errors.New("campaign: stopped")

// outcome is what sending one row came to, for the run.
type rowResult struct {
	row     int
	done    bool   // the row needs no more sends by the campaign
	pause   string // a refusal for the whole merchant: pause, with this reason
	err     error  // the run cannot go on (the ledger is down)
	outcome string // for Campaign.Outcomes; empty when nothing was sent
}

// sendRows sends a Running campaign's rows after its cursor, in order, at
// its rate.
func (e *Engine) sendRows(ctx context.Context, c *Campaign, owner string, log *slog.Logger) (*Campaign, error) {
	if c.StartedAt.IsZero() {
		var err error
		if c, err = e.checkpoint(ctx, c.ID, owner, func(c *Campaign) { c.StartedAt = e.now() }); err != nil {
			return c, err
		}
	}
	sendCtx, stop := context.WithCancel(ctx)
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		sendCtx, stop = context.WithDeadline(ctx, deadline.Add(-reserve))
		defer stop()
	}

	pace := newPacing(c.Rate)
	rows := make(chan *ledger.Item)
	results := make(chan rowResult)
	workers := e.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	// The senders and the feed read the campaign as the run started; the
	// collector below keeps the latest saved one.
	started := c
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range rows {
				results <- e.sendRow(sendCtx, ctx, started, it, pace, log)
			}
		}()
	}
	var feedErr error
	go func() {
		feedErr = e.feed(sendCtx, started, rows, func(row int) { results <- rowResult{row: row, done: true} })
		close(rows)
		wg.Wait()
		close(results)
	}()

	// Collect: the cursor moves over rows done, in order. Progress is
	// saved every saveEvery, results or not, which is also when a pause
	// or a cancel by request is seen: the run stops starting sends.
	var (
		cursor      = c.Cursor
		done        = make(map[int]bool)
		tally       = make(map[string]int)
		sent        int
		pause       string
		pauseStored bool
		runErr      error
	)
	save := func(final bool) {
		saved, err := e.checkpoint(ctx, c.ID, owner, func(s *Campaign) {
			s.Cursor = max(s.Cursor, cursor)
			s.Sent += sent
			if len(tally) > 0 && s.Outcomes == nil {
				s.Outcomes = make(map[string]int)
			}
			for k, v := range tally {
				s.Outcomes[k] += v
			}
			// A pause stored at once stays as it is: a resume since
			// then is the merchant's word.
			if final && pause != "" && !pauseStored && s.State == Running {
				s.State, s.Reason = Paused, pause
			}
			if final && s.State == Running && s.Cursor >= s.Rows {
				// Done: the report follows at once (below).
				s.State, s.FinishedAt, s.ReportedAt = Done, e.now(), e.now()
			}
			if final && s.State == Cancelled {
				// Rows in flight settled after the cancel's report was
				// asked for.
				s.ReportDue = true
			}
		})
		if err != nil {
			runErr = firstError(runErr, err)
			stop()
			return
		}
		if sent > 0 {
			e.metric(ctx, metrics.Count(metrics.CampaignSends, sent), metrics.Count(metrics.CampaignFreqLimits, tally[codeFreqLimit]))
		}
		sent, tally = 0, make(map[string]int)
		c = saved
		if c.State != Running {
			stop() // paused or cancelled by request
		}
		if e.Progress != nil {
			e.Progress(c)
		}
	}
	tick := time.NewTicker(saveEvery)
	defer tick.Stop()
	for collecting := true; collecting; {
		select {
		case <-tick.C:
			save(false)
			continue
		case r, ok := <-results:
			if !ok {
				collecting = false
				continue
			}
			if r.outcome != "" {
				sent++
				tally[r.outcome]++
			}
			switch {
			case r.err != nil:
				runErr = firstError(runErr, r.err)
				stop()
			case r.pause != "":
				if pause == "" {
					// Pause at once: no more rows start, and whoever
					// looks sees why, while the sends in flight end.
					pause = r.pause
					stop()
					log.WarnContext(ctx, "campaign paused: WeChat refused the merchant", slog.String("reason", r.pause))
					if _, err := e.checkpoint(ctx, c.ID, owner, func(s *Campaign) {
						if s.State == Running {
							s.State, s.Reason = Paused, pause
						}
					}); err == nil {
						pauseStored = true
						e.metric(ctx, metrics.Count(metrics.CampaignPaused, 1))
					}
				}
			case r.done:
				done[r.row] = true
				for done[cursor+1] {
					delete(done, cursor+1)
					cursor++
				}
			}
		}
	}
	if feedErr != nil && !errors.Is(feedErr, context.Canceled) && !errors.Is(feedErr, context.DeadlineExceeded) {
		runErr = firstError(runErr, feedErr)
	}
	save(true)
	if pause != "" && !pauseStored && c.State == Paused {
		e.metric(ctx, metrics.Count(metrics.CampaignPaused, 1))
	}
	if c.State == Done {
		log.InfoContext(ctx, "campaign done: no row is left to send", slog.Int("rows", c.Rows))
		if err := e.report(ctx, c); err != nil {
			// The next tick writes it.
			_, _ = e.update(context.WithoutCancel(ctx), c.ID, func(c *Campaign) error { c.ReportDue = true; return nil })
			return c, err
		}
	}
	return c, runErr
}

// firstError keeps the first error.
func firstError(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// feed passes the campaign's rows after its cursor that need a send to
// rows, in row order, and calls skip for those that need none. It reads
// them from the ledger's campaign index, which may lag: a row missing
// from a page is read again, never skipped.
func (e *Engine) feed(ctx context.Context, c *Campaign, rows chan<- *ledger.Item, skip func(row int)) error {
	after, misses := c.Cursor, 0
	for after < c.Rows {
		page, err := e.Ledger.CampaignRows(ctx, c.ID, after, 200)
		if err != nil {
			return fmt.Errorf("campaign %s: read rows after %d: %w", c.ID, after, err)
		}
		progressed := false
		for _, it := range page {
			if it.CampaignRow <= after {
				// Two items for one row: never send either on a guess.
				return fmt.Errorf("campaign %s: row %d is recorded twice in the ledger (%s): left for a person", c.ID, it.CampaignRow, it.MchBillno)
			}
			if it.CampaignRow != after+1 {
				break // the index has not caught up with this row yet
			}
			after, progressed = it.CampaignRow, true
			if !needsSend(it) {
				skip(it.CampaignRow)
				continue
			}
			select {
			case rows <- it:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !progressed {
			if misses++; misses > 20 {
				return fmt.Errorf("campaign %s: row %d is not in the ledger's campaign index", c.ID, after+1)
			}
			if err := e.sleep(ctx, 500*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		misses = 0
	}
	return nil
}

// needsSend reports whether the campaign sends a row: one never tried,
// or one WeChat refused for the whole merchant (NOTENOUGH, ...) or for
// the rate (FREQ_LIMIT), which the campaign sends again with the same
// billno. Any other row is settled, or the reconciler's: a row whose
// outcome is not known (Unknown, or Recorded and tried: its runner died
// mid-call) is followed by the reconciler, which sends it again if WeChat
// has no record of it.
func needsSend(it *ledger.Item) bool {
	switch it.State {
	case ledger.Recorded:
		return it.Attempts == 0
	case ledger.Failed:
		return resend[it.ErrCode] || pausing[it.ErrCode] || it.ErrCode == codeNoAuth
	}
	return false
}

// The refusals the runner treats apart.
const (
	codeFreqLimit = "FREQ_LIMIT"
	// codeNoAuth is WeChat's refusal of the merchant (caller IP, product)
	// and also its risk control's refusal of one receiver ("此请求可能存在
	// 风险，已被微信拦截"): see noAuthOfReceiver.
	codeNoAuth = "NO_AUTH"
	// codeConfig is the ledger's err_code of a send the merchant's
	// secret kept from being made.
	codeConfig = payout.CodeConfig
)

// noAuthOfReceiver reports whether a NO_AUTH refusal of a row is WeChat's
// risk control holding its receiver, so that the row is FAILED and the
// campaign goes on, rather than the merchant's (the caller IP, the
// product), which pauses it: WeChat says so ("风险", risk), or the row was
// refused NO_AUTH before and resent by a resume, so that one receiver
// cannot hold the campaign for ever.
func noAuthOfReceiver(werr *wxpay.Error, it *ledger.Item) bool {
	return strings.Contains(werr.Message, "风险") || it != nil && it.Attempts >= 2
}

// resend are the refusals after which nothing was paid and the row is
// sent again: the rate, a send never made (NOT_ATTEMPTED: the deadline
// came first; CONFIG_ERROR or no code: the secret could not be used).
var resend = map[string]bool{
	codeFreqLimit:          true,
	wxpay.CodeNotAttempted: true,
	codeConfig:             true,
	"":                     true,
}

// pausing are WeChat's refusals that concern the merchant, not the
// receiver: every row after would be refused alike, so the campaign
// pauses at once, and the row is sent again on resume.
var pausing = map[string]bool{
	"NOTENOUGH":         true, // the balance is too low: top up, then resume
	"SENDAMOUNT_LIMIT":  true, // the merchant's amount for the day is reached
	"SIGN_ERROR":        true, // the APIv2 key does not match
	"CA_ERROR":          true, // the certificate is refused
	"ILLEGAL_APPID":     true, // the wxappid is not the merchant's
	"API_METHOD_CLOSED": true, // the product is closed for the merchant
	codeConfig:          true, // the merchant's secret cannot be used
}

// pacing is a run's rate: the campaign's, slowed by a fifth at most once a
// second while WeChat answers FREQ_LIMIT, and back up by a tenth of it
// every ten seconds without one.
type pacing struct {
	limiter *rate.Limiter
	target  rate.Limit

	mu       sync.Mutex
	slowedAt time.Time
}

func newPacing(r float64) *pacing {
	return &pacing{limiter: rate.NewLimiter(rate.Limit(r), 1), target: rate.Limit(r)}
}

// slow notes a FREQ_LIMIT at now and returns the rate.
func (p *pacing) slow(now time.Time) rate.Limit {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.slowedAt) >= time.Second {
		p.slowedAt = now
		p.limiter.SetLimitAt(now, max(p.limiter.Limit()*0.8, min(p.target, 1)))
	}
	return p.limiter.Limit()
}

// recover raises a slowed rate again after ten quiet seconds.
func (p *pacing) recover(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.limiter.Limit(); l < p.target && now.Sub(p.slowedAt) >= 10*time.Second {
		p.slowedAt = now
		p.limiter.SetLimitAt(now, min(p.target, l+p.target/10))
	}
}

// sendRow sends one row through the one send path, as many times as
// FREQ_LIMIT asks, at the campaign's pace. ctx stops the pacing (a pause,
// a cancel, the run's time up); a send once started runs under callCtx,
// the invocation's, because stopping a call midway leaves its outcome
// unknown.
func (e *Engine) sendRow(ctx, callCtx context.Context, c *Campaign, it *ledger.Item, p *pacing, log *slog.Logger) rowResult {
	res := rowResult{row: it.CampaignRow}
	sender := &payout.Sender{Ledger: e.Ledger, Now: e.Now, Sleep: e.Sleep, Logger: e.logger()}
	req := payout.Request{API: it.API, Fields: it.Fields, Source: LedgerSource, CampaignID: c.ID}
	for {
		if err := e.pace(ctx, c, p.limiter); err != nil {
			if ctx.Err() == nil {
				res.err = err
			}
			return res
		}
		out, err := sender.Send(callCtx, req, func(ctx context.Context) (any, error) {
			return e.WeChat.SendFields(ctx, it.API, it.Fields)
		})
		var (
			perr *payout.Error
			werr *wxpay.Error
			cerr *credstore.ConfigError
		)
		refused := errors.As(err, &werr) && werr.Outcome == wxpay.OutcomeFailed
		switch {
		case err == nil:
			if !out.Replayed {
				res.outcome = string(ledger.OutcomeSuccess)
			}
			res.done = true
			p.recover(time.Now())
		case errors.As(err, &perr):
			if perr.Code == payout.CodeLedgerUnavailable {
				res.err = err
				return res
			}
			res.done = true // in flight elsewhere, or a conflict: the reconciler's, or a person's
			log.WarnContext(ctx, "campaign row not sent", slog.Int("row", it.CampaignRow), slog.String("mch_billno", it.MchBillno), slog.String("code", perr.Code))
		case refused && werr.Code == codeFreqLimit:
			res.outcome = codeFreqLimit
			// Slow down, and send the row again with the same billno.
			r := p.slow(time.Now())
			log.WarnContext(ctx, "campaign slowed: WeChat answered FREQ_LIMIT", slog.Float64("rate", float64(r)))
			if ctx.Err() != nil {
				return res
			}
			continue
		case refused && pausing[werr.Code]:
			res.outcome, res.pause = werr.Code, werr.Code+": "+werr.Message
		case refused && werr.Code == codeNoAuth:
			res.outcome = werr.Code
			if noAuthOfReceiver(werr, out.Item) {
				res.done = true // one receiver held: FAILED, and on
				log.WarnContext(ctx, "campaign row refused NO_AUTH for its receiver: FAILED", slog.Int("row", it.CampaignRow),
					slog.String("mch_billno", it.MchBillno), slog.String("err_code_des", werr.Message))
			} else {
				res.pause = werr.Code + ": " + werr.Message
			}
		case refused && werr.Code == wxpay.CodeNotAttempted:
			return res // nothing sent: the row waits for the next run
		case errors.As(err, &cerr) && cerr.Temporary():
			// The secret could not be fetched just now: nothing was sent;
			// the next run tries again.
			res.err = err
			return res
		case errors.As(err, &cerr):
			res.outcome, res.pause = codeConfig, codeConfig+": "+cerr.Error()
		default:
			res.outcome, res.done = string(outcomeOf(err)), true
		}
		return res
	}
}

func outcomeOf(err error) ledger.Outcome {
	switch wxpay.OutcomeOf(err) {
	case wxpay.OutcomeFailed:
		return ledger.OutcomeFailed
	case wxpay.OutcomeSuccess:
		return ledger.OutcomeSuccess
	}
	return ledger.OutcomeUnknown
}

// pace waits for the campaign's next send: its own rate, then room in the
// stack's shared second.
func (e *Engine) pace(ctx context.Context, c *Campaign, limiter *rate.Limiter) error {
	for {
		if err := limiter.Wait(ctx); err != nil {
			return err
		}
		if e.Window == nil {
			return nil
		}
		now := e.now()
		ok, err := e.Window.Take(ctx, c.MchID, now, e.CampaignRate())
		if err != nil {
			return fmt.Errorf("campaign %s: the send window: %w", c.ID, err)
		}
		if ok {
			return nil
		}
		next := now.Truncate(time.Second).Add(time.Second)
		if err := e.sleep(ctx, next.Sub(now)); err != nil {
			return err
		}
	}
}

// checkpoint saves a run's progress: f's changes, if the run still holds
// the campaign.
func (e *Engine) checkpoint(ctx context.Context, id, owner string, f func(*Campaign)) (*Campaign, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return e.update(ctx, id, func(c *Campaign) error {
		if c.RunnerOwner != owner {
			return errLost
		}
		f(c)
		return nil
	})
}

// release gives up the run's hold on the campaign.
func (e *Engine) release(ctx context.Context, id, owner string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := e.update(ctx, id, func(c *Campaign) error {
		if c.RunnerOwner != owner {
			return errNothingToDo
		}
		c.RunnerOwner, c.RunnerUntil = "", time.Time{}
		return nil
	})
	if err != nil && !errors.Is(err, errNothingToDo) {
		e.logger().WarnContext(ctx, "campaign: the runner's hold could not be released; it ends by itself", slog.String("campaign_id", id), slog.String("error", err.Error()))
	}
}

// update reads a campaign, applies f and writes it, again while another
// writer wins the race. f's error stops it and is returned.
func (e *Engine) update(ctx context.Context, id string, f func(*Campaign) error) (*Campaign, error) {
	for {
		c, err := e.Campaigns.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := f(c); err != nil {
			return c, err
		}
		c.UpdatedAt = e.now()
		err = e.Campaigns.Put(ctx, c)
		if errors.Is(err, ErrVersion) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("campaign %s: save: %w", id, err)
		}
		return c, nil
	}
}

// runnerUntil is when a run started at now ends at the latest.
func runnerUntil(ctx context.Context, now time.Time) time.Time {
	if deadline, ok := ctx.Deadline(); ok {
		return deadline.Add(runnerMargin)
	}
	return now.Add(defaultRun)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	return wxpay.Sleep(ctx, d)
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// metric logs one EMF line with ms, in the functions' namespace.
func (e *Engine) metric(ctx context.Context, ms ...metrics.Metric) {
	e.logger().LogAttrs(ctx, slog.LevelInfo, "metrics", metrics.Plain(e.now(), ms...).Attrs()...)
}

// report writes the campaign's three reports from its rows in the ledger.
func (e *Engine) report(ctx context.Context, c *Campaign) error {
	if e.Reports == nil {
		return nil
	}
	if _, err := WriteReport(ctx, e.Reports, c, LedgerRows(e.Ledger, c.ID), e.now()); err != nil {
		return fmt.Errorf("campaign %s: report: %w", c.ID, err)
	}
	return nil
}

// LedgerRows reads a campaign's rows from the ledger's campaign index, in
// row order, a page at a time: the rows a report is made of.
func LedgerRows(store ledger.Store, id string) Rows {
	return func(ctx context.Context, yield func(*ledger.Item) bool) error {
		after := 0
		for {
			page, err := store.CampaignRows(ctx, id, after, 500)
			if err != nil || len(page) == 0 {
				return err
			}
			for _, it := range page {
				if !yield(it) {
					return nil
				}
			}
			after = page[len(page)-1].CampaignRow
		}
	}
}
