package functions_test

// The soak: many red packets through the real send bootstraps with faults
// of every kind the simulator has, then the reconciler's bootstrap until
// every red packet is at its end, and the ledger checked against WeChat's
// books.

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// Soak sizes: SOAK_N red packets (default soakSmall, what CI runs; make
// soak runs 2,000), SOAK_SEED for another draw of faults and claims.
const (
	soakSmall       = 60
	soakFaultShare  = 5 // percent of the red packets faulted, at least one per kind
	soakWorkers     = 2 // bootstraps per send function (send, sendmini): 4 sends at once
	soakSendTimeout = 8 * time.Second
	// soakMaxRounds bounds the reconciler's rounds (a warp and a pass).
	soakMaxRounds = 200
	// soakSlack is how far past the earliest next check a round moves the
	// world, so that a round takes the items due close together.
	soakSlack = 5 * time.Minute
)

// soakEnd is how a red packet's life ends, by what was done to it.
type soakEnd int

const (
	endPaid    soakEnd = iota // RECEIVED if claimed, else REFUNDED
	endFailed                 // FAILED: WeChat refused, or failed it
	endExpired                // EXPIRED: never paid, WeChat's window passed
)

// soakFault is one kind of injected fault: the script of the billno's
// sends at the simulator (FailSends), perhaps a fate, and the end it
// leads to.
type soakFault struct {
	name   string
	faults []wxpaytest.Fault
	fate   *wxpaytest.Fate
	end    soakEnd
}

// soakFaults are every kind of fault the simulator has, once (the first
// try only: the client's retry gets through, or the answer is final) or
// persistent (every try of the send).
func soakFaults() []soakFault {
	f := func(k wxpaytest.FaultKind) wxpaytest.Fault { return wxpaytest.Fault{Kind: k} }
	once := func(x wxpaytest.Fault) []wxpaytest.Fault { return []wxpaytest.Fault{x} }
	slow := time.Minute // past any deadline: the client gives up first
	return []soakFault{
		{"SystemError once", once(f(wxpaytest.FaultSystemError)), nil, endPaid},
		{"SystemError persistent (no record; sent again)", persistentFault(f(wxpaytest.FaultSystemError)), nil, endPaid},
		{"SystemErrorAfterPay persistent", persistentFault(f(wxpaytest.FaultSystemErrorAfterPay)), nil, endPaid},
		{"Processing (no record; sent again)", once(f(wxpaytest.FaultProcessing)), nil, endPaid},
		{"ProcessingAfterPay (SENDING, then SENT)", once(f(wxpaytest.FaultProcessingAfterPay)), nil, endPaid},
		{"ProcessingAfterPay (SENDING with a reason, then FAILED)", once(f(wxpaytest.FaultProcessingAfterPay)),
			&wxpaytest.Fate{Sending: 2 * time.Hour, Fail: true, Reason: "帐号余额不足"}, endFailed},
		{"ProcessingAfterPay (SENDING for 3 h, then FAILED)", once(f(wxpaytest.FaultProcessingAfterPay)),
			&wxpaytest.Fate{Sending: 3 * time.Hour, Fail: true}, endFailed},
		{"ResetBeforeLedger persistent", persistentFault(f(wxpaytest.FaultResetBeforeLedger)), nil, endPaid},
		{"ResetAfterLedger once", once(f(wxpaytest.FaultResetAfterLedger)), nil, endPaid},
		{"ResetAfterLedger persistent", persistentFault(f(wxpaytest.FaultResetAfterLedger)), nil, endPaid},
		{"HTTP5xx persistent", persistentFault(wxpaytest.Fault{Kind: wxpaytest.FaultHTTP5xx, Status: 503}), nil, endPaid},
		{"HTMLPage once", once(f(wxpaytest.FaultHTMLPage)), nil, endPaid},
		{"GarbledXML persistent", persistentFault(f(wxpaytest.FaultGarbledXML)), nil, endPaid},
		{"TruncatedXML once", once(f(wxpaytest.FaultTruncatedXML)), nil, endPaid},
		{"FreqLimit once", once(f(wxpaytest.FaultFreqLimit)), nil, endPaid},
		{"FreqLimit persistent (refused)", persistentFault(f(wxpaytest.FaultFreqLimit)), nil, endFailed},
		{"timeout after the payment (Delay)", once(wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: slow}), nil, endPaid},
		{"timeout before processing (slow service)", once(wxpaytest.Fault{Kind: wxpaytest.FaultNone, Delay: slow}), nil, endPaid},
		{"NOTENOUGH refusal", once(wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"}), nil, endFailed},
		// PROCESSING is not retried: each of the reconciler's re-sends
		// is one request, so the many (one every other NOT_FOUND, for a
		// day) take no retry waits.
		{"every send answered PROCESSING before the payment (expires)", slices.Repeat(once(f(wxpaytest.FaultProcessing)), 500), nil, endExpired},
	}
}

// soakPacket is one red packet of the soak.
type soakPacket struct {
	billno, fn string
	amount     int64
	req        map[string]any
	fault      *soakFault
	claimed    bool
	answer     string // the send's outcome
	code       string // its error code, if any
}

// want is the ledger state the red packet must end in.
func (p *soakPacket) want() ledger.State {
	end := endPaid
	if p.fault != nil {
		end = p.fault.end
	}
	switch {
	case end == endFailed:
		return ledger.Failed
	case end == endExpired:
		return ledger.Expired
	case p.claimed:
		return ledger.Received
	}
	return ledger.Refunded
}

// soakSize reads SOAK_N and SOAK_SEED.
func soakSize(t *testing.T) (n int, seed uint64) {
	t.Helper()
	n, seed = soakSmall, 1
	if v := os.Getenv("SOAK_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100_000 {
			t.Fatalf("SOAK_N=%q: want 1 to 100000", v)
		}
	}
	if v := os.Getenv("SOAK_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
	}
	return n, seed
}

