package campaign

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Memory is a Store in memory, for local runs and fast tests. It keeps
// times as the DynamoDB store does (UTC, to the millisecond) and checks
// the same conditions, so that code tested on it behaves the same on
// DynamoDB.
type Memory struct {
	mu        sync.Mutex
	campaigns map[string]*Campaign
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{campaigns: make(map[string]*Campaign)}
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, c *Campaign) error {
	if err := checkStoredID("create", c.ID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.campaigns[c.ID]; ok {
		return fmt.Errorf("campaign: create %s: %w", c.ID, ErrExists)
	}
	stored := storedCopy(c)
	stored.Version = 1
	m.campaigns[c.ID] = stored
	c.Version = 1
	return nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (*Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.campaigns[id]
	if !ok {
		return nil, fmt.Errorf("campaign: get %s: %w", id, ErrNotFound)
	}
	return storedCopy(c), nil
}

// Put implements Store. A Put of a campaign never created fails with
// ErrVersion, as on DynamoDB: there is no version it could match.
func (m *Memory) Put(ctx context.Context, c *Campaign) error {
	if err := checkStoredID("put", c.ID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.campaigns[c.ID]
	if !ok || old.Version != c.Version {
		return fmt.Errorf("campaign: put %s at version %d: %w", c.ID, c.Version, ErrVersion)
	}
	stored := storedCopy(c)
	stored.Version = c.Version + 1
	m.campaigns[c.ID] = stored
	c.Version = stored.Version
	return nil
}

// List implements Store: the campaigns sorted by CreatedAt, then ID.
func (m *Memory) List(ctx context.Context) ([]*Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Campaign
	for _, c := range m.campaigns {
		if listed(c) {
			out = append(out, storedCopy(c))
		}
	}
	sortCampaigns(out)
	return out, nil
}

// storedCopy returns a copy of c that shares nothing with it, as the
// DynamoDB store keeps it: times in UTC to the millisecond, an empty
// Outcomes as nil. Outcomes is Campaign's only reference field (Settings
// has none); a field added that is a pointer, slice or map must be copied
// here too.
func storedCopy(c *Campaign) *Campaign {
	cp := *c
	cp.Outcomes = nil
	if len(c.Outcomes) > 0 {
		cp.Outcomes = maps.Clone(c.Outcomes)
	}
	for _, t := range []*time.Time{
		&cp.RunnerUntil, &cp.CreatedAt, &cp.StartedAt, &cp.FinishedAt,
		&cp.UpdatedAt, &cp.ReportedAt,
	} {
		*t = storedTime(*t)
	}
	return &cp
}

// MemoryWindow is a Window in memory, for local runs and fast tests: one
// process's count, with the DynamoDB window's rules.
type MemoryWindow struct {
	mu    sync.Mutex
	slots map[string]windowSlot
}

// windowSlot is a merchant's current second (unix) and its count.
type windowSlot struct {
	sec int64
	n   int
}

// NewMemoryWindow returns a window with nothing counted.
func NewMemoryWindow() *MemoryWindow {
	return &MemoryWindow{slots: make(map[string]windowSlot)}
}

// Take implements Window. A second older than the merchant's current one
// is full: its sends were counted in the newer second, which is all that
// is kept, so admitting one could exceed the rate.
func (w *MemoryWindow) Take(ctx context.Context, mchID string, now time.Time, max int) (bool, error) {
	if max <= 0 {
		return false, nil
	}
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.slots[mchID]
	switch {
	case !ok || s.sec < sec:
		w.slots[mchID] = windowSlot{sec: sec, n: 1}
		return true, nil
	case s.sec == sec && s.n < max:
		s.n++
		w.slots[mchID] = s
		return true, nil
	default:
		return false, nil
	}
}

// Count implements Window. A send in a second older than the merchant's
// current one is counted in the current one: a send is never left
// uncounted, and counting it late only makes campaign sends wait.
func (w *MemoryWindow) Count(ctx context.Context, mchID string, now time.Time) error {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.slots[mchID]
	if !ok || s.sec < sec {
		w.slots[mchID] = windowSlot{sec: sec, n: 1}
		return nil
	}
	s.n++
	w.slots[mchID] = s
	return nil
}

// The memory implementations satisfy the interfaces.
var (
	_ Store  = (*Memory)(nil)
	_ Window = (*MemoryWindow)(nil)
)
