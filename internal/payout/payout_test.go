package payout_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

var base = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// clock is a fake clock that Sleep moves on.
type clock struct {
	now    time.Time
	slept  time.Duration
	onWait func() // called at each wait, before time moves
}

func (c *clock) Now() time.Time { return c.now }

func (c *clock) Sleep(_ context.Context, d time.Duration) error {
	if c.onWait != nil {
		c.onWait()
	}
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

func request(amount string) payout.Request {
	return payout.Request{API: "sendredpack", Source: "direct", Fields: map[string]string{
		"mch_id": "1900000109", "mch_billno": "B1", "re_openid": "oUser", "total_amount": amount, "wxappid": "wx1",
	}}
}

var key = ledger.Key{MchID: "1900000109", MchBillno: "B1"}

// sender counts the calls to WeChat its send function makes.
type sender struct {
	calls int
	res   any
	err   error
}

func (s *sender) send(context.Context) (any, error) {
	s.calls++
	return s.res, s.err
}

var paid = &wxpay.SendResult{MchBillno: "B1", SendListID: "1000041701201612093000000001", Attempts: 1}

// seed writes an item as an earlier send left it.
func seed(t *testing.T, store ledger.Store, state ledger.State, lastTry time.Time, leaseUntil time.Time) {
	t.Helper()
	r := request("100")
	it := &ledger.Item{MchID: key.MchID, MchBillno: key.MchBillno, API: r.API, Fields: r.Fields, RecordedAt: lastTry, LeaseOwner: "earlier", LeaseUntil: leaseUntil}
	if err := store.Create(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	if state == ledger.Recorded {
		return
	}
	set := ledger.Settlement{Owner: "earlier", State: state, Now: lastTry}
	if state == ledger.Sent {
		set.SendListID = paid.SendListID
	}
	if err := store.Settle(context.Background(), key, set); err != nil {
		t.Fatal(err)
	}
}

func TestSend(t *testing.T) {
	refused := &wxpay.Error{Outcome: wxpay.OutcomeFailed, Code: "NOTENOUGH", Message: "余额不足"}
	unknown := &wxpay.Error{Outcome: wxpay.OutcomeUnknown, Code: "SYSTEMERROR"}
	cases := []struct {
		name      string
		seed      func(t *testing.T, s ledger.Store) // the item before the request
		req       payout.Request
		res       any
		err       error
		whileWait func(t *testing.T, s ledger.Store)
		// what must come of it
		calls    int
		code     string // the payout.Error's code, or WeChat's
		replayed bool
		state    ledger.State
		attempts int
		slept    time.Duration // at least
		maxSlept time.Duration // at most, when set
	}{
		{name: "fresh send", res: paid, calls: 1, state: ledger.Sent, attempts: 1},
		{name: "fresh refusal", err: refused, calls: 1, code: "NOTENOUGH", state: ledger.Failed, attempts: 1},
		{name: "fresh unknown", err: unknown, calls: 1, code: "SYSTEMERROR", state: ledger.Unknown, attempts: 1},
		{name: "paid: replayed", seed: func(t *testing.T, s ledger.Store) {
			seed(t, s, ledger.Sent, base.Add(-time.Hour), base.Add(-time.Hour))
		},
			calls: 0, replayed: true, state: ledger.Sent, attempts: 1},
		{name: "another request: conflict", seed: func(t *testing.T, s ledger.Store) {
			seed(t, s, ledger.Sent, base.Add(-time.Hour), base.Add(-time.Hour))
		},
			req: request("200"), calls: 0, code: payout.CodeBillnoConflict, state: ledger.Sent, attempts: 1},
		{name: "failed: sent again", seed: func(t *testing.T, s ledger.Store) {
			seed(t, s, ledger.Failed, base.Add(-time.Hour), base.Add(-time.Hour))
		},
			res: paid, calls: 1, state: ledger.Sent, attempts: 2},
		{name: "unknown: sent again, a refusal keeps it unknown", seed: func(t *testing.T, s ledger.Store) {
			seed(t, s, ledger.Unknown, base.Add(-time.Hour), base.Add(-time.Hour))
		},
			err: refused, calls: 1, code: "NOTENOUGH", state: ledger.Unknown, attempts: 2},
		{name: "died mid-call: lease over, sent again, a refusal keeps it unknown",
			seed: func(t *testing.T, s ledger.Store) {
				seed(t, s, ledger.Recorded, base.Add(-time.Hour), base.Add(-time.Minute))
			},
			err: refused, calls: 1, code: "NOTENOUGH", state: ledger.Unknown, attempts: 2},
		{name: "tried 300 ms ago: waits for the gap",
			seed: func(t *testing.T, s ledger.Store) {
				seed(t, s, ledger.Failed, base.Add(-300*time.Millisecond), base.Add(-300*time.Millisecond))
			},
			res: paid, calls: 1, state: ledger.Sent, attempts: 2, slept: 700 * time.Millisecond, maxSlept: 700 * time.Millisecond},
		{name: "in flight: IN_PROGRESS after the wait",
			seed:  func(t *testing.T, s ledger.Store) { seed(t, s, ledger.Recorded, base, base.Add(time.Minute)) },
			calls: 0, code: payout.CodeInProgress, state: ledger.Recorded, attempts: 1, slept: payout.MaxWait - time.Second, maxSlept: payout.MaxWait},
		{name: "in flight, then paid: replayed",
			seed: func(t *testing.T, s ledger.Store) { seed(t, s, ledger.Recorded, base, base.Add(time.Minute)) },
			whileWait: func(t *testing.T, s ledger.Store) {
				if err := s.Settle(context.Background(), key, ledger.Settlement{Owner: "earlier", State: ledger.Sent, SendListID: paid.SendListID, Now: base}); err != nil {
					t.Fatal(err)
				}
			},
			calls: 0, replayed: true, state: ledger.Sent, attempts: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := ledger.NewMemory()
			if tc.seed != nil {
				tc.seed(t, store)
			}
			c := &clock{now: base}
			if tc.whileWait != nil {
				c.onWait = func() { tc.whileWait(t, store); c.onWait = nil }
			}
			var logs bytes.Buffer
			p := &payout.Sender{Ledger: store, Now: c.Now, Sleep: c.Sleep, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
			s := &sender{res: tc.res, err: tc.err}
			req := tc.req
			if req.API == "" {
				req = request("100")
			}
			out, err := p.Send(context.Background(), req, s.send)
			if s.calls != tc.calls {
				t.Errorf("WeChat called %d times, want %d", s.calls, tc.calls)
			}
			var code string
			var perr *payout.Error
			var werr *wxpay.Error
			switch {
			case errors.As(err, &perr):
				code = perr.Code
			case errors.As(err, &werr):
				code = werr.Code
			case err != nil:
				t.Fatalf("error %v", err)
			}
			if code != tc.code {
				t.Errorf("code %q, want %q (%v)", code, tc.code, err)
			}
			if out.Replayed != tc.replayed {
				t.Errorf("replayed %v, want %v", out.Replayed, tc.replayed)
			}
			if tc.replayed {
				r, ok := out.Result.(*payout.Replay)
				if !ok || r.SendListID != paid.SendListID || r.ReOpenID != "oUser" || r.TotalAmount != 100 || !r.Replayed {
					t.Errorf("replayed result %#v", out.Result)
				}
			}
			it, err := store.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			if it.State != tc.state || it.Attempts != tc.attempts {
				t.Errorf("item %s after %d attempts, want %s after %d", it.State, it.Attempts, tc.state, tc.attempts)
			}
			if c.slept < tc.slept || (tc.maxSlept > 0 && c.slept > tc.maxSlept) {
				t.Errorf("waited %v, want %v to %v", c.slept, tc.slept, tc.maxSlept)
			}
			if tc.calls == 1 && out.Item == nil {
				t.Error("no item in the outcome")
			}
		})
	}
}

// TestSendWithoutLedger: without a ledger, the call is made as is.
func TestSendWithoutLedger(t *testing.T) {
	s := &sender{res: paid}
	out, err := (&payout.Sender{}).Send(context.Background(), request("100"), s.send)
	if err != nil || out.Result != paid || out.Item != nil || s.calls != 1 {
		t.Errorf("outcome %+v, %v after %d calls", out, err, s.calls)
	}
}

// failing is a ledger that fails every call after the first n.
type failing struct {
	ledger.Store
	getErr, settleErr error
}

func (f failing) Get(ctx context.Context, k ledger.Key) (*ledger.Item, error) {
	if f.getErr != nil {
		return nil, f.getErr
	}
	return f.Store.Get(ctx, k)
}

func (f failing) Settle(ctx context.Context, k ledger.Key, s ledger.Settlement) error {
	if f.settleErr != nil {
		return f.settleErr
	}
	return f.Store.Settle(ctx, k, s)
}

// TestLedgerUnavailable: nothing is sent without a record; a failed update
// after the send returns WeChat's outcome and logs it.
func TestLedgerUnavailable(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:1: connection refused")
	s := &sender{res: paid}
	_, err := (&payout.Sender{Ledger: failing{Store: ledger.NewMemory(), getErr: down}}).Send(context.Background(), request("100"), s.send)
	var perr *payout.Error
	if !errors.As(err, &perr) || perr.Code != payout.CodeLedgerUnavailable || !perr.Retryable || !errors.Is(err, down) || s.calls != 0 {
		t.Errorf("error %v after %d calls, want LEDGER_UNAVAILABLE and no call", err, s.calls)
	}

	var logs bytes.Buffer
	mem := ledger.NewMemory()
	p := &payout.Sender{Ledger: failing{Store: mem, settleErr: down}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	out, err := p.Send(context.Background(), request("100"), s.send)
	if err != nil || out.Result != paid {
		t.Errorf("outcome %+v, %v; want WeChat's success", out, err)
	}
	if it, _ := mem.Get(context.Background(), key); it.State != ledger.Recorded {
		t.Errorf("item %s, want Recorded for the reconciler", it.State)
	}
	if line := logs.String(); !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, `"mch_billno":"B1"`) || !strings.Contains(line, `"outcome":"success"`) {
		t.Errorf("log %s, want an error naming the billno and the outcome", line)
	}
}

// TestObserve: the query function stores the status it read and moves the
// state only where the ledger allows: an unknown send WeChat shows paid is
// SENT; an item needing attention ends only as paid and ended, anything
// else WeChat shows is left for a person.
func TestObserve(t *testing.T) {
	cases := []struct {
		state  ledger.State
		status string
		want   ledger.State
	}{
		{ledger.Unknown, wxpay.StatusSent, ledger.Sent},
		{ledger.Unknown, wxpay.StatusSending, ledger.Unknown},
		{ledger.Sent, wxpay.StatusReceived, ledger.Received},
		{ledger.Sent, wxpay.StatusFailed, ledger.Sent},
		{ledger.NeedsAttention, wxpay.StatusFailed, ledger.NeedsAttention},
		{ledger.NeedsAttention, wxpay.StatusSent, ledger.NeedsAttention},
		{ledger.NeedsAttention, wxpay.StatusRefund, ledger.Refunded},
	}
	for _, tc := range cases {
		t.Run(string(tc.state)+"+"+tc.status, func(t *testing.T) {
			store := ledger.NewMemory()
			seed(t, store, tc.state, base.Add(-time.Hour), base.Add(-time.Hour))
			p := &payout.Sender{Ledger: store, Now: func() time.Time { return base }}
			it, err := p.Observe(context.Background(), key, tc.status)
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := store.Get(context.Background(), key)
			if it.State != tc.want || stored.State != tc.want || stored.Status != tc.status {
				t.Errorf("returned %s, stored %s with status %q; want %s with %q", it.State, stored.State, stored.Status, tc.want, tc.status)
			}
		})
	}
}