// TestSoak sends SOAK_N red packets (60 by default, make soak 2,000)
// through the send and sendmini bootstraps, four at once, with 5% of them
// (at least one of each kind) faulted with every kind of fault the
// simulator has, half of the others claimed 30 minutes after they were
// sent; then runs the reconciler's bootstrap, moving the world forward to
// the next check each round, until every red packet is at its end. Then:
// every red packet is RECEIVED, REFUNDED, FAILED or EXPIRED as what was
// done to it says (none UNKNOWN, RECORDED or NEEDS_ATTENTION); the ledger
// equals WeChat's books (each RECEIVED or REFUNDED red packet paid exactly
// once, with WeChat's status and refund; each FAILED or EXPIRED one not
// paid; no payment without a ledger item); nothing paid twice; and the
// balance is what the payments and refunds make it. Its figures are
// logged.
func TestSoak(t *testing.T) {
	skipShort(t)
	n, seed := soakSize(t)
	bins := bootstraps(t)
	w := newRecWorld(t, "soak", wxpaytest.WithLimits(wxpaytest.Limits{UserDailyCount: -1, UserDailyAmount: -1}))
	rng := rand.New(rand.NewPCG(seed, 0x50a6))

	// The red packets, their faults and claims.
	kinds := soakFaults()
	packets := make([]*soakPacket, n)
	for i := range packets {
		fn := "send"
		if i%2 == 1 {
			fn = "sendmini"
		}
		billno, amount := fmt.Sprintf("SOAK%08d", i), 100+int64(rng.IntN(900))
		packets[i] = &soakPacket{billno: billno, fn: fn, amount: amount, req: directRequest(t, fn, billno, map[string]any{
			"total_amount": amount,
			"re_openid":    fmt.Sprintf("oSoak%023d", rng.Uint64()%1e15),
		})}
	}
	faulted := min(n, max((n*soakFaultShare+50)/100, len(kinds)))
	for j, i := range rng.Perm(n)[:faulted] {
		packets[i].fault = &kinds[j%len(kinds)]
	}
	for _, p := range packets {
		p.claimed = p.fault == nil || p.fault.fate == nil
		p.claimed = p.claimed && rng.IntN(2) == 0
		if p.fault != nil {
			w.sim.FailSends(p.billno, p.fault.faults...)
		}
		switch {
		case p.fault != nil && p.fault.fate != nil:
			w.sim.SetFate(p.billno, *p.fault.fate)
		case p.claimed:
			w.sim.SetFate(p.billno, wxpaytest.Fate{Claim: 30 * time.Minute})
		}
	}
	startBalance := w.sim.Balance()
	t.Logf("soak: %d red packets (seed %d), %d faulted (%d kinds), %d to be claimed",
		n, seed, faulted, len(kinds), count(packets, func(p *soakPacket) bool { return p.claimed }))

	// Sends: two bootstraps of each send function, each taking the red
	// packets of its function in turn.
	sendStart := time.Now()
	var wg sync.WaitGroup
	var procs []*proc
	for _, fn := range []string{"send", "sendmini"} {
		jobs := make(chan *soakPacket)
		for k := range soakWorkers {
			p := startProc(t, fmt.Sprintf("%s-%d", fn, k), bins[fn], w.env())
			procs = append(procs, p)
			wg.Go(func() {
				for pk := range jobs {
					a, err := trySend(p, pk.req, soakSendTimeout)
					if err != nil {
						t.Error(err)
						continue
					}
					pk.answer = a.outcome()
					if a.Error != nil {
						pk.code = a.Error.Code
					}
				}
			})
		}
		go func() {
			defer close(jobs)
			for _, pk := range packets {
				if pk.fn == fn {
					jobs <- pk
				}
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(sendStart)
	for _, p := range procs {
		checkOutput(t, p, w.secrets()...)
	}
	if t.Failed() {
		t.FailNow()
	}
	outcomes := map[string]int{}
	for _, p := range packets {
		outcomes[p.answer]++
	}
	afterSend := states(w.scan(t))
	t.Logf("sends: %d in %v (%.1f/s): outcomes %v; ledger %v", n, sendTime.Round(time.Millisecond),
		float64(n)/sendTime.Seconds(), outcomes, afterSend)

	// The reconciler, round after round: move the world to the earliest
	// next check (and soakSlack past it), then one pass, until every red
	// packet is at its end. The test keeps its view of the ledger (what
	// it moves back each round) without scanning the table: after a pass
	// it reads again the items that were due, the only ones a pass
	// writes. The final scan checks the view.
	view := make(map[string]scanned, n)
	for _, it := range w.scan(t) {
		view[it.MchBillno] = it
	}
	rec := startProc(t, "reconcile", bins["reconcile"], w.env(reconcileEnv...))
	recStart := time.Now()
	var (
		rounds, passes              int
		total                       summary
		warpTime, runTime, readTime time.Duration
	)
	total.Transitions = map[string]int{}
	for {
		var open []scanned
		var next time.Time
		for _, it := range view {
			if it.final() {
				continue
			}
			open = append(open, it)
			at := it.nextCheck(t)
			if at.IsZero() {
				t.Fatalf("%s is %s with no next check", it.MchBillno, it.State)
			}
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if len(open) == 0 {
			break
		}
		if rounds++; rounds > soakMaxRounds {
			t.Fatalf("%d rounds and %d red packets still open: %v", soakMaxRounds, len(open), states(open))
		}
		if d := time.Until(next); d > 0 {
			start := time.Now()
			open = w.warp(t, open, (d + soakSlack).Truncate(time.Second))
			for _, it := range open {
				view[it.MchBillno] = it
			}
			warpTime += time.Since(start)
		}
		start := time.Now()
		for {
			s := reconcile(t, rec, `{}`)
			passes++
			total.Checked += s.Checked
			total.Settled += s.Settled
			total.Resent += s.Resent
			total.NeedsAttention += s.NeedsAttention
			total.LostRaces += s.LostRaces
			total.Errors += s.Errors
			for k, v := range s.Transitions {
				total.Transitions[k] += v
			}
			if s.StopError != "" {
				t.Fatalf("pass stopped: %s (%s)", s.Stopped, s.StopError)
			}
			if s.Stopped == "" {
				break
			}
		}
		passEnd := time.Now()
		runTime += passEnd.Sub(start)
		var due []string
		for _, it := range open {
			if !it.nextCheck(t).After(passEnd) {
				due = append(due, it.MchBillno)
			}
		}
		for _, it := range w.get(t, due) {
			view[it.MchBillno] = it
		}
		readTime += time.Since(passEnd)
	}
	recTime := time.Since(recStart)
	t.Logf("reconciler: %d rounds, %d passes in %v (passes %v, warps %v, reads %v); %.1f simulated hours; checked %d, settled %d, resent %d, needs attention %d, lost races %d, errors %d",
		rounds, passes, recTime.Round(time.Millisecond), runTime.Round(time.Millisecond), warpTime.Round(time.Millisecond), readTime.Round(time.Millisecond),
		w.warped.Hours(), total.Checked, total.Settled, total.Resent, total.NeedsAttention, total.LostRaces, total.Errors)
	t.Logf("reconciler transitions: %s", sortedCounts(total.Transitions))

	// The books.
	items := w.scan(t)
	byBillno := make(map[string]scanned, len(items))
	for _, it := range items {
		byBillno[it.MchBillno] = it
		if v := view[it.MchBillno]; v.State != it.State || v.NextCheckAt != it.NextCheckAt || v.Attempts != it.Attempts {
			t.Errorf("%s: the test's view %s (next %q, %d attempts), the table %s (next %q, %d attempts)",
				it.MchBillno, v.State, v.NextCheckAt, v.Attempts, it.State, it.NextCheckAt, it.Attempts)
		}
	}
	final := states(items)
	var paid, refunds int
	var spent, refunded int64
	wrongEnd := map[string]int{}
	for _, p := range packets {
		it, ok := byBillno[p.billno]
		if !ok {
			t.Errorf("%s: not in the ledger", p.billno)
			continue
		}
		st := ledger.State(it.State)
		if st != p.want() {
			wrongEnd[faultName(p)]++
			t.Errorf("%s (%s, %s, claimed %v): %s (status %s), want %s", p.billno, p.fn, faultName(p), p.claimed, st, it.Status, p.want())
		}
		rec, hasRec := w.sim.Record(p.billno)
		payments := w.sim.Payments(p.billno)
		switch {
		case payments > 1:
			t.Errorf("%s: PAID %d TIMES", p.billno, payments)
		case st.Paid():
			if payments != 1 || !hasRec {
				t.Errorf("%s: %s in the ledger, %d payments at WeChat", p.billno, st, payments)
				continue
			}
			paid++
			spent += rec.TotalAmount
			wantStatus := map[ledger.State]string{ledger.Sent: wxpay.StatusSent, ledger.Received: wxpay.StatusReceived, ledger.Refunded: wxpay.StatusRefund}[st]
			if rec.Status != wantStatus || it.Status != rec.Status {
				t.Errorf("%s: %s in the ledger (status %s), %s at WeChat", p.billno, st, it.Status, rec.Status)
			}
			if rec.TotalAmount != p.amount {
				t.Errorf("%s: WeChat paid %d fen, the request said %d", p.billno, rec.TotalAmount, p.amount)
			}
			if st == ledger.Refunded {
				refunds++
				refunded += rec.RefundAmount
				if it.RefundAmount != rec.RefundAmount || it.RefundTime != rec.RefundTime.In(time.FixedZone("CST", 8*3600)).Format(wxpaytest.TimeLayout) {
					t.Errorf("%s: refund %d at %q in the ledger, %d at %v at WeChat", p.billno, it.RefundAmount, it.RefundTime, rec.RefundAmount, rec.RefundTime)
				}
			}
		case st == ledger.Failed || st == ledger.Expired:
			if payments != 0 || (hasRec && rec.Status != wxpay.StatusFailed) {
				t.Errorf("%s: %s in the ledger, %d payments at WeChat (record %v, %s)", p.billno, st, payments, hasRec, rec.Status)
			}
		default:
			t.Errorf("%s: left %s", p.billno, st)
		}
	}
	// No payment without a ledger item, and nothing else paid.
	for _, r := range w.sim.Records() {
		if _, ok := byBillno[r.MchBillno]; !ok {
			t.Errorf("WeChat paid %s, which the ledger does not hold", r.MchBillno)
		}
	}
	if got := w.sim.TotalPayments(); got != paid {
		t.Errorf("WeChat counts %d payments, the ledger %d paid red packets", got, paid)
	}
	if got, want := w.sim.Balance(), startBalance-spent+refunded; got != want {
		t.Errorf("balance %d fen, want %d (start %d, paid %d, refunded %d)", got, want, startBalance, spent, refunded)
	}
	if len(items) != n {
		t.Errorf("the ledger holds %d items, want %d", len(items), n)
	}
	if out := rec.stop(); containsAny(out, w.secrets()) {
		t.Error("the reconciler's output holds a secret")
	}
	t.Logf("final: ledger %v; WeChat: %d payments (%d fen), %d refunds (%d fen), %d requests; nothing paid twice: %v; mismatches by fault %v",
		final, w.sim.TotalPayments(), spent, refunds, refunded, w.sim.Requests(), !t.Failed(), wrongEnd)
	t.Logf("time: sends %v, reconciler %v, total %v", sendTime.Round(time.Millisecond), recTime.Round(time.Millisecond),
		time.Since(sendStart).Round(time.Millisecond))
}

func faultName(p *soakPacket) string {
	if p.fault == nil {
		return "none"
	}
	return p.fault.name
}

// states counts the scanned items by state.
func states(items []scanned) map[string]int {
	m := map[string]int{}
	for _, it := range items {
		m[it.State]++
	}
	return m
}

func count[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}

// sortedCounts prints m's entries by key.
func sortedCounts(m map[string]int) string {
	keys := slices.SortedFunc(maps.Keys(m), cmp.Compare[string])
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
