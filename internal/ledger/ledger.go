// Package ledger records every red packet before it is sent: one item per
// red packet, keyed by the merchant (mch_id) and mch_billno, WeChat Pay's
// idempotency key.
//
// An item is created in state Recorded, with the first send's lease taken,
// before any byte goes to WeChat; each later send of the same billno takes
// the lease again with Acquire, and every send ends with Settle, which
// stores WeChat's answer and frees the lease. A campaign may record its
// items ahead of any send: Create without a lease writes a planned item
// (Recorded, Attempts 0), which its first send takes with Acquire, and
// CampaignRows lists a campaign's planned items by row. Observe stores what gethbinfo
// reported and moves the state along the transitions ValidTransition allows.
// Items are never deleted and never expire.
//
// The states and their transitions are defined here once; the stores
// (NewMemory, NewDynamoDB) enforce the same conditions on every write, and
// the package ledgertest holds the contract test suite both pass.
//
// The stores never read the clock: every write carries its own Now, so that
// tests can inject time and a store's conditions compare the times its
// callers see. Times are kept to the millisecond, in UTC.
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// State is the state of a red packet in the ledger.
type State string

// The states of a red packet. Final states are Received, Refunded, Failed
// and Expired.
const (
	// Recorded: written before any byte went to WeChat. An item still
	// Recorded after its lease has ended was perhaps sent: its send's
	// outcome was never stored. A planned item (Attempts 0, see
	// Store.Create) is Recorded too, and was never sent.
	Recorded State = "RECORDED"
	// Sent: WeChat answered success.
	Sent State = "SENT"
	// Failed: WeChat refused the send; no money moved.
	Failed State = "FAILED"
	// Unknown: a send's outcome is not known (timeout, SYSTEMERROR,
	// PROCESSING, an unreadable answer): money may have moved.
	Unknown State = "UNKNOWN"
	// Received: gethbinfo reported the red packet received.
	Received State = "RECEIVED"
	// Refunded: gethbinfo reported the red packet refunded.
	Refunded State = "REFUNDED"
	// Expired: WeChat's window for the billno passed with no record at
	// WeChat: nothing was paid.
	Expired State = "EXPIRED"
	// NeedsAttention: not final within the reconciler's limit, or WeChat's
	// record contradicts the ledger; for a person to look at.
	NeedsAttention State = "NEEDS_ATTENTION"
)

// allStates lists the states above.
var allStates = []State{Recorded, Sent, Failed, Unknown, Received, Refunded, Expired, NeedsAttention}

// Valid reports whether s is one of the states above.
func (s State) Valid() bool { return slices.Contains(allStates, s) }

// Final reports whether s is a final state: Received, Refunded, Failed or
// Expired. A Failed or Expired item may still be sent again by a repeated
// request (see Resendable); WeChat then decides.
func (s State) Final() bool {
	switch s {
	case Received, Refunded, Failed, Expired:
		return true
	}
	return false
}

// Paid reports whether WeChat accepted the red packet: Sent, Received or
// Refunded. A repeated request for a paid item is answered from the ledger,
// without a call to WeChat.
func (s State) Paid() bool {
	switch s {
	case Sent, Received, Refunded:
		return true
	}
	return false
}

// Resendable reports whether a repeated request for an item in state s is
// sent to WeChat again, with the same billno: Recorded, Unknown, Failed,
// Expired and NeedsAttention. WeChat's own idempotency on the billno decides
// whether anything is paid.
func (s State) Resendable() bool {
	switch s {
	case Recorded, Unknown, Failed, Expired, NeedsAttention:
		return true
	}
	return false
}

// Outcome is what one send of a billno (all its HTTP tries) came to, in the
// words of the functions' answers.
type Outcome string

// The outcomes of a send.
const (
	OutcomeSuccess Outcome = "success" // WeChat answered success
	OutcomeFailed  Outcome = "failed"  // WeChat refused: no money moved by this send
	OutcomeUnknown Outcome = "unknown" // no readable answer: money may have moved
)

