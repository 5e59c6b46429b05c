// Package ledgertest holds what tests of ledger stores and their users
// share: Run, the contract test suite every ledger.Store passes, and
// Counting, a Store that counts its calls.
package ledgertest

import (
	"context"
	"sync"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// Counts are the calls made to a Counting store, by method.
type Counts struct {
	Get, Create, Acquire, Settle, Observe, Due, Reconcile, CampaignRows int
}

// Counting is a ledger.Store that counts the calls of each method, then
// passes them to Store; for tests asserting how many reads and writes an
// operation makes (a fresh send: one Create and one Settle; a replay: one
// Get). It is safe for concurrent use.
type Counting struct {
	Store ledger.Store

	mu sync.Mutex
	n  Counts
}

// NewCounting returns a Counting store over s.
func NewCounting(s ledger.Store) *Counting { return &Counting{Store: s} }

// Counts returns the calls counted so far.
func (c *Counting) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Reset sets the counts to zero.
func (c *Counting) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = Counts{}
}

func (c *Counting) count(f func(*Counts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.n)
}

// Get implements ledger.Store.
func (c *Counting) Get(ctx context.Context, k ledger.Key) (*ledger.Item, error) {
	c.count(func(n *Counts) { n.Get++ })
	return c.Store.Get(ctx, k)
}

// Create implements ledger.Store.
func (c *Counting) Create(ctx context.Context, it *ledger.Item) error {
	c.count(func(n *Counts) { n.Create++ })
	return c.Store.Create(ctx, it)
}

// Acquire implements ledger.Store.
func (c *Counting) Acquire(ctx context.Context, k ledger.Key, l ledger.Lease) (*ledger.Item, error) {
	c.count(func(n *Counts) { n.Acquire++ })
	return c.Store.Acquire(ctx, k, l)
}

// Settle implements ledger.Store.
func (c *Counting) Settle(ctx context.Context, k ledger.Key, s ledger.Settlement) error {
	c.count(func(n *Counts) { n.Settle++ })
	return c.Store.Settle(ctx, k, s)
}

// Observe implements ledger.Store.
func (c *Counting) Observe(ctx context.Context, k ledger.Key, o ledger.Observation) error {
	c.count(func(n *Counts) { n.Observe++ })
	return c.Store.Observe(ctx, k, o)
}

// Due implements ledger.Store.
func (c *Counting) Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*ledger.Item, error) {
	c.count(func(n *Counts) { n.Due++ })
	return c.Store.Due(ctx, mchID, now, limit)
}

// Reconcile implements ledger.Store.
func (c *Counting) Reconcile(ctx context.Context, k ledger.Key, r ledger.Reconciliation) error {
	c.count(func(n *Counts) { n.Reconcile++ })
	return c.Store.Reconcile(ctx, k, r)
}

// CampaignRows implements ledger.Store.
func (c *Counting) CampaignRows(ctx context.Context, campaignID string, after, limit int) ([]*ledger.Item, error) {
	c.count(func(n *Counts) { n.CampaignRows++ })
	return c.Store.CampaignRows(ctx, campaignID, after, limit)
}
