package ledgertest_test

import (
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
)

// TestCountingContract: the wrapper passes the contract suite unchanged.
func TestCountingContract(t *testing.T) {
	ledgertest.Run(t, func(*testing.T) ledger.Store { return ledgertest.NewCounting(ledger.NewMemory()) })
}

// TestCounting: each call is counted once, failed ones included.
func TestCounting(t *testing.T) {
	c := ledgertest.NewCounting(ledger.NewMemory())
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	k := ledger.Key{MchID: "1900000109", MchBillno: "COUNT0001"}
	it := &ledger.Item{MchID: k.MchID, MchBillno: k.MchBillno, API: "sendredpack", RecordedAt: now, LeaseOwner: "a", LeaseUntil: now.Add(time.Minute)}

	// A fresh send: one conditional create, one update.
	if err := c.Create(t.Context(), it); err != nil {
		t.Fatal(err)
	}
	if err := c.Settle(t.Context(), k, ledger.Settlement{Owner: "a", State: ledger.Sent, Now: now}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Counts(), (ledgertest.Counts{Create: 1, Settle: 1}); got != want {
		t.Fatalf("fresh send: %+v, want %+v", got, want)
	}

	// A replay: one read.
	c.Reset()
	if _, err := c.Get(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Counts(), (ledgertest.Counts{Get: 1}); got != want {
		t.Fatalf("replay: %+v, want %+v", got, want)
	}

	c.Reset()
	_ = c.Create(t.Context(), it)
	_, _ = c.Acquire(t.Context(), k, ledger.Lease{Hash: it.Hash, Owner: "b", Until: now.Add(time.Hour), Now: now.Add(time.Minute)})
	_ = c.Observe(t.Context(), k, ledger.Observation{Status: "SENT", Now: now})
	if got, want := c.Counts(), (ledgertest.Counts{Create: 1, Acquire: 1, Observe: 1}); got != want {
		t.Fatalf("failed calls: %+v, want %+v", got, want)
	}
}
