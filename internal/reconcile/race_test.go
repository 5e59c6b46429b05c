package reconcile_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// One moto_server for the test binary.
func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// readTogether is one reconciler's view of the ledger whose first Due
// waits until every reconciler has read its due items: they all start
// from the same items, and their writes race.
type readTogether struct {
	ledger.Store
	all  *sync.WaitGroup
	once sync.Once
}

func (r *readTogether) Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*ledger.Item, error) {
	items, err := r.Store.Due(ctx, mchID, now, limit)
	r.once.Do(func() { r.all.Done(); r.all.Wait() })
	return items, err
}

// writes records the Reconcile writes that succeeded, by item.
type writes struct {
	ledger.Store
	mu    sync.Mutex
	moves map[string]int    // writes that moved the item's state
	reads map[string]string // the read each write started from, to find two from one read
	dup   []string
}

func (w *writes) Reconcile(ctx context.Context, k ledger.Key, r ledger.Reconciliation) error {
	err := w.Store.Reconcile(ctx, k, r)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.To != r.From {
		w.moves[k.MchBillno]++
	}
	read := fmt.Sprintf("%s %s %v", k.MchBillno, r.From, r.ReadNextCheckAt)
	if _, ok := w.reads[read]; ok {
		w.dup = append(w.dup, read)
	}
	w.reads[read] = ""
	return nil
}

// raceItem is an item of the race, where it must end and by which move,
// and whether its request is sent again.
type raceItem struct {
	billno string
	want   ledger.State
	move   string
	resend bool
}

// raceItems records n items of six kinds, due at now = base+10m.
func raceItems(t *testing.T, s ledger.Store, w *wechat, n int) []raceItem {
	t.Helper()
	var items []raceItem
	for i := range n {
		b := fmt.Sprintf("RACE%04d", i)
		switch i % 6 {
		case 0: // paid: SENT
			create(t, s, b, base)
			settle(t, s, b, base, ledger.Unknown, "")
			w.record(b, wxpay.StatusSent, "")
			items = append(items, raceItem{b, ledger.Sent, "UNKNOWN->SENT", false})
		case 1: // no record twice: sent again, paid
			create(t, s, b, base)
			settle(t, s, b, base, ledger.Unknown, "")
			seen(t, s, b, at(2*time.Minute), at(7*time.Minute))
			items = append(items, raceItem{b, ledger.Sent, "UNKNOWN->SENT", true})
		case 2: // claimed
			create(t, s, b, base)
			settle(t, s, b, base, ledger.Sent, "1000041701"+b)
			if err := s.Reconcile(context.Background(), key(b), ledger.Reconciliation{From: ledger.Sent, ReadNextCheckAt: get(t, s, b).NextCheckAt,
				To: ledger.Sent, Status: "SENT", NextCheckAt: at(5 * time.Minute), Now: at(2 * time.Second)}); err != nil {
				t.Fatal(err)
			}
			w.record(b, wxpay.StatusReceived, "")
			items = append(items, raceItem{b, ledger.Received, "SENT->RECEIVED", false})
		case 3: // failed at WeChat
			create(t, s, b, base)
			settle(t, s, b, base, ledger.Unknown, "")
			w.record(b, wxpay.StatusFailed, "帐号余额不足")
			items = append(items, raceItem{b, ledger.Failed, "UNKNOWN->FAILED", false})
		case 4: // died mid-call, no record twice: sent again, unknown again
			create(t, s, b, base)
			seen(t, s, b, at(2*time.Minute), at(7*time.Minute))
			w.sendAnswer[b] = systemError
			items = append(items, raceItem{b, ledger.Unknown, "RECORDED->UNKNOWN", true})
		case 5: // no record a day after: EXPIRED
			create(t, s, b, base.Add(-25*time.Hour))
			settle(t, s, b, base.Add(-25*time.Hour), ledger.Unknown, "")
			items = append(items, raceItem{b, ledger.Expired, "UNKNOWN->EXPIRED", false})
		}
	}
	return items
}

