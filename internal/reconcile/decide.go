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
// resends an item WeChat paid or may have paid (SENT, NEEDS_ATTENTION),
// and moves an item that needs attention only to the end of a paid red
// packet (RECEIVED, REFUNDED): FAILED or EXPIRED there is for a person,
// who can see whether WeChat once paid it.
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
	expires := expiresAt(it)
	switch {
	case it.State != ledger.Recorded && it.State != ledger.Unknown:
		// SENT: WeChat answered success, its record will show; never sent
		// again, never expired, and the three-day limit stands.
		// NEEDS_ATTENTION: for a person (decide keeps its schedule).
		d.next = now.Add(wait(NotFoundCheck))
	case !now.Before(expires):
		// The billno's window passed with no record: nothing was paid.
		d.to, d.next = ledger.Expired, time.Time{}
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
	sent := it.State == ledger.Sent // WeChat answered success
	switch {
	case res.Status == wxpay.StatusReceived:
		d.to = ledger.Received
	case res.Status == wxpay.StatusRefund:
		d.to, d.refundTime, d.refundAmount = ledger.Refunded, res.RefundTime, res.RefundAmount
	case it.State == ledger.NeedsAttention:
		// Only a person, or the end of a paid red packet, resolves it.
	case res.Status == wxpay.StatusSent:
		d.to, d.next = ledger.Sent, claimCheck(it, now)
	case res.Status == wxpay.StatusRefunding:
		d.to, d.next = ledger.Sent, now.Add(wait(RefundCheck))
	case res.Status == wxpay.StatusFailed && sent:
		// WeChat's record contradicts its success answer.
		d.to = ledger.NeedsAttention
	case res.Status == wxpay.StatusFailed, res.Status == wxpay.StatusSending && res.Reason != "" && !sent:
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