// AfterSend returns the state an item moves to when a send's outcome is
// settled. prev is the item's state when the send started (the State of the
// item Create or Acquire returned), and earlierUnknown says whether an
// earlier send of the billno never had its outcome stored (Item.EarlierUnknown).
//
//   - success: Sent.
//   - unknown: Unknown (an outcome other than the three is unknown too).
//   - failed: Failed, unless an earlier send's outcome is not known: prev
//     Unknown, or an earlier send that never settled (a Recorded item
//     tried before, or any item whose earlier send died mid-call). Then the
//     item stays Unknown, because WeChat's refusal of this send says
//     nothing about the earlier one, which may have paid.
//
// A NeedsAttention item stays NeedsAttention unless WeChat answers success:
// only the reconciler or a person resolves it. A paid item (Sent, Received,
// Refunded) keeps its state whatever the outcome; it is not sent again.
func AfterSend(prev State, earlierUnknown bool, o Outcome) State {
	switch {
	case prev.Paid():
		return prev
	case o == OutcomeSuccess:
		return Sent
	case prev == NeedsAttention:
		return NeedsAttention
	case o == OutcomeFailed && prev != Unknown && !earlierUnknown:
		return Failed
	default:
		return Unknown
	}
}

// ValidTransition reports whether the reconciler (or the query function)
// may move an item from one state to another on what gethbinfo reported,
// with Store.Observe:
//
//   - Recorded, Unknown → Sent, Failed, Expired, NeedsAttention, and
//     Received or Refunded (WeChat's record may already be past Sent when
//     first read);
//   - Sent → Received, Refunded, NeedsAttention;
//   - NeedsAttention → Received or Refunded only: WeChat's record shows the
//     red packet paid and ended. Anything else it shows (FAILED, SENT
//     without a send_listid to prove it, NOT_FOUND) is left for a person;
//   - nothing leaves Failed or Expired this way: only a new send does (with
//     Acquire and Settle), because WeChat decides that send;
//   - nothing leaves Received or Refunded.
//
// The moves of a send are given by AfterSend.
func ValidTransition(from, to State) bool {
	switch from {
	case Recorded, Unknown:
		switch to {
		case Sent, Failed, Expired, NeedsAttention, Received, Refunded:
			return true
		}
	case Sent:
		switch to {
		case Received, Refunded, NeedsAttention:
			return true
		}
	case NeedsAttention:
		return to == Received || to == Refunded
	}
	return false
}

// ValidReconcile reports whether a reconciler's check may leave an item in
// state from as to (Store.Reconcile): a ValidTransition, or a state that
// is not final kept as it is, with another next check (SENDING without a
// reason, NOT_FOUND within WeChat's window, SENT awaiting the claim, an
// item that needs attention).
func ValidReconcile(from, to State) bool {
	if from == to {
		return from.Valid() && !from.Final()
	}
	return ValidTransition(from, to)
}

// MinRetryGap is the least time between two sends of one billno: WeChat's
// minimum between tries of the same mch_billno. Acquire enforces it.
const MinRetryGap = time.Second

// Errors of a Store. Any other error means the ledger is unavailable
// (throttled, unreachable, access denied, no such table): nothing may be
// sent on it.
var (
	// ErrNotFound: no item has the key.
	ErrNotFound = errors.New("ledger: no such item")
	// ErrExists: Create found an item with the key.
	ErrExists = errors.New("ledger: item exists")
	// ErrPrecondition: a conditional write's condition did not hold. The
	// caller reads the item again and decides.
	ErrPrecondition = errors.New("ledger: condition not met")
)

// Key identifies an item: the merchant and the billno.
type Key struct {
	MchID, MchBillno string
}

// String returns "mch_id/mch_billno", for errors and logs.
func (k Key) String() string { return k.MchID + "/" + k.MchBillno }