// runTogether runs n reconcilers over store at once, all from the same
// due items, and checks that no billno was sent twice and no item moved
// twice, and that each item ended where it must, moved once.
func runTogether(t *testing.T, store ledger.Store, items int, reconcilers int) {
	w, c := newWeChat(), newClock(base)
	all := raceItems(t, store, w, items)
	c.Set(at(10 * time.Minute))
	rec := &writes{Store: store, moves: map[string]int{}, reads: map[string]string{}}

	var together sync.WaitGroup
	together.Add(reconcilers)
	summaries := make([]reconcile.Summary, reconcilers)
	var wg sync.WaitGroup
	for i := range reconcilers {
		r, _ := newReconciler(&readTogether{Store: rec, all: &together}, w, c)
		r.Batch, r.Budget, r.Workers = items, items, 4
		wg.Go(func() { summaries[i] = r.RunOnce(context.Background()) })
	}
	wg.Wait()

	total := reconcile.Summary{Transitions: map[string]int{}}
	for _, s := range summaries {
		total.Checked += s.Checked
		total.Settled += s.Settled
		total.Resent += s.Resent
		total.LostRaces += s.LostRaces
		total.Errors += s.Errors
		for k, v := range s.Transitions {
			total.Transitions[k] += v
		}
	}
	// Every reconciler read every item at WeChat; one wrote each.
	if total.Checked != reconcilers*items || total.LostRaces != (reconcilers-1)*items || total.Errors != 0 {
		t.Errorf("together: %+v; want %d checked, %d lost races", total, reconcilers*items, (reconcilers-1)*items)
	}
	if len(rec.dup) > 0 {
		t.Errorf("two writes from one read: %v", rec.dup)
	}
	want := map[string]int{}
	resent := 0
	for _, it := range all {
		got := get(t, store, it.billno)
		if got.State != it.want {
			t.Errorf("%s: %s, want %s", it.billno, got.State, it.want)
		}
		if n := rec.moves[it.billno]; n > 1 {
			t.Errorf("%s moved %d times by the reconcilers", it.billno, n)
		}
		sends := w.sendsOf(it.billno)
		switch {
		case it.resend && len(sends) != 1:
			t.Errorf("%s sent %d times, want once", it.billno, len(sends))
		case !it.resend && len(sends) != 0:
			t.Errorf("%s sent %d times, want never", it.billno, len(sends))
		}
		for _, s := range sends {
			if !maps.Equal(s.fields, fields(it.billno)) {
				t.Errorf("%s sent with %v", it.billno, s.fields)
			}
		}
		if it.resend {
			resent++
			if got.Attempts != 2 {
				t.Errorf("%s: %d attempts, want 2", it.billno, got.Attempts)
			}
		}
		want[it.move]++
	}
	if total.Resent != resent || !maps.Equal(total.Transitions, want) {
		t.Errorf("together: resent %d transitions %v; want %d, %v", total.Resent, total.Transitions, resent, want)
	}
}

// TestTwoReconcilersAtOnce: two passes over the same due items at once
// (the memory store) never send one billno twice, never move one item
// twice, and settle each as one would.
func TestTwoReconcilersAtOnce(t *testing.T) {
	for range 20 { // many interleavings
		runTogether(t, ledger.NewMemory(), 36, 2)
		if t.Failed() {
			return
		}
	}
	runTogether(t, ledger.NewMemory(), 36, 5)
}

// TestTwoReconcilersAtOnceDynamoDB: the same with the DynamoDB store on
// moto_server: its conditional writes and its due index.
func TestTwoReconcilersAtOnceDynamoDB(t *testing.T) {
	url := mototest.Start(t)
	table := "reconcile-" + regexp.MustCompile(`[^a-zA-Z0-9_.-]+`).ReplaceAllString(t.Name(), "-")
	_, store := ledgertest.DynamoDBTable(t, url, table)
	runTogether(t, store, 12, 2)
}
