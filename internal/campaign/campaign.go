// Package campaign sends red packets from a file: one sendredpack per row,
// at WeChat's rate, through the one send path (internal/payout) and the
// ledger.
//
// A campaign goes through three steps:
//
//  1. Check (plan.go): the file is read once, streaming; every row is
//     validated as the sendredpack request it becomes, and the campaign's
//     identity is computed from the rows and the settings. A file with any
//     invalid row is refused whole: nothing is recorded, nothing sent.
//  2. Plan (the runner's first phase): the file is read again and every row
//     enters the ledger as a Recorded item, never tried, with the
//     campaign's id and its row number, under a billno that is the same
//     every time the same file is planned.
//  3. Run (run.go): the rows are sent in order, paced to the campaign's
//     rate and the stack's shared limit (Window); NOTENOUGH and the
//     merchant-wide refusals pause the campaign; the report (report.go)
//     is written when no row is left to send, and again when the
//     reconciler settles rows.
//
// The campaign's own state (Campaign) is a small item in a Store, written
// with optimistic concurrency: every write names the version it read.
package campaign

import (
	"context"
	"errors"
	"time"
)

// State is a campaign's state.
type State string

// The states of a campaign.
const (
	// Planning: the file was checked; its rows are being recorded in the
	// ledger. Nothing is sent yet.
	Planning State = "PLANNING"
	// Running: rows are being sent.
	Running State = "RUNNING"
	// Paused: sending stopped, by a request or because WeChat refused the
	// merchant (NOTENOUGH and the like); rows not sent stay as they are
	// until a resume.
	Paused State = "PAUSED"
	// Done: no row is left to send. Rows whose outcome is unknown are
	// settled by the reconciler; the report follows them.
	Done State = "DONE"
	// Cancelled: sending stopped for good; settled rows stay settled,
	// rows not sent are never sent by the campaign.
	Cancelled State = "CANCELLED"
	// Refused: the file has invalid rows, or its billnos are recorded
	// with other requests; nothing was sent.
	Refused State = "REFUSED"
)

// Final reports whether nothing more is sent in state s.
func (s State) Final() bool { return s == Done || s == Cancelled || s == Refused }

// Campaign is a campaign's state, as stored.
type Campaign struct {
	// ID is the campaign's id: the settings' campaign_id, or derived from
	// the rows and the settings (Check).
	ID string `json:"campaign_id"`
	// MchID is the merchant that pays.
	MchID string `json:"mch_id"`
	State State  `json:"state"`
	// Reason says why the campaign is Paused, Cancelled or Refused.
	Reason string `json:"reason,omitempty"`

	Settings Settings `json:"settings"`
	// Source is where the file is (s3://bucket/key or a local path) and
	// ETag the version that was checked: planning reads that version
	// only.
	Source string `json:"source"`
	ETag   string `json:"etag,omitempty"`
	// Identity is the hash of the rows and the settings (without rate
	// and campaign_id): the same file with the same settings has the
	// same Identity.
	Identity string `json:"identity"`
	// RowsIdentity is the hash of the merchant and the rows alone: two
	// campaigns of the same rows at once are refused (Start).
	RowsIdentity string `json:"rows_identity,omitempty"`

	// Rows and Amount (fen) are the file's row count and total.
	Rows   int   `json:"rows"`
	Amount int64 `json:"amount"`
	// Planned is how many rows are recorded in the ledger (rows 1 to
	// Planned); Cursor is the last row up to which every row was sent
	// once or needs no send.
	Planned int `json:"planned"`
	Cursor  int `json:"cursor"`
	// Sent counts the campaign's sends (a row sent again after a pause
	// counts again), and Outcomes counts them by outcome: success,
	// failed, unknown, and the err_code of refusals that pause or slow
	// the campaign (NOTENOUGH, FREQ_LIMIT, ...).
	Sent     int            `json:"sent"`
	Outcomes map[string]int `json:"outcomes,omitempty"`
	// Rate is the campaign's send rate, per second.
	Rate float64 `json:"rate"`

	// RunnerOwner holds the campaign for one runner until RunnerUntil.
	RunnerOwner string    `json:"runner_owner,omitempty"`
	RunnerUntil time.Time `json:"runner_until,omitzero"`

	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at"`

	// ReportDue is set when rows settled after the last report.
	ReportDue  bool      `json:"report_due,omitempty"`
	ReportedAt time.Time `json:"reported_at,omitzero"`

	// Version is the store's version of the item, for optimistic
	// concurrency: Put writes only over the version it was read at.
	Version int64 `json:"version"`
}

// RunnerFree reports whether no runner holds the campaign at now.
func (c *Campaign) RunnerFree(now time.Time) bool {
	return c.RunnerOwner == "" || c.RunnerUntil.Before(now)
}

// Errors of a Store.
var (
	// ErrNotFound: no campaign has the id.
	ErrNotFound = errors.New("campaign: no such campaign")
	// ErrExists: Create found a campaign with the id.
	ErrExists = errors.New("campaign: campaign exists")
	// ErrVersion: Put found another version than the one it was given:
	// someone wrote the campaign since it was read.
	ErrVersion = errors.New("campaign: written by another since read")
)

// Store keeps the campaigns' state. Its implementations are safe for
// concurrent use. A campaign is never deleted.
type Store interface {
	// Create writes a new campaign at Version 1. ErrExists if one has the
	// id.
	Create(ctx context.Context, c *Campaign) error
	// Get reads a campaign, strongly consistent. ErrNotFound when absent.
	Get(ctx context.Context, id string) (*Campaign, error)
	// Put replaces the campaign if its stored version is c.Version, and
	// sets c.Version to the next version. ErrVersion otherwise.
	Put(ctx context.Context, c *Campaign) error
	// List returns the campaigns not over: Planning, Running, Paused, or
	// with ReportDue set. A runner has work in all but the Paused ones.
	List(ctx context.Context) ([]*Campaign, error)
}

// Window counts the sends of a merchant per second of the clock, across
// every function of the stack: API sends are counted and never refused
// (they keep priority), campaign sends are admitted only while the second
// has room.
type Window interface {
	// Take counts one campaign send in the second of now if fewer than
	// max sends are counted in it, and reports whether it did.
	Take(ctx context.Context, mchID string, now time.Time, max int) (bool, error)
	// Count counts one API send in the second of now.
	Count(ctx context.Context, mchID string, now time.Time) error
}
