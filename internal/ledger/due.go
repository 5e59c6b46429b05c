package ledger

import (
	"fmt"
	"time"
)

// When an item is first checked by the reconciler after a send or a move
// of the query function; the reconciler's own schedule (internal/reconcile)
// takes over from there. Each is a row of that schedule.
const (
	// CheckAfterLease is how long after a send's lease ends the item is
	// first checked (Create, Acquire): by then the send has settled, or its
	// invocation died mid-call and its outcome is unknown.
	CheckAfterLease = time.Minute
	// CheckAfterUnknown is how soon an item whose send's outcome is not
	// known (Unknown, or NeedsAttention after a send) is first checked:
	// WeChat shows a send it accepted within seconds, and a re-send waits
	// far longer than WeChat's 1 s between tries of a billno.
	CheckAfterUnknown = time.Minute
	// CheckAfterSent is how soon a paid item (Sent) is first checked: the
	// receiver has 24 hours to claim it, most claim within the hour.
	CheckAfterSent = time.Hour
)

// FirstCheck returns the first next check of an item that a send's Settle
// (or the query function's Observe) leaves in state st at now: Sent after
// CheckAfterSent; Recorded, Unknown and NeedsAttention after
// CheckAfterUnknown; none (zero) for a final state.
func FirstCheck(st State, now time.Time) time.Time {
	switch {
	case st.Final() || !st.Valid():
		return time.Time{}
	case st == Sent:
		return ms(now.Add(CheckAfterSent))
	default:
		return ms(now.Add(CheckAfterUnknown))
	}
}

// checkAfterLease is the first check of an item whose send holds the
// lease until until.
func checkAfterLease(until time.Time) time.Time { return ms(until.Add(CheckAfterLease)) }

// Reconciliation is what a reconciler's check of an item found and
// decided (Store.Reconcile).
type Reconciliation struct {
	// From and ReadNextCheckAt are the item's State and NextCheckAt as the
	// reconciler read them: the write happens only if both still hold.
	From            State
	ReadNextCheckAt time.Time
	// To is the state decided: From to keep it.
	To State

	// Status, Reason, RefundTime and RefundAmount are what gethbinfo
	// reported; empty (zero) ones leave the stored ones.
	Status, Reason, RefundTime string
	RefundAmount               int64

	// NextCheckAt is the next check; zero takes the item out of Due. A
	// final To has none.
	NextCheckAt time.Time

	Now time.Time
}

// checkReconciliation returns ErrPrecondition for a move ValidReconcile
// does not allow, as a store would for a state that is not r.From, and a
// plain error for a request no store should see.
func checkReconciliation(k Key, r Reconciliation) error {
	if err := checkKey("reconcile", k); err != nil {
		return err
	}
	if r.Now.IsZero() || !r.From.Valid() || !r.To.Valid() {
		return fmt.Errorf("ledger: reconcile %s: from, to and now are required", k)
	}
	if r.To.Final() && !r.NextCheckAt.IsZero() {
		return fmt.Errorf("ledger: reconcile %s: a %s item has no next check", k, r.To)
	}
	if r.RefundAmount < 0 {
		return fmt.Errorf("ledger: reconcile %s: negative refund_amount", k)
	}
	if !ValidReconcile(r.From, r.To) {
		return fmt.Errorf("ledger: reconcile %s: %s to %s: %w", k, r.From, r.To, ErrPrecondition)
	}
	return nil
}

func checkDue(mchID string, now time.Time, limit int) error {
	if mchID == "" || now.IsZero() || limit <= 0 {
		return fmt.Errorf("ledger: due: mch_id, now and a positive limit are required")
	}
	return nil
}
