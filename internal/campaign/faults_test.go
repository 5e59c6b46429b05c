package campaign_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// configFlaky returns a credstore.ConfigError (Secrets Manager throttled:
// nothing sent) for sends 10 to 12, then sends normally.
type configFlaky struct {
	*wechat
	n    atomic.Int64
	fail atomic.Bool
}

func (w *configFlaky) SendFields(ctx context.Context, api string, fields map[string]string) (any, error) {
	if n := w.n.Add(1); w.fail.Load() && n >= 10 && n <= 12 {
		return nil, &credstore.ConfigError{Field: "secret", Reason: "ThrottlingException"}
	}
	return w.wechat.SendFields(ctx, api, fields)
}

// TestCampaignConfigErrorRowsSentAgain: rows refused with CONFIG_ERROR (nothing
// sent) are Failed with no err_code; after resume they are never sent.
func TestCampaignConfigErrorRowsSentAgain(t *testing.T) {
	const rows = 40
	h := newHarness(t, wxpaytest.Limits{}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	flaky := &configFlaky{wechat: h.wechat}
	flaky.fail.Store(true)
	h.engine.WeChat = flaky
	st := start(t, h, h.file(t, "c.csv", rows, 100, nil), settings())
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after run 1: %s %q cursor %d", c.State, c.Reason, c.Cursor)
	flaky.fail.Store(false) // the secret is readable again
	if c, err = h.engine.Resume(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if c, err = h.engine.Run(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("after resume: %s cursor %d", c.State, c.Cursor)
	for _, it := range h.items(t, c.ID) {
		if !it.State.Paid() {
			t.Errorf("row %d: %s err_code %q attempts %d: never paid, campaign %s", it.CampaignRow, it.State, it.ErrCode, it.Attempts, c.State)
		}
	}
}

// slowAfterRefuse makes every send take 200 ms, so that sends are in
// flight when the first NOTENOUGH pauses the campaign; on that pause the
// merchant tops up and resumes at once.
func TestCampaignResumeDuringPauseStands(t *testing.T) {
	const rows = 100
	h := newHarness(t, wxpaytest.Limits{Balance: 40 * 100}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	st := start(t, h, h.file(t, "p.csv", rows, 100, nil), settings())
	var once sync.Once
	resumed := make(chan error, 1)
	h.wechat.afterSend = func(n int64, err error) {
		time.Sleep(200 * time.Millisecond)
		if err != nil && strings.Contains(err.Error(), "NOTENOUGH") {
			once.Do(func() {
				go func() {
					for {
						c, _ := h.store.Get(context.Background(), st.Campaign.ID)
						if c.State == campaign.Paused {
							break
						}
						time.Sleep(time.Millisecond)
					}
					h.sim.SetBalance(1_000_000)
					_, err := h.engine.Resume(context.Background(), st.Campaign.ID)
					resumed <- err
				}()
			})
		}
	}
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-resumed; err != nil {
		t.Fatalf("Resume: %v", err)
	}
	c, _ = h.store.Get(context.Background(), c.ID)
	if c.State != campaign.Running {
		t.Errorf("the merchant resumed (200 OK, RUNNING) while sends were in flight; the campaign is now %s %q", c.State, c.Reason)
	}
}

// TestCampaignRefusedWhilePlanningRecordsNothing: a file one of whose own
// billnos an API send took is refused while planning, before any row is
// recorded; the corrected file under the same campaign_id is then the
// campaign, and only its rows are sent.
func TestCampaignRefusedWhilePlanningRecordsNothing(t *testing.T) {
	h := newHarness(t, wxpaytest.Limits{}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	mch := h.wechat.client.MchID()
	now := time.Now()
	// An earlier API send took billno A003.
	if err := h.ledger.Create(context.Background(), &ledger.Item{MchID: mch, MchBillno: "A003", API: "sendredpack",
		Fields: map[string]string{"mch_id": mch, "mch_billno": "A003"}, RecordedAt: now, LeaseOwner: "api", LeaseUntil: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	write := func(name, prefix string, amount int) string {
		var b strings.Builder
		b.WriteString("mch_billno,re_openid,total_amount\n")
		for i := 1; i <= 5; i++ {
			fmt.Fprintf(&b, "%s%03d,oUser%06d,%d\n", prefix, i, i, amount)
		}
		p := filepath.Join(h.dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := settings()
	s.CampaignID = "spring"
	st := start(t, h, write("old.csv", "A", 100), s)
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	if err != nil || c.State != campaign.Refused || !strings.Contains(c.Reason, "billnos") {
		t.Fatalf("the file with a taken billno: %s %q, %v; want REFUSED", c.State, c.Reason, err)
	}
	if n := len(h.items(t, "spring")); n != 0 {
		t.Fatalf("the refused file left %d rows in the ledger", n)
	}
	// The merchant regenerates the billnos (and the amounts), same
	// campaign_id.
	st = start(t, h, write("new.csv", "B", 200), s)
	if st.Existing || st.Campaign.State != campaign.Planning {
		t.Fatalf("the corrected file: %s existing %v", st.Campaign.State, st.Existing)
	}
	if c, err = h.engine.Run(context.Background(), "spring"); err != nil || c.State != campaign.Done {
		t.Fatalf("the corrected file's run: %s %q, %v", c.State, c.Reason, err)
	}
	items := h.items(t, "spring")
	if len(items) != 5 {
		t.Fatalf("%d rows in the ledger, want the corrected file's 5", len(items))
	}
	for _, it := range items {
		if !strings.HasPrefix(it.MchBillno, "B") || it.Fields["total_amount"] != "200" || h.sim.Payments(it.MchBillno) != 1 {
			t.Errorf("row %d: %s amount %s paid %d; want the corrected file's row, paid once", it.CampaignRow, it.MchBillno, it.Fields["total_amount"], h.sim.Payments(it.MchBillno))
		}
	}
}

// reuploaded is an S3 object whose ETag changes on every upload (SSE-KMS)
// even for the same bytes.
type reuploaded struct {
	path string
	etag *atomic.Value
}

func (r reuploaded) Open(ctx context.Context, etag string) (io.ReadCloser, string, error) {
	cur := r.etag.Load().(string)
	if etag != "" && etag != cur {
		return nil, "", fmt.Errorf("412: %w", campaign.ErrChanged)
	}
	b, err := os.ReadFile(r.path)
	return io.NopCloser(bytes.NewReader(b)), cur, err
}

// TestCampaignSameFileUploadedAgainWhilePlanning: the same file uploaded again before
// the first tick is the same campaign (Existing), whose planning then
// fails on every tick, forever: it stays PLANNING.
func TestCampaignSameFileUploadedAgainWhilePlanning(t *testing.T) {
	h := newHarness(t, wxpaytest.Limits{}, nil)
	path := h.file(t, "r.csv", 10, 100, nil)
	var etag atomic.Value
	etag.Store(`"v1"`)
	h.engine.Open = func(string) (campaign.Source, error) { return reuploaded{path: path, etag: &etag}, nil }
	st := start(t, h, "s3://b/incoming/r.csv", settings())
	etag.Store(`"v2"`) // the merchant uploads the same file again
	if again := start(t, h, "s3://b/incoming/r.csv", settings()); !again.Existing {
		t.Fatal("not existing")
	}
	for i := 0; i < 3; i++ {
		c, err := h.engine.Run(context.Background(), st.Campaign.ID)
		t.Logf("tick %d: %s planned %d: %v", i, c.State, c.Planned, err)
	}
	if c, _ := h.store.Get(context.Background(), st.Campaign.ID); c.State == campaign.Planning {
		t.Errorf("the campaign stays %s for ever, with no reason: %+v", c.State, c.Reason)
	}
}

// TestCampaignPauseSeenBetweenSends: at a slow rate no result reaches
// the collector for seconds, so a pause by request is not seen, and the
// next row is sent after the pause was answered.
func TestCampaignPauseSeenBetweenSends(t *testing.T) {
	h := newHarness(t, wxpaytest.Limits{}, nil)
	s := settings()
	s.Rate = 0.4 // one send every 2.5 s
	st := start(t, h, h.file(t, "slow.csv", 4, 100, nil), s)
	var pausedAt atomic.Value
	var after atomic.Int64
	h.wechat.afterSend = func(n int64, err error) {
		if n == 1 {
			go func() {
				time.Sleep(100 * time.Millisecond)
				if _, err := h.engine.Pause(context.Background(), st.Campaign.ID); err != nil {
					t.Error(err)
				}
				pausedAt.Store(time.Now())
			}()
		}
		if p, ok := pausedAt.Load().(time.Time); ok && time.Now().After(p) {
			after.Add(1)
		}
	}
	start := time.Now()
	c, err := h.engine.Run(context.Background(), st.Campaign.ID)
	t.Logf("run ended after %v: %s, %v; %d sends after the pause was answered", time.Since(start), c.State, err, after.Load())
	if after.Load() > 0 {
		t.Errorf("%d rows sent after POST /pause answered PAUSED", after.Load())
	}
}

// TestCampaignRiskyReceiverDoesNotBlock: WeChat's risk control refuses one
// receiver with NO_AUTH ("发放失败，此请求可能存在风险，已被微信拦截"); the
// campaign pauses, and every resume sends that row first and pauses again.
func TestCampaignRiskyReceiverDoesNotBlock(t *testing.T) {
	const rows = 20
	h := newHarness(t, wxpaytest.Limits{}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	st := start(t, h, h.file(t, "risk.csv", rows, 100, nil), settings())
	risky := campaign.Billno(h.wechat.client.MchID(), st.Campaign.ID, 5)
	var faults []wxpaytest.Fault
	for i := 0; i < 10; i++ {
		faults = append(faults, wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NO_AUTH", Message: "发放失败，此请求可能存在风险，已被微信拦截"})
	}
	h.sim.FailSends(risky, faults...)
	c, _ := h.engine.Run(context.Background(), st.Campaign.ID)
	for i := 0; i < 3 && c.State == campaign.Paused; i++ {
		t.Logf("run %d: %s %q cursor %d", i, c.State, c.Reason, c.Cursor)
		h.engine.Resume(context.Background(), c.ID)
		c, _ = h.engine.Run(context.Background(), c.ID)
	}
	if c.State != campaign.Done {
		t.Errorf("after 3 resumes: %s %q cursor %d of %d: one risky receiver blocks the campaign", c.State, c.Reason, c.Cursor, rows)
	}
}

// TestCampaignSameRowsTwiceAtOnce: the same rows started again with
// edited settings (another campaign by its identity) while the first is
// not over are refused: it would pay every receiver twice. Once the first
// is over, they may start: next month's run of the same list.
func TestCampaignSameRowsTwiceAtOnce(t *testing.T) {
	h := newHarness(t, wxpaytest.Limits{}, func(e *campaign.Engine) { e.RateLimit, e.APIReserve = 200, 10 })
	path := h.file(t, "list.csv", 5, 100, nil)
	first := start(t, h, path, settings())
	edited := settings()
	edited.Wishing = "Thanks again"
	_, err := h.engine.Start(context.Background(), path, edited)
	var dup *campaign.DuplicateError
	if !errors.As(err, &dup) || dup.Other != first.Campaign.ID {
		t.Fatalf("the same rows again while the first is PLANNING: %v, want a DuplicateError naming %s", err, first.Campaign.ID)
	}
	if _, err := h.engine.Run(context.Background(), first.Campaign.ID); err != nil {
		t.Fatal(err)
	}
	next, err := h.engine.Start(context.Background(), path, edited)
	if err != nil || next.Existing || next.Campaign.ID == first.Campaign.ID {
		t.Fatalf("the same rows after the first is DONE: %+v, %v; want a new campaign", next, err)
	}
}