// Item is the ledger's record of one red packet. Zero values of the
// optional fields (empty strings, nil maps, zero times) are not stored.
type Item struct {
	MchID, MchBillno string

	// API is WeChat's API: "sendredpack", "sendminiprogramhb" or
	// "sendgroupredpack".
	API string
	// Fields are the request's fields exactly as signed, without
	// nonce_str and sign.
	Fields map[string]string
	// Hash is Hash(API, Fields); Create sets it.
	Hash string

	State State
	// Attempts counts the sends started for this billno (each may be
	// several HTTP tries); Settled counts those whose outcome was stored.
	// A planned item has 0 of each: nothing was sent.
	Attempts, Settled int

	// RecordedAt is when the item was created, FirstTriedAt and
	// LastTriedAt when its first and latest sends started (zero for a
	// planned item, until its first Acquire), UpdatedAt its latest write.
	RecordedAt, FirstTriedAt, LastTriedAt, UpdatedAt time.Time

	// LeaseOwner is the invocation holding the item for a send in flight,
	// until LeaseUntil. An ended lease is free; Settle removes it.
	LeaseOwner string
	LeaseUntil time.Time

	// SendListID, ErrCode and ErrCodeDes are from WeChat's last answer.
	SendListID, ErrCode, ErrCodeDes string
	// Package and JSAPI (sendminiprogramhb) are WeChat's package and the
	// wx.sendBizRedPacket parameters, to replay the answer.
	Package string
	JSAPI   map[string]string

	// Status is the last status gethbinfo reported (SENDING, SENT,
	// FAILED, RECEIVED, RFUND_ING, REFUND), or NOT_FOUND when the
	// reconciler found no record at WeChat.
	Status string
	// Reason is gethbinfo's reason, why a red packet failed (or is held).
	Reason string
	// RefundTime and RefundAmount (fen) are gethbinfo's refund_time and
	// refund_amount, of a red packet refunded unclaimed.
	RefundTime   string
	RefundAmount int64

	// NextCheckAt is when the reconciler reads the item's record at
	// WeChat next (Store.Due); zero when it is not checked again: a final
	// item, or one that needs attention past WeChat's query window.
	// Create, Acquire, Settle and Observe set it as FirstCheck says;
	// Reconcile sets it as the reconciler's schedule says.
	NextCheckAt time.Time
	// CheckedAt is when the reconciler last read the item's record at
	// WeChat (Store.Reconcile).
	CheckedAt time.Time

	// Source is where the request came from: apigw-rest, apigw-http, sqs,
	// direct, campaign or reconcile.
	Source string
	// Caller is the caller's IAM identity (ARN) behind API Gateway.
	Caller string
	// CampaignID is the campaign the red packet belongs to, if any.
	CampaignID string
	// CampaignRow is the row (1-based) of the campaign's file the item
	// was planned from, for Store.CampaignRows; 0 when none. It is set
	// only with CampaignID.
	CampaignRow int
}

// Key returns the item's key.
func (it *Item) Key() Key { return Key{it.MchID, it.MchBillno} }

// LeaseFree reports whether no send holds the item's lease at now: it has
// none, or its LeaseUntil is before now (to the millisecond, as the stores
// compare).
func (it *Item) LeaseFree(now time.Time) bool {
	return it.LeaseUntil.IsZero() || it.LeaseUntil.Before(ms(now))
}

// EarlierUnknown reports whether a send before the one Create or Acquire
// just started never had its outcome stored: its invocation died, or its
// Settle failed. Its outcome is unknown; see AfterSend.
func (it *Item) EarlierUnknown() bool { return it.Attempts-1 > it.Settled }

