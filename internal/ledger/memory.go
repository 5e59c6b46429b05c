package ledger

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a Store in memory, for local runs and fast tests. It enforces
// the same conditions as the DynamoDB store, with the same clock: times
// kept to the millisecond and compared as the callers' Now says.
type Memory struct {
	mu    sync.Mutex
	items map[Key]*Item
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{items: make(map[Key]*Item)}
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, k Key) (*Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[k]
	if !ok {
		return nil, fmt.Errorf("ledger: get %s: %w", k, ErrNotFound)
	}
	return clone(it), nil
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, it *Item) error {
	if err := prepareCreate(it); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// A billno is recorded once: a second Create must not replace the record.
	if _, ok := m.items[it.Key()]; ok {
		return fmt.Errorf("ledger: create %s: %w", it.Key(), ErrExists)
	}
	m.items[it.Key()] = clone(it)
	return nil
}

// Acquire implements Store.
func (m *Memory) Acquire(ctx context.Context, k Key, l Lease) (*Item, error) {
	if err := checkLease(k, l); err != nil {
		return nil, err
	}
	now := ms(l.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[k]
	// Sends only the request recorded, only in a resendable state, never
	// while another send holds the lease, and not sooner than WeChat allows
	// (a planned item, never tried, has no last try to wait for).
	if !ok || it.Hash != l.Hash || !it.State.Resendable() || !it.LeaseFree(now) ||
		(!it.LastTriedAt.IsZero() && it.LastTriedAt.After(now.Add(-MinRetryGap))) {
		return nil, fmt.Errorf("ledger: acquire %s: %w", k, ErrPrecondition)
	}
	it.Attempts++
	if it.FirstTriedAt.IsZero() {
		it.FirstTriedAt = now // a planned item's first send
	}
	it.LastTriedAt, it.UpdatedAt = now, now
	it.LeaseOwner, it.LeaseUntil = l.Owner, ms(l.Until)
	it.NextCheckAt = checkAfterLease(l.Until)
	return clone(it), nil
}

// Settle implements Store.
func (m *Memory) Settle(ctx context.Context, k Key, s Settlement) error {
	if err := checkSettlement(k, s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[k]
	// Only the lease's holder stores its outcome, once.
	if !ok || it.LeaseOwner != s.Owner {
		return fmt.Errorf("ledger: settle %s: %w", k, ErrPrecondition)
	}
	it.State = s.State
	it.SendListID, it.ErrCode, it.ErrCodeDes = s.SendListID, s.ErrCode, s.ErrCodeDes
	it.Package, it.JSAPI = s.Package, cloneMap(s.JSAPI)
	it.UpdatedAt = ms(s.Now)
	it.Settled++
	it.LeaseOwner, it.LeaseUntil = "", time.Time{}
	it.NextCheckAt = FirstCheck(s.State, s.Now)
	return nil
}

// Observe implements Store.
func (m *Memory) Observe(ctx context.Context, k Key, o Observation) error {
	if err := checkObservation(k, o); err != nil {
		return err
	}
	now := ms(o.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[k]
	if !ok {
		return fmt.Errorf("ledger: observe %s: %w", k, ErrPrecondition)
	}
	if o.To != "" {
		// A move starts from the state the caller read, and waits for a
		// send in flight to settle.
		if it.State != o.From || !it.LeaseFree(now) {
			return fmt.Errorf("ledger: observe %s: %w", k, ErrPrecondition)
		}
		it.State = o.To
		it.LeaseOwner, it.LeaseUntil = "", time.Time{}
		it.NextCheckAt = FirstCheck(o.To, now)
	}
	if o.Status != "" {
		it.Status = o.Status
	}
	it.UpdatedAt = now
	return nil
}

// Due implements Store.
func (m *Memory) Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*Item, error) {
	if err := checkDue(mchID, now, limit); err != nil {
		return nil, err
	}
	now = ms(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []*Item
	for _, it := range m.items {
		// As the DynamoDB index holds them: a merchant's items with a next
		// check, by next check.
		if it.MchID == mchID && !it.NextCheckAt.IsZero() && !it.NextCheckAt.After(now) {
			due = append(due, it)
		}
	}
	slices.SortFunc(due, func(a, b *Item) int {
		return cmp.Or(a.NextCheckAt.Compare(b.NextCheckAt), cmp.Compare(a.MchBillno, b.MchBillno))
	})
	out := make([]*Item, 0, min(limit, len(due)))
	for _, it := range due[:min(limit, len(due))] {
		out = append(out, clone(it))
	}
	return out, nil
}

// CampaignRows implements Store.
func (m *Memory) CampaignRows(ctx context.Context, campaignID string, after, limit int) ([]*Item, error) {
	if err := checkCampaignRows(campaignID, limit); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var rows []*Item
	for _, it := range m.items {
		// As the DynamoDB index holds them: only items with both a
		// campaign and a row, by row.
		if it.CampaignID == campaignID && it.CampaignRow > 0 && it.CampaignRow > after {
			rows = append(rows, it)
		}
	}
	slices.SortFunc(rows, func(a, b *Item) int {
		return cmp.Or(cmp.Compare(a.CampaignRow, b.CampaignRow), cmp.Compare(a.MchID, b.MchID), cmp.Compare(a.MchBillno, b.MchBillno))
	})
	out := make([]*Item, 0, min(limit, len(rows)))
	for _, it := range rows[:min(limit, len(rows))] {
		out = append(out, clone(it))
	}
	return out, nil
}

// Reconcile implements Store.
func (m *Memory) Reconcile(ctx context.Context, k Key, r Reconciliation) error {
	if err := checkReconciliation(k, r); err != nil {
		return err
	}
	now := ms(r.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[k]
	// Only from the item as the caller read it (of two reconcilers that
	// read it, one writes), and not while a send is in flight.
	if !ok || it.State != r.From || !it.NextCheckAt.Equal(ms(r.ReadNextCheckAt)) || !it.LeaseFree(now) {
		return fmt.Errorf("ledger: reconcile %s: %w", k, ErrPrecondition)
	}
	if r.To != r.From {
		it.State = r.To
		it.LeaseOwner, it.LeaseUntil = "", time.Time{}
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{{&it.Status, r.Status}, {&it.Reason, r.Reason}, {&it.RefundTime, r.RefundTime}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if r.RefundAmount > 0 {
		it.RefundAmount = r.RefundAmount
	}
	it.NextCheckAt = ms(r.NextCheckAt)
	it.CheckedAt, it.UpdatedAt = now, now
	return nil
}

// clone returns a copy of it that shares no map with it, with times as
// the stores keep them and empty maps nil, as the DynamoDB store reads
// them back.
func clone(it *Item) *Item {
	c := *it
	c.Fields, c.JSAPI = cloneMap(it.Fields), cloneMap(it.JSAPI)
	for _, t := range []*time.Time{&c.RecordedAt, &c.FirstTriedAt, &c.LastTriedAt, &c.UpdatedAt, &c.LeaseUntil, &c.NextCheckAt, &c.CheckedAt} {
		*t = ms(*t)
	}
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
