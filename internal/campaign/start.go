package campaign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Started is what Start made of a file.
type Started struct {
	// Campaign is the campaign, new or the one the same file and settings
	// started before.
	Campaign *Campaign
	// Existing is true when the campaign was started before: nothing new
	// was recorded, and nothing will be paid twice.
	Existing bool
	// Errors are the file's invalid rows (the campaign is Refused).
	Errors []RowError
}

// ConflictError is Start's refusal of a file whose settings name a
// campaign_id that another file or other settings started.
type ConflictError struct {
	ID string
}

// Error says what to do.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("campaign_id %s names a campaign of another file or other settings; nothing was recorded: give this one another campaign_id", e.ID)
}

// Start checks a campaign file (source, as Open reads it) with its
// settings and, when every row is valid, creates the campaign in state
// Planning, for a runner to plan and send. A file with invalid rows
// creates a Refused campaign and its refusal report; nothing is recorded
// in the ledger. The same rows with the same settings start nothing new:
// Started.Existing.
func (e *Engine) Start(ctx context.Context, source string, s Settings) (*Started, error) {
	mchID, err := e.WeChat.MchID(ctx)
	if err != nil {
		return nil, fmt.Errorf("campaign: the merchant: %w", err)
	}
	src, err := e.Open(source)
	if err != nil {
		return nil, fmt.Errorf("campaign: %s: %w", source, err)
	}
	rc, etag, err := src.Open(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("campaign: open %s: %w", source, err)
	}
	checked, err := Check(rc, s, mchID)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("campaign: %s: %w", source, err)
	}
	now := e.now()
	c := &Campaign{
		ID: checked.ID, MchID: mchID, State: Planning, Settings: s, Source: source, ETag: etag,
		Identity: checked.Identity, RowsIdentity: checked.RowsIdentity, Rows: checked.Rows, Amount: checked.Amount, Rate: e.rateOf(s),
		CreatedAt: now, UpdatedAt: now,
	}
	if len(checked.Errors) > 0 {
		c.State, c.Reason = Refused, fmt.Sprintf("%d invalid rows: nothing was sent", len(checked.Errors))
	} else if err := e.notRunning(ctx, c); err != nil {
		return nil, err
	}
	switch err := e.Campaigns.Create(ctx, c); {
	case errors.Is(err, ErrExists):
		old, err := e.Campaigns.Get(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if old.Identity == c.Identity && old.MchID == mchID {
			return &Started{Campaign: old, Existing: true, Errors: checked.Errors}, nil
		}
		if old.State != Refused || old.MchID != mchID {
			return nil, &ConflictError{ID: c.ID}
		}
		// Only a file refused before it was planned holds nothing: rows
		// of a file refused while planning stay in the ledger under the
		// campaign's id, and a corrected file must not mix with them.
		if planned, err := e.Ledger.CampaignRows(ctx, c.ID, 0, 1); err != nil {
			return nil, fmt.Errorf("campaign %s: read its rows: %w", c.ID, err)
		} else if len(planned) > 0 || old.Planned > 0 {
			return nil, &ConflictError{ID: c.ID}
		}
		// A refused file sent nothing: its campaign_id names the
		// corrected file now.
		c.Version = old.Version
		if err := e.Campaigns.Put(ctx, c); err != nil {
			return nil, fmt.Errorf("campaign %s: replace the refused file: %w", c.ID, err)
		}
	case err != nil:
		return nil, fmt.Errorf("campaign %s: create: %w", c.ID, err)
	}
	if c.State == Refused && e.Reports != nil {
		if err := WriteRefusal(ctx, e.Reports, c, checked.Errors, now); err != nil {
			return nil, fmt.Errorf("campaign %s: refusal report: %w", c.ID, err)
		}
	}
	e.logger().InfoContext(ctx, "campaign started", slog.String("campaign_id", c.ID), slog.String("state", string(c.State)),
		slog.Int("rows", c.Rows), slog.Int64("amount", c.Amount))
	return &Started{Campaign: c, Errors: checked.Errors}, nil
}

// DuplicateError is Start's refusal of a file whose rows are those of a
// campaign not over yet (planning, running or paused) under another id:
// most likely the same list started again with its settings edited,
// which would pay every receiver twice.
type DuplicateError struct {
	ID, Other string
	State     State
}

// Error says what to do.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("the same rows are campaign %s, still %s: cancel it, or wait until it is done, before starting them again as campaign %s; nothing was recorded",
		e.Other, e.State, e.ID)
}

// notRunning refuses a new campaign whose rows are those of another one
// not over yet.
func (e *Engine) notRunning(ctx context.Context, c *Campaign) error {
	list, err := e.Campaigns.List(ctx)
	if err != nil {
		return fmt.Errorf("campaign: list: %w", err)
	}
	for _, o := range list {
		if o.ID != c.ID && o.MchID == c.MchID && o.RowsIdentity == c.RowsIdentity && !o.State.Final() {
			return &DuplicateError{ID: c.ID, Other: o.ID, State: o.State}
		}
	}
	return nil
}

