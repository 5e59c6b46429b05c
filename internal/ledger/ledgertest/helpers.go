package ledgertest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// newItem is a request as a send records it: what the caller of Create
// sets.
func newItem(billno string) *ledger.Item {
	return &ledger.Item{
		MchID:     mchID,
		MchBillno: billno,
		API:       "sendredpack",
		Fields: map[string]string{
			"mch_billno":   billno,
			"mch_id":       mchID,
			"wxappid":      "wx8888888888888888",
			"send_name":    "天虹百货",
			"re_openid":    "oxTWIuGaIt6gTKsQRLau2M0yL16E",
			"total_amount": "100",
			"total_num":    "1",
			"wishing":      "感谢您参加猜灯谜活动，祝您元宵节快乐！",
			"client_ip":    "192.168.0.1",
			"act_name":     "猜灯谜抢红包活动",
			"remark":       "猜越多得越多，快来抢！",
		},
		RecordedAt: at(0),
		LeaseOwner: owner1,
		LeaseUntil: at(leaseTTL),
		Source:     "apigw-rest",
		Caller:     "arn:aws:iam::123456789012:user/alice",
	}
}

func key(billno string) ledger.Key { return ledger.Key{MchID: mchID, MchBillno: billno} }

// created is the item Create should store for in.
func created(in *ledger.Item) *ledger.Item {
	want := *in
	want.Fields, want.JSAPI = cloneMap(in.Fields), cloneMap(in.JSAPI)
	want.Hash = ledger.Hash(in.API, in.Fields)
	want.State = ledger.Recorded
	want.Attempts, want.Settled = 1, 0
	want.RecordedAt = msUTC(in.RecordedAt)
	want.FirstTriedAt, want.LastTriedAt, want.UpdatedAt = want.RecordedAt, want.RecordedAt, want.RecordedAt
	want.LeaseUntil = msUTC(in.LeaseUntil)
	// The reconciler looks shortly after the first send's lease ends.
	want.NextCheckAt = msUTC(in.LeaseUntil.Add(ledger.CheckAfterLease))
	return &want
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// create creates newItem(billno) and returns what it should store.
func create(t *testing.T, s ledger.Store, billno string) *ledger.Item {
	t.Helper()
	it := newItem(billno)
	want := created(it)
	if err := s.Create(t.Context(), it); err != nil {
		t.Fatalf("Create %s: %v", billno, err)
	}
	return want
}

func get(t *testing.T, s ledger.Store, billno string) *ledger.Item {
	t.Helper()
	it, err := s.Get(t.Context(), key(billno))
	if err != nil {
		t.Fatalf("Get %s: %v", billno, err)
	}
	return it
}

func settle(t *testing.T, s ledger.Store, billno string, st ledger.Settlement) {
	t.Helper()
	if err := s.Settle(t.Context(), key(billno), st); err != nil {
		t.Fatalf("Settle %s %+v: %v", billno, st, err)
	}
}

func observe(t *testing.T, s ledger.Store, billno string, o ledger.Observation) {
	t.Helper()
	if err := s.Observe(t.Context(), key(billno), o); err != nil {
		t.Fatalf("Observe %s %+v: %v", billno, o, err)
	}
}

// toState creates an item and brings it to st through the Store's own
// writes; the first send's lease has ended by 30 s.
func toState(t *testing.T, s ledger.Store, billno string, st ledger.State) {
	t.Helper()
	create(t, s, billno)
	switch st {
	case ledger.Recorded:
	case ledger.Sent, ledger.Failed, ledger.Unknown, ledger.NeedsAttention:
		settle(t, s, billno, ledger.Settlement{Owner: owner1, State: st, Now: at(2 * time.Second)})
	case ledger.Received, ledger.Refunded:
		settle(t, s, billno, ledger.Settlement{Owner: owner1, State: ledger.Sent, SendListID: "1000041701201411243038183950000", Now: at(2 * time.Second)})
		observe(t, s, billno, ledger.Observation{Status: string(st), From: ledger.Sent, To: st, Now: at(3 * time.Second)})
	case ledger.Expired:
		observe(t, s, billno, ledger.Observation{From: ledger.Recorded, To: ledger.Expired, Now: at(leaseTTL + time.Second)})
	default:
		t.Fatalf("toState: %q", st)
	}
	if got := get(t, s, billno).State; got != st {
		t.Fatalf("toState: state %s, want %s", got, st)
	}
}

// diff lists the fields in which got and want differ. Times must be UTC
// to the millisecond.
func diff(got, want *ledger.Item) []string {
	var d []string
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range g.NumField() {
		name := g.Type().Field(i).Name
		gf, wf := g.Field(i).Interface(), w.Field(i).Interface()
		if gt, ok := gf.(time.Time); ok {
			wt := wf.(time.Time)
			if !gt.Equal(wt) || (!gt.IsZero() && (gt.Location() != time.UTC || gt.Nanosecond()%1e6 != 0)) {
				d = append(d, fmt.Sprintf("%s: got %v, want %v", name, gt, wt))
			}
			continue
		}
		if !reflect.DeepEqual(gf, wf) {
			d = append(d, fmt.Sprintf("%s: got %#v, want %#v", name, gf, wf))
		}
	}
	return d
}

func same(t *testing.T, what string, got, want *ledger.Item) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// unchanged checks that the item billno (or its absence) is what before says.
func unchanged(t *testing.T, s ledger.Store, billno string, before *ledger.Item) {
	t.Helper()
	after, err := s.Get(t.Context(), key(billno))
	switch {
	case before == nil && !errors.Is(err, ledger.ErrNotFound):
		t.Errorf("Get %s after a failed write = %+v, %v; want ErrNotFound (nothing created)", billno, after, err)
	case before != nil && err != nil:
		t.Errorf("Get %s after a failed write: %v", billno, err)
	case before != nil:
		same(t, "after a failed write", after, before)
	}
}

// wantErr checks that err is target, and only target among the sentinels.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s = %v, want %v", what, err, target)
	}
	for _, e := range []error{ledger.ErrNotFound, ledger.ErrExists, ledger.ErrPrecondition} {
		if e != target && errors.Is(err, e) {
			t.Fatalf("%s = %v, also %v", what, err, e)
		}
	}
}

// concurrency is the number of goroutines racing for one item.
const concurrency = 50

// race runs f(i) for i < concurrency at once and returns their errors.
func race(f func(i int) error) []error {
	errs := make([]error, concurrency)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// winner returns the index of the one nil error, checking every other is
// target.
func winner(t *testing.T, errs []error, target error) int {
	t.Helper()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("goroutines %d and %d both succeeded", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, target):
			t.Fatalf("goroutine %d: %v, want %v", i, err, target)
		}
	}
	if won < 0 {
		t.Fatalf("no goroutine succeeded")
	}
	return won
}
