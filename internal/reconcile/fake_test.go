package reconcile_test

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// base is the tests' clock: every time is base plus an offset, no test
// sleeps.
var base = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

const (
	mchID   = "1900000109"
	wxappid = "wx8888888888888888"
	// leaseTTL is the first send's lease.
	leaseTTL = 30 * time.Second
)

// clock is a fake clock, safe for the workers of a pass.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Sleep moves the clock on: the send path's waits take no time.
func (c *clock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return nil
}

// wechat is a fake WeChat Pay: records by billno (none: NOT_FOUND),
// scripted query failures and send answers; it counts every call. Safe
// for concurrent use.
type wechat struct {
	mu       sync.Mutex
	records  map[string]*wxpay.QueryResult
	queryErr map[string]error
	// sendAnswer is the answer to a send of a billno; by default success,
	// after which the billno's record is SENT.
	sendAnswer map[string]error
	mchErr     error

	queries map[string]int
	appids  map[string]string
	sends   map[string][]sent
}

// sent is one send WeChat received.
type sent struct {
	api    string
	fields map[string]string
}

func newWeChat() *wechat {
	return &wechat{
		records: map[string]*wxpay.QueryResult{}, queryErr: map[string]error{}, sendAnswer: map[string]error{},
		queries: map[string]int{}, appids: map[string]string{}, sends: map[string][]sent{},
	}
}

// record sets the billno's record at WeChat.
func (w *wechat) record(billno, status, reason string) *wxpay.QueryResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := &wxpay.QueryResult{MchBillno: billno, MchID: mchID, Status: status, Reason: reason, TotalNum: 1, TotalAmount: 100}
	w.records[billno] = r
	return r
}

func (w *wechat) MchID(context.Context) (string, error) {
	if w.mchErr != nil {
		return "", w.mchErr
	}
	return mchID, nil
}

func (w *wechat) QueryRedpack(_ context.Context, appid, billno string) (*wxpay.QueryResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queries[billno]++
	w.appids[billno] = appid
	if err := w.queryErr[billno]; err != nil {
		return nil, err
	}
	r, ok := w.records[billno]
	if !ok {
		return nil, &wxpay.Error{API: "gethbinfo", MchBillno: billno, Outcome: wxpay.OutcomeNotFound, Code: "NOT_FOUND", Message: "指定单号数据不存在"}
	}
	c := *r
	return &c, nil
}

func (w *wechat) SendFields(_ context.Context, api string, fields map[string]string) (any, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	billno := fields["mch_billno"]
	w.sends[billno] = append(w.sends[billno], sent{api, maps.Clone(fields)})
	if err := w.sendAnswer[billno]; err != nil {
		return nil, err
	}
	w.records[billno] = &wxpay.QueryResult{MchBillno: billno, MchID: mchID, Status: wxpay.StatusSent, TotalNum: 1, TotalAmount: 100}
	return &wxpay.SendResult{MchBillno: billno, MchID: mchID, WxAppID: fields["wxappid"], ReOpenID: fields["re_openid"],
		TotalAmount: 100, SendListID: "1000041701" + billno, Attempts: 1}, nil
}

func (w *wechat) queriesOf(billno string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queries[billno]
}

func (w *wechat) sendsOf(billno string) []sent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sent(nil), w.sends[billno]...)
}

func (w *wechat) totalQueries() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, q := range w.queries {
		n += q
	}
	return n
}

var (
	systemError = &wxpay.Error{API: "sendredpack", Outcome: wxpay.OutcomeUnknown, Code: "SYSTEMERROR", Message: "系统繁忙,请稍后再试.", Retryable: true}
	notEnough   = &wxpay.Error{API: "sendredpack", Outcome: wxpay.OutcomeFailed, Code: "NOTENOUGH", Message: "帐号余额不足，请到商户平台充值后再重试"}
)

// fields is a recorded sendredpack request.
func fields(billno string) map[string]string {
	return map[string]string{
		"mch_billno": billno, "mch_id": mchID, "wxappid": wxappid, "send_name": "天虹百货",
		"re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E", "total_amount": "100", "total_num": "1",
		"wishing": "感谢您参加猜灯谜活动", "client_ip": "192.168.0.1", "act_name": "猜灯谜抢红包活动", "remark": "猜越多得越多",
	}
}

func key(billno string) ledger.Key { return ledger.Key{MchID: mchID, MchBillno: billno} }

// create records billno's first send at first, its lease held leaseTTL.
func create(t testing.TB, s ledger.Store, billno string, first time.Time) {
	t.Helper()
	it := &ledger.Item{MchID: mchID, MchBillno: billno, API: "sendredpack", Fields: fields(billno), RecordedAt: first,
		LeaseOwner: "first-send", LeaseUntil: first.Add(leaseTTL), Source: "direct"}
	if err := s.Create(context.Background(), it); err != nil {
		t.Fatal(err)
	}
}

// settle stores the first send's outcome a second after first.
func settle(t testing.TB, s ledger.Store, billno string, first time.Time, st ledger.State, sendListID string) {
	t.Helper()
	if err := s.Settle(context.Background(), key(billno), ledger.Settlement{Owner: "first-send", State: st, SendListID: sendListID, Now: first.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
}

// seen stores a reconciler's NOT_FOUND reading of billno at now, with its
// next check at next.
func seen(t testing.TB, s ledger.Store, billno string, now, next time.Time) {
	t.Helper()
	it, err := s.Get(context.Background(), key(billno))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reconcile(context.Background(), key(billno), ledger.Reconciliation{From: it.State, ReadNextCheckAt: it.NextCheckAt, To: it.State,
		Status: reconcile.StatusNotFound, NextCheckAt: next, Now: now}); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, s ledger.Store, billno string) *ledger.Item {
	t.Helper()
	it, err := s.Get(context.Background(), key(billno))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// newReconciler is a reconciler of store and w on c, logging into the
// returned buffer.
func newReconciler(store ledger.Store, w *wechat, c *clock) (*reconcile.Reconciler, *bytes.Buffer) {
	var logs bytes.Buffer
	return &reconcile.Reconciler{
		Ledger: store, WeChat: w, Now: c.Now, Sleep: c.Sleep,
		Logger: slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, &logs
}

// syncWriter serializes the workers' log lines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