// Get returns a campaign. ErrNotFound when there is none.
func (e *Engine) Get(ctx context.Context, id string) (*Campaign, error) {
	return e.Campaigns.Get(ctx, id)
}

// StateError is a control request the campaign's state does not allow.
type StateError struct {
	ID     string
	State  State
	Action string
}

// Error says why.
func (e *StateError) Error() string {
	return fmt.Sprintf("campaign %s is %s: it cannot %s", e.ID, e.State, e.Action)
}

// Pause stops a campaign's sending at its next checkpoint (within about a
// second): the rows not sent stay as they are.
func (e *Engine) Pause(ctx context.Context, id string) (*Campaign, error) {
	return e.control(ctx, id, "pause", func(c *Campaign) bool {
		if c.State != Planning && c.State != Running {
			return false
		}
		c.State, c.Reason = Paused, "paused by request"
		return true
	})
}

// Resume sends a Paused campaign again, from where it stopped: a runner
// picks it up within a minute. Rows WeChat refused for the merchant
// (NOTENOUGH, ...) are sent again with the same billnos.
func (e *Engine) Resume(ctx context.Context, id string) (*Campaign, error) {
	return e.control(ctx, id, "resume", func(c *Campaign) bool {
		if c.State != Paused {
			return false
		}
		c.State, c.Reason = Running, ""
		if c.Planned < c.Rows {
			c.State = Planning
		}
		return true
	})
}

// Cancel stops a campaign for good: settled rows stay settled, rows not
// sent are never sent by it, rows in flight end as WeChat answers.
func (e *Engine) Cancel(ctx context.Context, id string) (*Campaign, error) {
	c, err := e.control(ctx, id, "cancel", func(c *Campaign) bool {
		if c.State.Final() {
			return false
		}
		c.State, c.Reason, c.FinishedAt = Cancelled, "cancelled by request", e.now()
		c.ReportDue = true
		return true
	})
	return c, err
}

func (e *Engine) control(ctx context.Context, id, action string, f func(*Campaign) bool) (*Campaign, error) {
	c, err := e.update(ctx, id, func(c *Campaign) error {
		if !f(c) {
			return &StateError{ID: id, State: c.State, Action: action}
		}
		return nil
	})
	if err == nil {
		e.logger().InfoContext(ctx, "campaign "+action, slog.String("campaign_id", id), slog.String("state", string(c.State)))
	}
	return c, err
}

// MarkReportDue asks for a campaign's reports to be written again: its
// rows settled (the reconciler calls it). A campaign without reports yet
// is left alone: its run writes them when it is done.
func (e *Engine) MarkReportDue(ctx context.Context, id string) error {
	_, err := e.update(ctx, id, func(c *Campaign) error {
		if c.ReportDue || c.ReportedAt.IsZero() {
			return errNothingToDo
		}
		c.ReportDue = true
		return nil
	})
	if errors.Is(err, errNothingToDo) {
		return nil
	}
	return err
}

// Tick is the runner's scheduled work: it runs every campaign that has
// rows to plan or send and no runner, one after another while its
// context leaves time, and writes the reports that are due. It returns
// the campaigns it worked on.
func (e *Engine) Tick(ctx context.Context) ([]*Campaign, error) {
	list, err := e.Campaigns.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("campaign: list: %w", err)
	}
	var worked []*Campaign
	var errs []error
	for _, c := range list {
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < 2*reserve {
			break
		}
		switch {
		case (c.State == Planning || c.State == Running) && c.RunnerFree(e.now()):
			done, err := e.Run(ctx, c.ID)
			if err != nil {
				errs = append(errs, err)
			}
			if done != nil {
				worked = append(worked, done)
			}
		case c.ReportDue && c.RunnerFree(e.now()):
			// (A runner still at work writes its own report, or asks
			// for one when it ends.)
			if err := e.reportDue(ctx, c.ID); err != nil {
				errs = append(errs, err)
			}
			worked = append(worked, c)
		}
	}
	return worked, errors.Join(errs...)
}

// reportDue writes a campaign's reports again. The flag is cleared first,
// so that rows settling while the reports are written ask for another.
func (e *Engine) reportDue(ctx context.Context, id string) error {
	c, err := e.update(ctx, id, func(c *Campaign) error {
		if !c.ReportDue {
			return errNothingToDo
		}
		c.ReportDue, c.ReportedAt = false, e.now()
		return nil
	})
	if errors.Is(err, errNothingToDo) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := e.report(ctx, c); err != nil {
		// Ask again: the next tick retries.
		_, _ = e.update(context.WithoutCancel(ctx), id, func(c *Campaign) error { c.ReportDue = true; return nil })
		return err
	}
	return nil
}
