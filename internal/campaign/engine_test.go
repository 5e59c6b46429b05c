package campaign_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// wechat is the campaign's WeChat through a client of the simulator,
// counting the sends and noting when WeChat first refused the merchant.
type wechat struct {
	client *wxpay.Client
	sends  atomic.Int64
	// afterSend, when set, runs after each send with its outcome.
	afterSend func(n int64, err error)

	mu          sync.Mutex
	firstRefuse time.Time // the first NOTENOUGH
	sendsAfter  int       // sends started after it
}

func (w *wechat) MchID(ctx context.Context) (string, error) { return w.client.MchID(), nil }

func (w *wechat) SendFields(ctx context.Context, api string, fields map[string]string) (any, error) {
	w.mu.Lock()
	if !w.firstRefuse.IsZero() {
		w.sendsAfter++
	}
	w.mu.Unlock()
	n := w.sends.Add(1)
	res, err := w.client.SendFields(ctx, api, fields)
	var werr *wxpay.Error
	if errors.As(err, &werr) && werr.Code == "NOTENOUGH" {
		w.mu.Lock()
		if w.firstRefuse.IsZero() {
			w.firstRefuse = time.Now()
		}
		w.mu.Unlock()
	}
	if w.afterSend != nil {
		w.afterSend(n, err)
	}
	return res, err
}

// harness is a campaign engine over the simulator, a memory ledger and
// memory campaign state, with a folder for files and reports.
type harness struct {
	sim    *wxpaytest.Server
	wechat *wechat
	ledger *ledger.Memory
	store  *campaign.Memory
	watch  *watchedStore
	window *campaign.MemoryWindow
	engine *campaign.Engine
	dir    string
}

func newHarness(t *testing.T, limits wxpaytest.Limits, configure func(*campaign.Engine), opts ...wxpaytest.Option) *harness {
	t.Helper()
	sim := wxpaytest.NewServer(append(opts, wxpaytest.WithLimits(limits))...)
	t.Cleanup(sim.Close)
	client, err := sim.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{sim: sim, wechat: &wechat{client: client}, ledger: ledger.NewMemory(),
		store: campaign.NewMemory(), window: campaign.NewMemoryWindow(), dir: t.TempDir()}
	h.watch = &watchedStore{Store: h.store, paused: make(map[string]time.Time)}
	h.engine = &campaign.Engine{
		Campaigns: h.watch, Ledger: h.ledger, Window: h.window, WeChat: h.wechat,
		Open:    func(path string) (campaign.Source, error) { return campaign.LocalFile{Path: path}, nil },
		Reports: campaign.Dir(filepath.Join(h.dir, "reports")),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(h.engine)
	}
	return h
}

