package reconcile

import (
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// StatusNotFound is the status the ledger stores when gethbinfo has no
// record of the billno (err_code NOT_FOUND).
const StatusNotFound = "NOT_FOUND"

// reading is what one gethbinfo query of an item came to.
type reading struct {
	res      *wxpay.QueryResult // the record, when WeChat has one
	notFound bool               // NOT_FOUND: no record (yet)
	err      error              // the query failed: nothing is known
}

// decision is what a check makes of an item: its state, what to store and
// when to check it next, and whether to send its stored request again.
type decision struct {
	to   ledger.State
	next time.Time // zero: not checked again

	status, reason, refundTime string
	refundAmount               int64

	// resend: send the stored request again, with its own billno, once the
	// decision is stored.
	resend bool
}

// decide is the reconciler's rules: what a reading of item it at now
// makes of it. It never calls a failure what WeChat did not report, never
// resends a paid item, and never moves an item WeChat once paid (a
// send_listid) to FAILED or EXPIRED.
func decide(it *ledger.Item, r reading, now time.Time) decision {
	var d decision
	switch {
	case r.err != nil:
		d = decision{to: it.State, next: now.Add(wait(QueryFailedCheck))}
	case r.notFound:
		d = afterNotFound(it, now)
	default:
		d = afterRecord(it, r.res, now)
	}
	// Not final within three days: for a person, and checked slowly.
	if d.to == ledger.NeedsAttention || (!d.to.Final() && !now.Before(it.FirstTriedAt.Add(wait(AttentionAfter)))) {
		d.to, d.resend, d.next = ledger.NeedsAttention, false, attentionCheck(it, now)
	}
	return d
}

// afterNotFound: WeChat has no record of the billno.
func afterNotFound(it *ledger.Item, now time.Time) decision {
	d := decision{to: it.State, status: StatusNotFound}
	unpaid := it.State == ledger.Recorded || it.State == ledger.Unknown ||
		(it.State == ledger.NeedsAttention && it.SendListID == "")
	expires := expiresAt(it)
	switch {
	case !unpaid:
		// WeChat answered success once: its record will show. Never sent
		// again, never expired; the three-day limit stands.
		d.next = now.Add(wait(NotFoundCheck))
	case !now.Before(expires):
		// The billno's window passed with no record: nothing was paid.
		d.to, d.next = ledger.Expired, time.Time{}
	case it.State == ledger.NeedsAttention:
		// Checked on its own schedule (decide).
	case now.Before(it.FirstTriedAt.Add(wait(ResendWindow))) && seenNotFound(it, now):
		// Still no record, a while after the last try: send the stored
		// request again, same billno. The next check is the fallback for a
		// re-send that never starts; one that does moves it.
		d.resend, d.next = true, now.Add(notFoundWait(it.Attempts))
	default:
		// Not seen yet, or seen too recently: look again in a few minutes,
		// and at the latest when the billno expires.
		d.next = earliest(now.Add(notFoundWait(it.Attempts)), expires)
	}
	return d
}

// seenNotFound reports whether the previous check, after the last try and
// at least notFoundWait before now, found no record either.
func seenNotFound(it *ledger.Item, now time.Time) bool {
	return it.Status == StatusNotFound && it.CheckedAt.After(it.LastTriedAt) &&
		!now.Before(it.CheckedAt.Add(notFoundWait(it.Attempts)))
}

// afterRecord: WeChat's record of the billno says res.Status.
func afterRecord(it *ledger.Item, res *wxpay.QueryResult, now time.Time) decision {
	d := decision{to: it.State, status: res.Status, reason: res.Reason}
	// Moves that only WeChat's paying can explain are safe from any state
	// the reconciler reads; FAILED is not after a success answer.
	paidOnce := it.State == ledger.Sent || it.SendListID != ""
	switch {
	case res.Status == wxpay.StatusReceived:
		d.to = ledger.Received
	case res.Status == wxpay.StatusRefund:
		d.to, d.refundTime, d.refundAmount = ledger.Refunded, res.RefundTime, res.RefundAmount
	case it.State == ledger.NeedsAttention:
		// Only a person, or WeChat's end of the red packet, resolves it.
		if !paidOnce && (res.Status == wxpay.StatusFailed || (res.Status == wxpay.StatusSending && res.Reason != "")) {
			d.to = ledger.Failed
		}
	case res.Status == wxpay.StatusSent:
		d.to, d.next = ledger.Sent, claimCheck(it, now)
	case res.Status == wxpay.StatusRefunding:
		d.to, d.next = ledger.Sent, now.Add(wait(RefundCheck))
	case res.Status == wxpay.StatusFailed && paidOnce:
		// WeChat's record contradicts its success answer.
		d.to = ledger.NeedsAttention
	case res.Status == wxpay.StatusFailed, res.Status == wxpay.StatusSending && res.Reason != "" && !paidOnce:
		// WeChat says it failed: over a limit, the balance, risk control.
		d.to = ledger.Failed
	default:
		// SENDING without a reason (or a status not documented): WeChat is
		// still at it.
		d.next = now.Add(wait(SendingCheck))
	}
	if d.to.Final() {
		d.next = time.Time{}
	}
	return d
}
