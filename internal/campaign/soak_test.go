package campaign_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// TestCampaignSoak runs a campaign at the stack's default rate (WeChat's
// 30 sends a second, 10 kept for API sends: 20 a second) against a
// simulator that enforces WeChat's limit, with some sends answered
// PROCESSING after WeChat paid them, then the reconciler until every row
// is at its end: received, or refunded after WeChat's claim window. It
// checks that no send met FREQ_LIMIT, nothing was paid twice, every row
// ended, and the report followed the reconciler.
//
// CI runs 100 rows (5 s); CAMPAIGN_N=10000 (make campaign-soak) runs the
// issue's 10,000 and checks that the achieved rate is within 5% of the
// configured one, a figure a loaded machine may miss, so that only the
// long run asserts it.
func TestCampaignSoak(t *testing.T) {
	rows := 100
	if v := os.Getenv("CAMPAIGN_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("CAMPAIGN_N=%q: want a whole number of at least 10", v)
		}
		rows = n
	}
	clock := wxpaytest.NewAcceleratedClock(time.Now(), 1)
	h := newHarness(t, wxpaytest.Limits{RequestsPerSecond: campaign.DefaultRateLimit, UserDailyCount: -1},
		func(e *campaign.Engine) { e.Now = clock.Now },
		wxpaytest.WithClock(clock.Now), wxpaytest.WithTimeline(wxpaytest.Timeline{Claim: 30 * time.Minute}))
	st := start(t, h, h.file(t, "soak.csv", rows, 100, nil), settings())
	c := st.Campaign
	// Every 10th receiver never claims (refunded after 24 hours), every
	// 25th send is answered PROCESSING after WeChat paid it (unknown).
	unknowns := 0
	for row := 1; row <= rows; row++ {
		billno := campaign.Billno(c.MchID, c.ID, row)
		if row%10 == 0 {
			h.sim.SetFate(billno, wxpaytest.Fate{Claim: -1})
		}
		if row%25 == 0 {
			h.sim.FailSends(billno, wxpaytest.Fault{Kind: wxpaytest.FaultProcessingAfterPay})
			unknowns++
		}
	}

	began := time.Now()
	c, err := h.engine.Run(context.Background(), c.ID)
	if err != nil || c.State != campaign.Done {
		t.Fatalf("Run = %+v, %v", c, err)
	}
	took := time.Since(began)
	sum := readSummary(t, h, c.ID)
	configured := float64(campaign.DefaultRateLimit - campaign.DefaultAPIReserve)
	t.Logf("%d rows in %v: achieved %.2f sends/s, configured %.0f (%.1f%%); outcomes %v", rows, took.Round(time.Millisecond),
		sum.RatePerS, configured, 100*(sum.RatePerS-configured)/configured, c.Outcomes)
	if sum.RatePerS > configured*1.05 || rows >= 1000 && sum.RatePerS < configured*0.95 {
		t.Errorf("achieved %.2f sends/s, want within 5%% of %.0f", sum.RatePerS, configured)
	}
	if n := c.Outcomes["FREQ_LIMIT"]; n != 0 {
		t.Errorf("%d sends met FREQ_LIMIT at the default rate", n)
	}
	if n := h.sim.RequestsTo(wxpay.PathSendRedpack); n != rows {
		t.Errorf("WeChat answered %d send requests for %d rows: FREQ_LIMIT or retries", n, rows)
	}
	if c.Outcomes["unknown"] != unknowns {
		t.Errorf("%d unknown outcomes, want the %d injected", c.Outcomes["unknown"], unknowns)
	}

	// The reconciler, an hour of WeChat's time between passes, until
	// every row is at its end; each pass's moved campaigns get their
	// reports again, as ReconcileFunction and CampaignRunFunction do.
	rec := &reconcile.Reconciler{Ledger: h.ledger, WeChat: merchant{h.wechat.client}, Now: clock.Now, Budget: rows,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for pass := 0; pass < 40 && !allFinal(t, h, c.ID); pass++ {
		clock.Advance(time.Hour)
		s := rec.RunOnce(context.Background())
		for _, id := range s.Campaigns {
			if err := h.engine.MarkReportDue(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.engine.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[ledger.State]int{}
	for _, it := range h.items(t, c.ID) {
		counts[it.State]++
	}
	if want := rows / 10; counts[ledger.Refunded] != want || counts[ledger.Received] != rows-want {
		t.Errorf("final states %v, want %d REFUNDED and the rest RECEIVED", counts, want)
	}
	h.paidOnce(t, c.ID, rows)
	final := readSummary(t, h, c.ID)
	if final.States["RECEIVED"].Count != counts[ledger.Received] || final.States["REFUNDED"].Count != counts[ledger.Refunded] {
		t.Errorf("the last report shows %v, the ledger %v", final.States, counts)
	}
	t.Logf("final: %v; the report agrees", counts)
}

// allFinal reports whether every row of the campaign is at its end.
func allFinal(t *testing.T, h *harness, id string) bool {
	for _, it := range h.items(t, id) {
		if !it.State.Final() {
			return false
		}
	}
	return true
}
