package reconcile

import (
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// Interval is one row of the reconciler's schedule: how long until an
// item is checked again, or until a limit is reached, and the WeChat rule
// behind it.
type Interval struct {
	// When says what the row is for: what the last check found.
	When string
	// Wait is the interval or the limit.
	Wait time.Duration
	// From is what Wait is counted from.
	From string
	// Rule is WeChat's rule behind the figure.
	Rule string
}

// Row names a row of Schedule.
type Row int

// The rows of Schedule.
const (
	AfterLease Row = iota
	AfterUnknown
	AfterSent
	ClaimCheck
	ClaimWindow
	RefundCheck
	SendingCheck
	NotFoundCheck
	NotFoundCheckMax
	ResendWindow
	ExpireMargin
	QueryFailedCheck
	AttentionAfter
	AttentionCheck
	QueryWindow
)

// Schedule is the reconciler's backoff table, one row per case: the
// README's lifecycle table is this one. The first three rows are the
// ledger's own (ledger.FirstCheck), set by the send path; the reconciler
// sets the others.
var Schedule = [...]Interval{
	AfterLease: {
		When: "a send starts (the first, a repeat or a re-send)", Wait: ledger.CheckAfterLease, From: "the send's lease ends (its deadline + 2 s)",
		Rule: "a send settles within its invocation; an item still RECORDED after its lease is one whose invocation died mid-call, and only gethbinfo tells what WeChat did",
	},
	AfterUnknown: {
		When: "a send's outcome is unknown (UNKNOWN)", Wait: ledger.CheckAfterUnknown, From: "the send",
		Rule: "PROCESSING and SYSTEMERROR: query the billno later; gethbinfo shows an accepted send within seconds. Far above WeChat's 1 s between tries of a billno",
	},
	AfterSent: {
		When: "WeChat paid it (SENT)", Wait: ledger.CheckAfterSent, From: "the send",
		Rule: "the receiver has 24 hours to claim a red packet; most claim within the hour",
	},
	ClaimCheck: {
		When: "SENT, within the claim window", Wait: 6 * time.Hour, From: "the check (and once more an hour after the claim window ends)",
		Rule: "24-hour claim window: RECEIVED whenever the receiver claims it",
	},
	ClaimWindow: {
		When: "a SENT red packet not claimed is refunded", Wait: 24 * time.Hour, From: "the last try",
		Rule: "unclaimed red packets are refunded 24 hours after they were sent (RFUND_ING, then REFUND)",
	},
	RefundCheck: {
		When: "SENT past the claim window, or RFUND_ING", Wait: time.Hour, From: "the check",
		Rule: "the refund follows the end of the 24-hour claim window",
	},
	SendingCheck: {
		When: "SENDING without a reason (or a status not known)", Wait: 15 * time.Minute, From: "the check",
		Rule: "WeChat is still processing: SENDING may last hours and end SENT or FAILED; SENDING with a reason is a failure",
	},
	NotFoundCheck: {
		When: "NOT_FOUND", Wait: 5 * time.Minute, From: "the check; doubled for each try of the billno, up to the next row",
		Rule: "gethbinfo may not show a send yet. NOT_FOUND twice this far apart since the last try: the send left no record, and the stored request is sent again with its billno (WeChat's advice), far more than 1 s after the last try",
	},
	NotFoundCheckMax: {
		When: "NOT_FOUND, many tries", Wait: 2 * time.Hour, From: "the check",
		Rule: "so that a billno WeChat never shows is tried at most 16 times within its re-entry window",
	},
	ResendWindow: {
		When: "NOT_FOUND items are sent again", Wait: 24 * time.Hour, From: "the first try",
		Rule: "WeChat's re-entry of a billno after an unknown outcome; taken as the 24 hours a red packet lives",
	},
	ExpireMargin: {
		When: "NOT_FOUND becomes EXPIRED (nothing paid)", Wait: time.Hour, From: "the re-entry window's end, and the last try (so at least 25 h after the first try)",
		Rule: "no record at WeChat an hour after the last send and past the re-entry window: the billno cannot pay any more",
	},
	QueryFailedCheck: {
		When: "gethbinfo failed (timeout, SYSTEMERROR, ...)", Wait: 5 * time.Minute, From: "the check",
		Rule: "WeChat is busy or unreachable: query later",
	},
	AttentionAfter: {
		When: "not final becomes NEEDS_ATTENTION", Wait: 72 * time.Hour, From: "the first try",
		Rule: "a red packet is claimed or refunded within 24 hours of its send; three days without an end is for a person",
	},
	AttentionCheck: {
		When: "NEEDS_ATTENTION", Wait: 6 * time.Hour, From: "the check",
		Rule: "checked until WeChat's record ends it as paid (RECEIVED, REFUNDED); anything else, FAILED or NOT_FOUND included, is for a person",
	},
	QueryWindow: {
		When: "NEEDS_ATTENTION is no longer checked", Wait: 30 * 24 * time.Hour, From: "the first try",
		Rule: "gethbinfo answers for red packets of the last 30 days",
	},
}

// wait is a row's figure.
func wait(r Row) time.Duration { return Schedule[r].Wait }

// notFoundWait is how long after a NOT_FOUND an item is checked again:
// NotFoundCheck, doubled for each try of the billno after the first, at
// most NotFoundCheckMax.
func notFoundWait(attempts int) time.Duration {
	d := wait(NotFoundCheck)
	for i := 1; i < attempts && d < wait(NotFoundCheckMax); i++ {
		d *= 2
	}
	return min(d, wait(NotFoundCheckMax))
}

// claimCheck is the next check of a paid item at now: every ClaimCheck
// within the claim window, once at its end (plus RefundCheck), then every
// RefundCheck. The window is counted from the item's last try, the latest
// the paying send can have been.
func claimCheck(it *ledger.Item, now time.Time) time.Time {
	refundDue := it.LastTriedAt.Add(wait(ClaimWindow) + wait(RefundCheck))
	if now.Before(refundDue) {
		return earliest(now.Add(wait(ClaimCheck)), refundDue)
	}
	return now.Add(wait(RefundCheck))
}

// expiresAt is when a billno that WeChat has no record of becomes EXPIRED:
// ExpireMargin after the later of the re-entry window's end and the last
// try.
func expiresAt(it *ledger.Item) time.Time {
	return latest(it.FirstTriedAt.Add(wait(ResendWindow)), it.LastTriedAt).Add(wait(ExpireMargin))
}

// attentionCheck is the next check of an item that needs attention: every
// AttentionCheck within WeChat's query window, then none (zero).
func attentionCheck(it *ledger.Item, now time.Time) time.Time {
	next := now.Add(wait(AttentionCheck))
	if next.After(it.FirstTriedAt.Add(wait(QueryWindow))) {
		return time.Time{}
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