// Hash returns the hex SHA-256 of a request: its API and its fields in
// sorted order, each string preceded by its length, so that no two
// different requests encode alike.
func Hash(api string, fields map[string]string) string {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(api)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		write(k)
		write(fields[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Store is the ledger. Its implementations are safe for concurrent use.
// There is no way to delete an item.
type Store interface {
	// Get reads an item, strongly consistent. ErrNotFound when absent.
	Get(ctx context.Context, k Key) (*Item, error)

	// Create writes a new item. With a lease (LeaseOwner and LeaseUntil)
	// it is the item's first send: Create sets the item's Hash, State
	// Recorded, Attempts 1, Settled 0, FirstTriedAt, LastTriedAt and
	// UpdatedAt to RecordedAt (the caller's now), and NextCheckAt after
	// the lease. Without one (both zero) it writes a planned item, sent
	// later with Acquire: Hash, State Recorded, Attempts 0, Settled 0, no
	// FirstTriedAt or LastTriedAt, UpdatedAt RecordedAt, and no
	// NextCheckAt, so that it is never Due: it was never sent, and
	// WeChat has nothing to reconcile. The caller sets the key, API,
	// Fields, RecordedAt, the lease (or neither half) and the optional
	// fields; CampaignRow only with CampaignID.
	// Condition: no item has the key; ErrExists otherwise.
	Create(ctx context.Context, it *Item) error

	// Acquire takes an existing item's lease for another send (or a
	// planned item's first): Attempts+1, LastTriedAt and UpdatedAt set to
	// l.Now, FirstTriedAt too when it has none, the lease set. It returns
	// the updated item.
	// Conditions: the item exists; its Hash is l.Hash; its state is
	// Resendable; its lease is free (none, or LeaseUntil before l.Now);
	// its LastTriedAt, if any, is at least MinRetryGap before l.Now.
	// ErrPrecondition otherwise: the caller reads the item to see why.
	Acquire(ctx context.Context, k Key, l Lease) (*Item, error)

	// Settle stores a send's outcome and frees the lease: State,
	// SendListID, ErrCode, ErrCodeDes, Package and JSAPI are replaced by
	// s's (empty ones removed), UpdatedAt set to s.Now, Settled+1.
	// Condition: the lease is s.Owner's (no one took it since, and it
	// was not settled already); ErrPrecondition otherwise.
	Settle(ctx context.Context, k Key, s Settlement) error

	// Observe stores a status gethbinfo reported (unless empty) and
	// UpdatedAt, and when o.To is set moves the state from o.From to
	// o.To, freeing an ended lease so that a late Settle cannot undo the
	// move, and sets NextCheckAt to FirstCheck(o.To, o.Now).
	// Conditions: the item exists; with o.To, its state is o.From, the
	// move is a ValidTransition and no send holds the lease (none, or
	// LeaseUntil before o.Now). ErrPrecondition otherwise.
	Observe(ctx context.Context, k Key, o Observation) error

	// Due returns up to limit items of merchant mchID whose NextCheckAt
	// is at or before now, earliest first: the reconciler's work. Items
	// without a next check (final ones) are never returned. The items
	// may lag the latest writes by a moment (DynamoDB reads them from an
	// index); every write the reconciler makes is conditional on what it
	// read, so a stale item only loses its write.
	Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*Item, error)

	// Reconcile stores what the reconciler found at WeChat and decided:
	// State r.To (r.From to keep it), the status, reason and refund read
	// (empty ones leave the stored ones), NextCheckAt r.NextCheckAt (zero
	// removes the item from Due), CheckedAt and UpdatedAt r.Now. A move
	// to another state frees an ended lease, as Observe's moves do.
	// Conditions: the item exists; its state is r.From and its
	// NextCheckAt is r.ReadNextCheckAt (both as the caller read them, so
	// that of two reconcilers that read the same item only one writes);
	// ValidReconcile(r.From, r.To); no send holds the lease (none, or
	// LeaseUntil before r.Now). ErrPrecondition otherwise.
	Reconcile(ctx context.Context, k Key, r Reconciliation) error

	// CampaignRows returns up to limit items of campaign campaignID whose
	// CampaignRow is greater than after, by ascending CampaignRow: a
	// campaign's planned items, a page at a time (after is the last row
	// of the page before; 0 for the first). Items without a CampaignRow
	// are never returned. Like Due, the result may lag the latest writes
	// (DynamoDB reads it from an index): an item just created may be
	// missing, leaving a gap in the row numbers, until the index catches
	// up; Get, strongly consistent, tells whether a row's item exists.
	CampaignRows(ctx context.Context, campaignID string, after, limit int) ([]*Item, error)
}

// Lease is a request to take an item's lease for another send (Store.Acquire).
type Lease struct {
	Hash  string    // Hash(API, Fields) of the request to send
	Owner string    // the invocation that will send
	Until time.Time // when the lease ends, at the latest
	Now   time.Time
}

// Settlement is a send's outcome (Store.Settle).
type Settlement struct {
	Owner string // the lease's owner
	State State  // AfterSend's state: Sent, Failed, Unknown or NeedsAttention

	SendListID, ErrCode, ErrCodeDes string
	Package                         string
	JSAPI                           map[string]string

	Now time.Time
}

// Observation is what gethbinfo reported for an item (Store.Observe).
type Observation struct {
	Status string // gethbinfo's status; empty leaves the stored one
	// From and To move the state when To is set: From is the state the
	// caller read, To the state it moves to.
	From, To State
	Now      time.Time
}

// Checks shared by the stores, made before any I/O: a request that fails
// them is a bug in the caller, reported as a plain error.

func checkKey(op string, k Key) error {
	if k.MchID == "" || k.MchBillno == "" {
		return fmt.Errorf("ledger: %s: empty mch_id or mch_billno", op)
	}
	return nil
}

// prepareCreate sets the fields Create sets and checks the rest.
func prepareCreate(it *Item) error {
	if err := checkKey("create", it.Key()); err != nil {
		return err
	}
	if it.API == "" || it.RecordedAt.IsZero() {
		return fmt.Errorf("ledger: create %s: api and recorded_at are required", it.Key())
	}
	// Half a lease is a caller's bug: a send without an owner or an end
	// could neither settle nor be taken over.
	if (it.LeaseOwner == "") != it.LeaseUntil.IsZero() {
		return fmt.Errorf("ledger: create %s: lease_owner and lease_until go together", it.Key())
	}
	if it.CampaignRow < 0 || (it.CampaignRow > 0 && it.CampaignID == "") {
		return fmt.Errorf("ledger: create %s: campaign_row must be positive, and set only with campaign_id", it.Key())
	}
	it.Hash = Hash(it.API, it.Fields)
	it.State = Recorded
	it.Settled = 0
	it.RecordedAt = ms(it.RecordedAt)
	it.UpdatedAt = it.RecordedAt
	if it.LeaseOwner == "" {
		// Planned: nothing sent, so no tries and nothing for the
		// reconciler to check until a send's Acquire.
		it.Attempts = 0
		it.FirstTriedAt, it.LastTriedAt, it.NextCheckAt = time.Time{}, time.Time{}, time.Time{}
		return nil
	}
	it.Attempts = 1
	it.LeaseUntil = ms(it.LeaseUntil)
	it.FirstTriedAt, it.LastTriedAt = it.RecordedAt, it.RecordedAt
	it.NextCheckAt = checkAfterLease(it.LeaseUntil)
	return nil
}

// checkCampaignRows checks CampaignRows' arguments.
func checkCampaignRows(campaignID string, limit int) error {
	if campaignID == "" || limit <= 0 {
		return fmt.Errorf("ledger: campaign rows: campaign_id and a positive limit are required")
	}
	return nil
}

func checkLease(k Key, l Lease) error {
	if err := checkKey("acquire", k); err != nil {
		return err
	}
	if l.Hash == "" || l.Owner == "" || l.Until.IsZero() || l.Now.IsZero() {
		return fmt.Errorf("ledger: acquire %s: hash, owner, until and now are required", k)
	}
	return nil
}

func checkSettlement(k Key, s Settlement) error {
	if err := checkKey("settle", k); err != nil {
		return err
	}
	switch s.State {
	case Sent, Failed, Unknown, NeedsAttention:
	default:
		return fmt.Errorf("ledger: settle %s: state %q is not a send's outcome", k, s.State)
	}
	if s.Owner == "" || s.Now.IsZero() {
		return fmt.Errorf("ledger: settle %s: owner and now are required", k)
	}
	return nil
}

// checkObservation returns ErrPrecondition for a move ValidTransition
// does not allow, as a store would for a state that is not o.From.
func checkObservation(k Key, o Observation) error {
	if err := checkKey("observe", k); err != nil {
		return err
	}
	if o.Now.IsZero() {
		return fmt.Errorf("ledger: observe %s: now is required", k)
	}
	if o.To != "" && !ValidTransition(o.From, o.To) {
		return fmt.Errorf("ledger: observe %s: %s to %s: %w", k, o.From, o.To, ErrPrecondition)
	}
	return nil
}

// ms is t as the stores keep it: UTC, to the millisecond.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}