// file writes a CSV of n rows of amount fen each, one receiver per row,
// and returns its path.
func (h *harness) file(t *testing.T, name string, n int, amount int64, edit func(row int, line string) string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("re_openid,total_amount\n")
	for i := 1; i <= n; i++ {
		line := fmt.Sprintf("oUser%06d,%d", i, amount)
		if edit != nil {
			line = edit(i, line)
		}
		b.WriteString(line + "\n")
	}
	path := filepath.Join(h.dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func settings() campaign.Settings {
	return campaign.Settings{WxAppID: "wx8888888888888888", SendName: "Shop", ActName: "Spring", Wishing: "Thank you",
		Remark: "Have fun", ClientIP: "10.0.0.1"}
}

// items reads the campaign's rows from the ledger.
func (h *harness) items(t *testing.T, id string) []*ledger.Item {
	t.Helper()
	items, err := h.ledger.CampaignRows(context.Background(), id, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// paidOnce checks that every row of the campaign is paid, exactly once,
// and that WeChat paid nothing else.
func (h *harness) paidOnce(t *testing.T, id string, rows int) {
	t.Helper()
	h.paidOnce2(t, id, rows, 0)
}

// paidOnce2 is paidOnce when WeChat also paid others red packets.
func (h *harness) paidOnce2(t *testing.T, id string, rows, others int) {
	t.Helper()
	items := h.items(t, id)
	if len(items) != rows {
		t.Fatalf("ledger holds %d rows of campaign %s, want %d", len(items), id, rows)
	}
	for _, it := range items {
		if !it.State.Paid() {
			t.Errorf("row %d (%s) is %s %s, want paid", it.CampaignRow, it.MchBillno, it.State, it.ErrCode)
		}
		if n := h.sim.Payments(it.MchBillno); n != 1 {
			t.Errorf("row %d (%s) paid %d times, want once", it.CampaignRow, it.MchBillno, n)
		}
	}
	if n := h.sim.TotalPayments(); n != rows+others {
		t.Errorf("WeChat made %d payments, want %d", n, rows+others)
	}
}

func start(t *testing.T, h *harness, path string, s campaign.Settings) *campaign.Started {
	t.Helper()
	st, err := h.engine.Start(context.Background(), path, s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCampaignSendsEveryRowOnce: a file is planned, sent at its rate with
// no FREQ_LIMIT, reported, and the same file again pays nothing.
func TestCampaignSendsEveryRowOnce(t *testing.T) {
	const rows = 120
	h := newHarness(t, wxpaytest.Limits{RequestsPerSecond: 60}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 60, 10 })
	path := h.file(t, "spring.csv", rows, 100, nil)
	st := start(t, h, path, settings())
	if st.Existing || st.Campaign.State != campaign.Planning || st.Campaign.Rows != rows || st.Campaign.Amount != rows*100 || st.Campaign.Rate != 50 {
		t.Fatalf("Start = %+v", st.Campaign)
	}
	if h.wechat.sends.Load() != 0 || len(h.items(t, st.Campaign.ID)) != 0 {
		t.Fatal("Start sent or recorded rows; only a runner does")
	}
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != campaign.Done || c.Cursor != rows || c.Sent != rows || c.Outcomes["success"] != rows || c.FinishedAt.IsZero() {
		t.Fatalf("after Run: %+v", c)
	}
	h.paidOnce(t, c.ID, rows)
	if n := h.sim.RequestsTo(wxpay.PathSendRedpack); n != rows {
		t.Errorf("WeChat answered %d send requests for %d rows: FREQ_LIMIT or retries", n, rows)
	}
	for _, it := range h.items(t, c.ID) {
		if want := campaign.Billno(c.MchID, c.ID, it.CampaignRow); it.MchBillno != want || it.Source != "campaign" || it.CampaignID != c.ID {
			t.Errorf("row %d: billno %s source %s campaign %s, want %s campaign %s", it.CampaignRow, it.MchBillno, it.Source, it.CampaignID, want, c.ID)
		}
	}
	// Never faster than the rate (the limiter's promise; how close to it
	// a run comes is measured by the campaign benchmark).
	sum := readSummary(t, h, c.ID)
	if sum.RatePerS > 50*1.05 {
		t.Errorf("achieved rate %.1f/s, configured 50/s", sum.RatePerS)
	}

	// The same rows again, from another file name, in JSONL: nothing new.
	var jsonl strings.Builder
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&jsonl, `{"re_openid":"oUser%06d","total_amount":100}`+"\n", i)
	}
	again := filepath.Join(h.dir, "copy.jsonl")
	os.WriteFile(again, []byte(jsonl.String()), 0o600)
	st2 := start(t, h, again, settings())
	if !st2.Existing || st2.Campaign.ID != c.ID || st2.Campaign.State != campaign.Done {
		t.Fatalf("re-upload: %+v existing %v", st2.Campaign, st2.Existing)
	}
	if _, err := h.engine.Run(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if n := h.wechat.sends.Load(); n != rows {
		t.Errorf("%d sends after the re-upload, want still %d", n, rows)
	}
	h.paidOnce(t, c.ID, rows)
}

func readSummary(t *testing.T, h *harness, id string) campaign.Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "reports", id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s campaign.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".csv", ".html"} {
		if _, err := os.Stat(filepath.Join(h.dir, "reports", id+ext)); err != nil {
			t.Error(err)
		}
	}
	return s
}

// TestCampaignBadRowSendsNothing: one bad row refuses the file whole.
func TestCampaignBadRowSendsNothing(t *testing.T) {
	h := newHarness(t, wxpaytest.Limits{}, nil)
	path := h.file(t, "bad.csv", 50, 100, func(row int, line string) string {
		if row == 37 {
			return "oUser000037,abc"
		}
		return line
	})
	st := start(t, h, path, settings())
	if st.Campaign.State != campaign.Refused || len(st.Errors) != 1 || st.Errors[0].Row != 37 || st.Errors[0].Field != "total_amount" {
		t.Fatalf("Start = %+v, errors %+v", st.Campaign, st.Errors)
	}
	if c, err := h.engine.Run(context.Background(), st.Campaign.ID); err != nil || c.State != campaign.Refused {
		t.Fatalf("Run = %+v, %v", c, err)
	}
	if n := h.sim.Requests(); n != 0 {
		t.Errorf("WeChat saw %d requests, want none", n)
	}
	if n := len(h.items(t, st.Campaign.ID)); n != 0 {
		t.Errorf("the ledger holds %d rows of a refused file", n)
	}
	b, err := os.ReadFile(filepath.Join(h.dir, "reports", st.Campaign.ID+".csv"))
	if err != nil || !strings.Contains(string(b), "37,total_amount,") {
		t.Errorf("refusal report: %q, %v", b, err)
	}
}

// TestCampaignPausesWhenBalanceRunsOut: NOTENOUGH pauses the campaign
// within a second; after a top-up and a resume every row is paid once.
func TestCampaignPausesWhenBalanceRunsOut(t *testing.T) {
	const rows = 100
	h := newHarness(t, wxpaytest.Limits{Balance: 40 * 100}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	st := start(t, h, h.file(t, "p.csv", rows, 100, nil), settings())
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != campaign.Paused || !strings.HasPrefix(c.Reason, "NOTENOUGH") {
		t.Fatalf("after the balance ran out: %s %q", c.State, c.Reason)
	}
	h.wechat.mu.Lock()
	first, after := h.wechat.firstRefuse, h.wechat.sendsAfter
	h.wechat.mu.Unlock()
	paused := pausedAt(t, h, c.ID)
	if d := paused.Sub(first); d > time.Second {
		t.Errorf("paused %v after the first NOTENOUGH, want within 1 s", d)
	} else {
		t.Logf("paused %v after the first NOTENOUGH; %d sends started after it", d, after)
	}
	if after > campaign.DefaultWorkers {
		t.Errorf("%d sends started after the first NOTENOUGH, want at most the %d in flight", after, campaign.DefaultWorkers)
	}
	if paid := h.sim.TotalPayments(); paid != 40 {
		t.Errorf("%d paid before the pause, want the 40 the balance covered", paid)
	}
	if _, err := h.engine.Run(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if n := h.sim.TotalPayments(); n != 40 {
		t.Errorf("a paused campaign ran: %d paid", n)
	}

	h.sim.SetBalance(1_000_000)
	if c, err = h.engine.Resume(context.Background(), c.ID); err != nil || c.State != campaign.Running {
		t.Fatalf("Resume = %+v, %v", c, err)
	}
	if c, err = h.engine.Run(context.Background(), c.ID); err != nil || c.State != campaign.Done {
		t.Fatalf("after resume: %+v, %v", c, err)
	}
	h.paidOnce(t, c.ID, rows)
}

// pausedAt is when the campaign's pause was first stored.
func pausedAt(t *testing.T, h *harness, id string) time.Time {
	t.Helper()
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	at, ok := h.watch.paused[id]
	if !ok {
		t.Fatalf("campaign %s was never stored Paused", id)
	}
	return at
}

// watchedStore notes when each campaign is first stored Paused.
type watchedStore struct {
	campaign.Store
	mu     sync.Mutex
	paused map[string]time.Time
}

func (w *watchedStore) Put(ctx context.Context, c *campaign.Campaign) error {
	err := w.Store.Put(ctx, c)
	if err == nil && c.State == campaign.Paused {
		w.mu.Lock()
		if _, ok := w.paused[c.ID]; !ok {
			w.paused[c.ID] = time.Now()
		}
		w.mu.Unlock()
	}
	return err
}

// TestCampaignRefusedThenFixed: a refused file holds nothing: the file
// with its bad row fixed, or deleted, starts, under the same campaign_id
// or a derived one.
func TestCampaignRefusedThenFixed(t *testing.T) {
	bad := func(row int, line string) string {
		if row == 3 {
			return "oUser000003,abc"
		}
		return line
	}
	deleted := func(row int, line string) string {
		if row == 3 {
			return "" // the bad row deleted: the rest are the refused file's valid rows
		}
		return line
	}
	named := settings()
	named.CampaignID = "spring-2027"
	for _, tt := range []struct {
		name string
		s    campaign.Settings
	}{
		{"derived id", settings()},
		{"named", named},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, wxpaytest.Limits{}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
			refused := start(t, h, h.file(t, "bad.csv", 5, 100, bad), tt.s)
			if refused.Campaign.State != campaign.Refused {
				t.Fatalf("bad file: %s", refused.Campaign.State)
			}
			fixed := start(t, h, h.file(t, "fixed.csv", 5, 100, deleted), tt.s)
			if fixed.Existing || fixed.Campaign.State != campaign.Planning {
				t.Fatalf("fixed file: %s existing %v", fixed.Campaign.State, fixed.Existing)
			}
			if tt.s.CampaignID != "" && fixed.Campaign.ID != tt.s.CampaignID {
				t.Errorf("fixed file's id %s, want %s", fixed.Campaign.ID, tt.s.CampaignID)
			}
			c, err := h.engine.Run(context.Background(), fixed.Campaign.ID)
			if err != nil || c.State != campaign.Done {
				t.Fatalf("Run = %+v, %v", c, err)
			}
			h.paidOnce(t, c.ID, 4)
			// A running or finished campaign's id is not taken over.
			if _, err := h.engine.Start(context.Background(), h.file(t, "other.csv", 4, 100, nil), tt.s); tt.s.CampaignID != "" && err == nil {
				t.Error("another file took over a finished campaign's id")
			}
		})
	}
}
