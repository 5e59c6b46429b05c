package payout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// plan records request("100") as a campaign's planned row at recorded:
// no lease, never sent.
func plan(t *testing.T, store ledger.Store, recorded time.Time) {
	t.Helper()
	r := request("100")
	it := &ledger.Item{MchID: key.MchID, MchBillno: key.MchBillno, API: r.API, Fields: r.Fields, RecordedAt: recorded,
		Source: "campaign", CampaignID: "spring-2026", CampaignRow: 1}
	if err := store.Create(context.Background(), it); err != nil {
		t.Fatal(err)
	}
}

// TestSendPlanned: the first Send of a planned item's request takes its
// lease with Acquire (no Create), sends once and settles WeChat's answer
// (a refusal of this first send is FAILED: no earlier send is unknown); a
// repeat of a paid one is replayed without a call, and another request
// for the billno is refused. On both stores.
func TestSendPlanned(t *testing.T) {
	url := mototest.Start(t)
	tables := 0
	stores := []struct {
		name string
		new  func(t *testing.T) ledger.Store
	}{
		{"memory", func(*testing.T) ledger.Store { return ledger.NewMemory() }},
		{"dynamodb", func(t *testing.T) ledger.Store {
			tables++ // subtests run one at a time
			_, s := ledgertest.DynamoDBTable(t, url, fmt.Sprintf("payout-planned-%d", tables))
			return s
		}},
	}
	refused := &wxpay.Error{Outcome: wxpay.OutcomeFailed, Code: "NOTENOUGH", Message: "余额不足"}
	unknown := &wxpay.Error{Outcome: wxpay.OutcomeUnknown, Code: "SYSTEMERROR"}
	for _, tc := range []struct {
		name    string
		planned time.Duration // before the send
		req     payout.Request
		res     any
		err     error
		// what must come of the first Send
		calls   int
		code    string // the payout.Error's code, or WeChat's
		state   ledger.State
		acquire int // Acquires of the send
		// repeat: a second Send of the same request, replayed.
		repeat bool
	}{
		{name: "paid, then replayed", planned: time.Hour, res: paid, calls: 1, state: ledger.Sent, acquire: 1, repeat: true},
		{name: "sent the moment it is planned", res: paid, calls: 1, state: ledger.Sent, acquire: 1, repeat: true},
		{name: "refused: failed", planned: time.Hour, err: refused, calls: 1, code: "NOTENOUGH", state: ledger.Failed, acquire: 1},
		{name: "unknown", planned: time.Hour, err: unknown, calls: 1, code: "SYSTEMERROR", state: ledger.Unknown, acquire: 1},
		{name: "another request: conflict", planned: time.Hour, req: request("200"), calls: 0, code: payout.CodeBillnoConflict, state: ledger.Recorded},
	} {
		for _, st := range stores {
			t.Run(tc.name+" "+st.name, func(t *testing.T) {
				store := ledgertest.NewCounting(st.new(t))
				plan(t, store, base.Add(-tc.planned))
				store.Reset()
				c := &clock{now: base}
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
				if n := store.Counts(); n.Create != 0 || n.Acquire != tc.acquire || n.Settle != tc.calls {
					t.Errorf("ledger calls %+v, want no Create, %d Acquire, %d Settle", n, tc.acquire, tc.calls)
				}
				if c.slept != 0 {
					t.Errorf("waited %v: a planned item has no earlier try to wait after", c.slept)
				}
				it, err := store.Get(context.Background(), key)
				if err != nil {
					t.Fatal(err)
				}
				wantAttempts, wantFirst := tc.calls, time.Time{}
				if tc.calls > 0 {
					wantFirst = base
				}
				if it.State != tc.state || it.Attempts != wantAttempts || it.Settled != tc.calls || !it.FirstTriedAt.Equal(wantFirst) ||
					it.CampaignID != "spring-2026" || it.CampaignRow != 1 || it.LeaseOwner != "" {
					t.Errorf("item %s, attempts %d, settled %d, first tried %v, campaign %q row %d, lease %q; want %s, %d, %d, %v, spring-2026 row 1, none",
						it.State, it.Attempts, it.Settled, it.FirstTriedAt, it.CampaignID, it.CampaignRow, it.LeaseOwner,
						tc.state, wantAttempts, tc.calls, wantFirst)
				}
				if tc.calls > 0 && (out.Item == nil || out.Item.State != tc.state) {
					t.Errorf("outcome's item %+v, want %s", out.Item, tc.state)
				}
				if !tc.repeat {
					return
				}

				c.now = base.Add(time.Minute)
				again, err := p.Send(context.Background(), req, s.send)
				if err != nil {
					t.Fatalf("repeat: %v", err)
				}
				r, ok := again.Result.(*payout.Replay)
				if s.calls != 1 || !again.Replayed || !ok || r.SendListID != paid.SendListID || r.TotalAmount != 100 {
					t.Errorf("repeat: %d calls in all, replayed %v, result %#v; want 1 call, the stored answer", s.calls, again.Replayed, again.Result)
				}
				if after, err := store.Get(context.Background(), key); err != nil || after.Attempts != 1 || after.State != ledger.Sent {
					t.Errorf("after the repeat: %+v, %v; want SENT after 1 attempt", after, err)
				}
			})
		}
	}
}
