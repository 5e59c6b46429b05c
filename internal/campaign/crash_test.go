package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

var errDied = errors.New("the runner's process died")

// dyingLedger and dyingStore stop writing and reading when died is set,
// as a runner's process that died would.
type dyingLedger struct {
	ledger.Store
	died *atomic.Bool
}

func (d dyingLedger) Get(ctx context.Context, k ledger.Key) (*ledger.Item, error) {
	if d.died.Load() {
		return nil, errDied
	}
	return d.Store.Get(ctx, k)
}

func (d dyingLedger) Create(ctx context.Context, it *ledger.Item) error {
	if d.died.Load() {
		return errDied
	}
	return d.Store.Create(ctx, it)
}

func (d dyingLedger) Acquire(ctx context.Context, k ledger.Key, l ledger.Lease) (*ledger.Item, error) {
	if d.died.Load() {
		return nil, errDied
	}
	return d.Store.Acquire(ctx, k, l)
}

func (d dyingLedger) Settle(ctx context.Context, k ledger.Key, s ledger.Settlement) error {
	if d.died.Load() {
		return errDied
	}
	return d.Store.Settle(ctx, k, s)
}

func (d dyingLedger) CampaignRows(ctx context.Context, id string, after, limit int) ([]*ledger.Item, error) {
	if d.died.Load() {
		return nil, errDied
	}
	return d.Store.CampaignRows(ctx, id, after, limit)
}

type dyingStore struct {
	campaign.Store
	died *atomic.Bool
}

func (d dyingStore) Get(ctx context.Context, id string) (*campaign.Campaign, error) {
	if d.died.Load() {
		return nil, errDied
	}
	return d.Store.Get(ctx, id)
}

func (d dyingStore) Put(ctx context.Context, c *campaign.Campaign) error {
	if d.died.Load() {
		return errDied
	}
	return d.Store.Put(ctx, c)
}

// merchant is the reconciler's WeChat: the simulator's client.
type merchant struct{ client *wxpay.Client }

func (m merchant) MchID(context.Context) (string, error) { return m.client.MchID(), nil }

func (m merchant) QueryRedpack(ctx context.Context, appid, billno string) (*wxpay.QueryResult, error) {
	return m.client.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: billno, AppID: appid})
}

func (m merchant) SendFields(ctx context.Context, api string, fields map[string]string) (any, error) {
	return m.client.SendFields(ctx, api, fields)
}

// TestCampaignCrashThenRestart: the runner's process dies in the middle
// of the campaign, with sends WeChat paid and the ledger never told; a
// new runner goes on where the last checkpoint left it, the reconciler
// settles the sends that died mid-call, and every row is paid once.
func TestCampaignCrashThenRestart(t *testing.T) {
	const rows, crashAt = 150, 60
	h := newHarness(t, wxpaytest.Limits{}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	st := start(t, h, h.file(t, "crash.csv", rows, 100, nil), settings())

	var died atomic.Bool
	h.wechat.afterSend = func(n int64, err error) {
		if n == crashAt {
			died.Store(true) // after WeChat paid the 60th: its outcome is lost
		}
	}
	dying := *h.engine
	dying.Ledger, dying.Campaigns = dyingLedger{h.ledger, &died}, dyingStore{h.engine.Campaigns, &died}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := dying.Run(ctx, st.Campaign.ID); err == nil {
		t.Fatal("the dying run returned no error")
	}
	cancel()
	h.wechat.afterSend = nil
	paidBefore := h.sim.TotalPayments()
	if paidBefore < crashAt || paidBefore >= rows {
		t.Fatalf("%d paid before the crash, want at least %d and not all", paidBefore, crashAt)
	}
	stuck := 0
	for _, it := range h.items(t, st.Campaign.ID) {
		if it.State == ledger.Recorded && it.Attempts > 0 {
			stuck++
		}
	}
	if stuck == 0 {
		t.Fatal("no row was left mid-call by the crash: the test proves nothing")
	}

	// A new runner, after the dead one's hold and leases ended.
	later := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	restarted := *h.engine
	restarted.Now = later(2 * time.Minute)
	c, err := restarted.Run(context.Background(), st.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != campaign.Done {
		t.Fatalf("after the restart: %s %q, cursor %d", c.State, c.Reason, c.Cursor)
	}
	// The reconciler settles the rows whose sends died mid-call.
	rec := &reconcile.Reconciler{Ledger: h.ledger, WeChat: merchant{h.wechat.client}, Now: later(5 * time.Minute),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	sum := rec.RunOnce(context.Background())
	if sum.Settled < stuck {
		t.Errorf("the reconciler settled %d rows, want the %d left mid-call: %+v", sum.Settled, stuck, sum)
	}
	h.paidOnce(t, c.ID, rows)
}

// TestCampaignLeavesRoomForAPISends: API sends at 5 a second during a
// campaign at its full rate, under WeChat's default limit of 30 a second:
// no API send meets FREQ_LIMIT, and neither does the campaign.
func TestCampaignLeavesRoomForAPISends(t *testing.T) {
	const rows = 140 // 7 s at the default 20 a second
	h := newHarness(t, wxpaytest.Limits{RequestsPerSecond: campaign.DefaultRateLimit}, nil)
	st := start(t, h, h.file(t, "full.csv", rows, 100, nil), settings())
	if st.Campaign.Rate != campaign.DefaultRateLimit-campaign.DefaultAPIReserve {
		t.Fatalf("campaign rate %v, want the default %d", st.Campaign.Rate, campaign.DefaultRateLimit-campaign.DefaultAPIReserve)
	}
	ctx, stop := context.WithCancel(context.Background())
	apiDone := make(chan int)
	go func() {
		sent := 0
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				apiDone <- sent
				return
			case <-tick.C:
			}
			// An API send counts itself in the shared window, as the send
			// functions do, then goes to WeChat at once.
			h.window.Count(ctx, h.wechat.client.MchID(), time.Now())
			sent++
			_, err := h.wechat.client.SendRedpack(context.Background(), &wxpay.SendRequest{
				MchBillno: fmt.Sprintf("api%d", time.Now().UnixNano()), WxAppID: "wx8888888888888888",
				SendName: "Shop", ReOpenID: fmt.Sprintf("oApi%04d", sent), TotalAmount: 100, TotalNum: 1,
				Wishing: "Hi", ClientIP: "10.0.0.1", ActName: "Now", Remark: "r"})
			if err != nil {
				t.Errorf("API send %d: %v", sent, err)
			}
		}
	}()
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	stop()
	api := <-apiDone
	if err != nil || c.State != campaign.Done {
		t.Fatalf("Run = %+v, %v", c, err)
	}
	if api < 20 {
		t.Fatalf("only %d API sends during the campaign", api)
	}
	// Every send was answered at the first request: a FREQ_LIMIT would
	// have made the client ask again.
	if n := h.sim.RequestsTo(wxpay.PathSendRedpack); n != rows+api {
		t.Errorf("WeChat answered %d send requests for %d rows and %d API sends: some met FREQ_LIMIT", n, rows, api)
	}
	if c.Outcomes["FREQ_LIMIT"] != 0 {
		t.Errorf("the campaign met FREQ_LIMIT %d times", c.Outcomes["FREQ_LIMIT"])
	}
	h.paidOnce2(t, c.ID, rows, api)
}
