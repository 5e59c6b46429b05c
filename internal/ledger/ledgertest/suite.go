package ledgertest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// base is the suite's clock: every time is base plus an offset, no test
// sleeps. Its nanoseconds and zone check that stores keep times to the
// millisecond, in UTC.
var base = time.Date(2026, 11, 23, 18, 0, 0, 123_456_789, time.FixedZone("CST", 8*60*60))

func at(d time.Duration) time.Time { return base.Add(d) }

// msUTC is t as a store returns it.
func msUTC(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// The first send's lease, taken by Create.
const (
	mchID    = "1900000109"
	owner1   = "invocation-1"
	leaseTTL = 30 * time.Second
)

// Run runs the contract test suite on stores newStore returns: each
// subtest calls it once, for an empty store of its own. Subtests run in
// parallel.
func Run(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, func(*testing.T) ledger.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExists", testCreateExists},
		{"GetAbsent", testGetAbsent},
		{"Acquire", testAcquire},
		{"Settle", testSettle},
		{"Observe", testObserve},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentAcquire", testConcurrentAcquire},
		{"NextCheck", testNextCheck},
		{"Due", testDue},
		{"Reconcile", testReconcile},
		{"ConcurrentReconcile", testConcurrentReconcile},
		{"NeverDeletes", testNeverDeletes},
		{"Planned", testPlanned},
		{"CampaignRows", testCampaignRows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newStore)
		})
	}
}

func testCreateGet(t *testing.T, newStore func(*testing.T) ledger.Store) {
	for _, tc := range []struct {
		name string
		item func() *ledger.Item
	}{
		{"every field", func() *ledger.Item {
			it := newItem("EVERY0001")
			it.API = "sendminiprogramhb"
			it.SendListID = "1000041701201411243038183950000"
			it.ErrCode, it.ErrCodeDes = "SUCCESS", "发放成功"
			it.Package = "sendid=242e8abd163d300019b2cae74ba8e8c06e3f0e51ab84d16b3c80decd22a5b672&ver=8&sign=4110d6eba09f8c4f6f5c5e72d8d5b1bd"
			it.JSAPI = map[string]string{"timeStamp": "1478858888", "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "package": "sendid%3D242e8abd", "signType": "MD5", "paySign": "C380BEC2BFD727A4B6845133519F3AD6"}
			it.Status = "SENDING"
			it.CampaignID, it.CampaignRow = "spring-2026", 7
			it.Source, it.Caller = "campaign", ""
			return it
		}},
		{"required fields only", func() *ledger.Item {
			return &ledger.Item{MchID: mchID, MchBillno: "REQUIRED0001", API: "sendredpack", RecordedAt: at(0), LeaseOwner: owner1, LeaseUntil: at(leaseTTL)}
		}},
		{"empty maps", func() *ledger.Item {
			it := newItem("EMPTYMAPS0001")
			it.Fields, it.JSAPI = map[string]string{}, map[string]string{}
			return it
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			in := tc.item()
			want := created(in)
			if err := s.Create(t.Context(), in); err != nil {
				t.Fatalf("Create: %v", err)
			}
			// Create tells its caller what it stored.
			if in.Hash != want.Hash || in.State != ledger.Recorded || in.Attempts != 1 || in.Settled != 0 ||
				!in.FirstTriedAt.Equal(want.RecordedAt) || !in.LastTriedAt.Equal(want.RecordedAt) || !in.UpdatedAt.Equal(want.RecordedAt) {
				t.Errorf("Create left the item %+v", in)
			}
			if in.Fields != nil {
				in.Fields["total_amount"] = "99999" // the store keeps its own copy
			}
			got := get(t, s, in.MchBillno)
			same(t, "Get", got, want)
			if got.Fields != nil {
				got.Fields["total_amount"] = "88888" // and hands out copies
			}
			same(t, "Get again", get(t, s, in.MchBillno), want)
		})
	}
}

func testCreateExists(t *testing.T, newStore func(*testing.T) ledger.Store) {
	s := newStore(t)
	first := create(t, s, "EXISTS0001")

	second := newItem("EXISTS0001")
	second.Fields["total_amount"] = "200"
	second.LeaseOwner = "invocation-2"
	second.RecordedAt, second.LeaseUntil = at(2*time.Second), at(2*time.Second+leaseTTL)
	wantErr(t, "second Create", s.Create(t.Context(), second), ledger.ErrExists)
	unchanged(t, s, "EXISTS0001", first)

	// The key is the merchant and the billno: another merchant's billno is
	// another red packet.
	other := newItem("EXISTS0001")
	other.MchID = "1900000110"
	if err := s.Create(t.Context(), other); err != nil {
		t.Fatalf("Create for another merchant: %v", err)
	}
	unchanged(t, s, "EXISTS0001", first)
}

func testGetAbsent(t *testing.T, newStore func(*testing.T) ledger.Store) {
	s := newStore(t)
	create(t, s, "ABSENT0001")
	for _, k := range []ledger.Key{key("ABSENT0002"), {MchID: "1900000110", MchBillno: "ABSENT0001"}} {
		it, err := s.Get(t.Context(), k)
		wantErr(t, fmt.Sprintf("Get %s", k), err, ledger.ErrNotFound)
		if it != nil {
			t.Errorf("Get %s = %+v with ErrNotFound", k, it)
		}
	}
}

func testAcquire(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "ACQUIRE0001"
	refused := func(t *testing.T, s ledger.Store) {
		create(t, s, billno)
		settle(t, s, billno, ledger.Settlement{Owner: owner1, State: ledger.Failed, ErrCode: "NOTENOUGH", Now: at(500 * time.Millisecond)})
	}
	recorded := func(t *testing.T, s ledger.Store) { create(t, s, billno) }
	type testCase struct {
		name  string
		setup func(*testing.T, ledger.Store)
		lease func(*ledger.Lease)
		ok    bool
		// earlierUnknown is what the acquired item's EarlierUnknown says.
		earlierUnknown bool
	}
	cases := []testCase{
		{name: "after a refusal", setup: refused, ok: true},
		{name: "another request", setup: refused, lease: func(l *ledger.Lease) {
			it := newItem(billno)
			it.Fields["total_amount"] = "101"
			l.Hash = ledger.Hash(it.API, it.Fields)
		}},
		{name: "another API", setup: refused, lease: func(l *ledger.Lease) {
			l.Hash = ledger.Hash("sendminiprogramhb", newItem(billno).Fields)
		}},
		{name: "no such item", setup: func(*testing.T, ledger.Store) {}},
		{name: "lease held", setup: recorded, lease: func(l *ledger.Lease) { l.Now = at(5 * time.Second) }},
		{name: "lease ends now", setup: recorded, lease: func(l *ledger.Lease) { l.Now = at(leaseTTL) }},
		{name: "lease ended", setup: recorded, lease: func(l *ledger.Lease) { l.Now = at(leaseTTL + time.Millisecond) }, ok: true, earlierUnknown: true},
		{name: "999 ms after the last try", setup: refused, lease: func(l *ledger.Lease) { l.Now = at(999 * time.Millisecond) }},
		{name: "1 s after the last try", setup: refused, lease: func(l *ledger.Lease) { l.Now = at(time.Second) }, ok: true},
	}
	for _, st := range []ledger.State{ledger.Recorded, ledger.Sent, ledger.Failed, ledger.Unknown, ledger.Received, ledger.Refunded, ledger.Expired, ledger.NeedsAttention} {
		cases = append(cases, testCase{
			name:           "state " + string(st),
			setup:          func(t *testing.T, s ledger.Store) { toState(t, s, billno, st) },
			ok:             st.Resendable(),
			earlierUnknown: st == ledger.Recorded || st == ledger.Expired, // the first send never settled
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.setup(t, s)
			before, err := s.Get(t.Context(), key(billno))
			if err != nil && !errors.Is(err, ledger.ErrNotFound) {
				t.Fatal(err)
			}
			l := ledger.Lease{Hash: created(newItem(billno)).Hash, Owner: "invocation-2", Until: at(90 * time.Second), Now: at(60 * time.Second)}
			if tc.lease != nil {
				tc.lease(&l)
			}
			got, err := s.Acquire(t.Context(), key(billno), l)
			if !tc.ok {
				wantErr(t, "Acquire", err, ledger.ErrPrecondition)
				if got != nil {
					t.Errorf("Acquire = %+v with an error", got)
				}
				unchanged(t, s, billno, before)
				return
			}
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			want := *before
			want.Attempts++
			want.LastTriedAt, want.UpdatedAt = msUTC(l.Now), msUTC(l.Now)
			want.LeaseOwner, want.LeaseUntil = l.Owner, msUTC(l.Until)
			want.NextCheckAt = msUTC(l.Until.Add(ledger.CheckAfterLease))
			same(t, "Acquire", got, &want)
			same(t, "Get after Acquire", get(t, s, billno), &want)
			if got.EarlierUnknown() != tc.earlierUnknown {
				t.Errorf("EarlierUnknown = %v (attempts %d, settled %d), want %v", got.EarlierUnknown(), got.Attempts, got.Settled, tc.earlierUnknown)
			}
		})
	}
}

func testSettle(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "SETTLE0001"
	sent := ledger.Settlement{
		Owner:      owner1,
		State:      ledger.Sent,
		SendListID: "1000041701201411243038183950000",
		Package:    "sendid=242e8abd&ver=8",
		JSAPI:      map[string]string{"timeStamp": "1478858888", "paySign": "C380BEC2BFD727A4B6845133519F3AD6"},
		Now:        at(1500 * time.Millisecond),
	}

	t.Run("stores the answer and frees the lease", func(t *testing.T) {
		s := newStore(t)
		want := create(t, s, billno)
		settle(t, s, billno, sent)
		want.State, want.SendListID, want.Package, want.JSAPI = ledger.Sent, sent.SendListID, sent.Package, sent.JSAPI
		want.Settled, want.UpdatedAt = 1, msUTC(sent.Now)
		want.LeaseOwner, want.LeaseUntil = "", time.Time{}
		want.NextCheckAt = msUTC(sent.Now.Add(ledger.CheckAfterSent))
		got := get(t, s, billno)
		same(t, "after Settle", got, want)
		if !got.LeaseFree(at(1500 * time.Millisecond)) {
			t.Errorf("lease not free after Settle")
		}
	})

	t.Run("wrong owner", func(t *testing.T) {
		s := newStore(t)
		before := create(t, s, billno)
		st := sent
		st.Owner = "invocation-2"
		wantErr(t, "Settle", s.Settle(t.Context(), key(billno), st), ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
	})

	t.Run("twice", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		settle(t, s, billno, sent)
		before := get(t, s, billno)
		st := sent
		st.State, st.Now = ledger.Unknown, at(2*time.Second)
		wantErr(t, "second Settle", s.Settle(t.Context(), key(billno), st), ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
	})

	t.Run("lease taken since", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		// The first send outlives its lease; a second send takes it.
		l := ledger.Lease{Hash: created(newItem(billno)).Hash, Owner: "invocation-2", Until: at(2 * leaseTTL), Now: at(leaseTTL + time.Second)}
		if _, err := s.Acquire(t.Context(), key(billno), l); err != nil {
			t.Fatal(err)
		}
		before := get(t, s, billno)
		late := sent
		late.Now = at(leaseTTL + 2*time.Second)
		wantErr(t, "late Settle", s.Settle(t.Context(), key(billno), late), ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
		late.Owner = "invocation-2"
		settle(t, s, billno, late)
	})

	t.Run("replaces the last answer", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		settle(t, s, billno, ledger.Settlement{Owner: owner1, State: ledger.Unknown, ErrCode: "SYSTEMERROR", ErrCodeDes: "系统繁忙,请稍后再试.", Now: at(time.Second)})
		l := ledger.Lease{Hash: created(newItem(billno)).Hash, Owner: "invocation-2", Until: at(90 * time.Second), Now: at(60 * time.Second)}
		if _, err := s.Acquire(t.Context(), key(billno), l); err != nil {
			t.Fatal(err)
		}
		st := sent
		st.Owner, st.Now = "invocation-2", at(61*time.Second)
		settle(t, s, billno, st)
		got := get(t, s, billno)
		if got.State != ledger.Sent || got.ErrCode != "" || got.ErrCodeDes != "" || got.SendListID != sent.SendListID ||
			got.Attempts != 2 || got.Settled != 2 || !got.UpdatedAt.Equal(msUTC(st.Now)) {
			t.Errorf("after the second Settle: %+v", got)
		}
	})

	t.Run("no such item", func(t *testing.T) {
		s := newStore(t)
		wantErr(t, "Settle", s.Settle(t.Context(), key(billno), sent), ledger.ErrPrecondition)
		unchanged(t, s, billno, nil)
	})

	t.Run("not a send's state", func(t *testing.T) {
		s := newStore(t)
		before := create(t, s, billno)
		for _, st := range []ledger.State{ledger.Recorded, ledger.Received, ledger.Refunded, ledger.Expired, ""} {
			bad := sent
			bad.State = st
			err := s.Settle(t.Context(), key(billno), bad)
			if err == nil || errors.Is(err, ledger.ErrPrecondition) || errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrExists) {
				t.Errorf("Settle %q = %v, want a plain error", st, err)
			}
		}
		unchanged(t, s, billno, before)
	})
}

func testObserve(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "OBSERVE0001"

	t.Run("status only, lease held", func(t *testing.T) {
		s := newStore(t)
		want := create(t, s, billno)
		observe(t, s, billno, ledger.Observation{Status: "SENDING", Now: at(time.Second)})
		want.Status, want.UpdatedAt = "SENDING", msUTC(at(time.Second))
		same(t, "after Observe", get(t, s, billno), want)
		// An empty status keeps the last one read.
		observe(t, s, billno, ledger.Observation{Now: at(2 * time.Second)})
		want.UpdatedAt = msUTC(at(2 * time.Second))
		same(t, "after Observe without a status", get(t, s, billno), want)
	})

	t.Run("move", func(t *testing.T) {
		s := newStore(t)
		toState(t, s, billno, ledger.Sent)
		want := get(t, s, billno)
		observe(t, s, billno, ledger.Observation{Status: "RECEIVED", From: ledger.Sent, To: ledger.Received, Now: at(time.Hour)})
		want.State, want.Status, want.UpdatedAt = ledger.Received, "RECEIVED", msUTC(at(time.Hour))
		want.NextCheckAt = time.Time{} // final: out of Due
		same(t, "after Observe", get(t, s, billno), want)
	})

	for _, tc := range []struct {
		name     string
		state    ledger.State
		from, to ledger.State
		now      time.Duration
	}{
		{"wrong expected state", ledger.Sent, ledger.Unknown, ledger.Sent, time.Hour},
		{"not a valid transition", ledger.Sent, ledger.Sent, ledger.Failed, time.Hour},
		{"nothing leaves received", ledger.Received, ledger.Received, ledger.Sent, time.Hour},
		{"nothing leaves failed", ledger.Failed, ledger.Failed, ledger.Sent, time.Hour},
		{"lease held", ledger.Recorded, ledger.Recorded, ledger.Sent, 5 * time.Second},
		{"lease ends now", ledger.Recorded, ledger.Recorded, ledger.Sent, leaseTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			toState(t, s, billno, tc.state)
			before := get(t, s, billno)
			o := ledger.Observation{Status: "SENT", From: tc.from, To: tc.to, Now: at(tc.now)}
			wantErr(t, "Observe", s.Observe(t.Context(), key(billno), o), ledger.ErrPrecondition)
			unchanged(t, s, billno, before)
		})
	}

	t.Run("late settle after a move", func(t *testing.T) {
		s := newStore(t)
		create(t, s, billno)
		observe(t, s, billno, ledger.Observation{Status: "SENT", From: ledger.Recorded, To: ledger.Sent, Now: at(leaseTTL + time.Second)})
		before := get(t, s, billno)
		if before.LeaseOwner != "" || !before.LeaseUntil.IsZero() {
			t.Errorf("the ended lease was kept by the move: %q until %v", before.LeaseOwner, before.LeaseUntil)
		}
		late := ledger.Settlement{Owner: owner1, State: ledger.Unknown, ErrCode: "SYSTEMERROR", Now: at(leaseTTL + 2*time.Second)}
		wantErr(t, "late Settle", s.Settle(t.Context(), key(billno), late), ledger.ErrPrecondition)
		unchanged(t, s, billno, before)
	})

	t.Run("no such item", func(t *testing.T) {
		s := newStore(t)
		for _, o := range []ledger.Observation{
			{Status: "SENT", Now: at(time.Hour)},
			{Status: "SENT", From: ledger.Unknown, To: ledger.Sent, Now: at(time.Hour)},
		} {
			wantErr(t, "Observe", s.Observe(t.Context(), key(billno), o), ledger.ErrPrecondition)
			unchanged(t, s, billno, nil)
		}
	})
}

func testConcurrentCreate(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "RACECREATE0001"
	s := newStore(t)
	errs := race(func(i int) error {
		it := newItem(billno)
		it.LeaseOwner = fmt.Sprintf("invocation-%d", i)
		return s.Create(t.Context(), it)
	})
	won := winner(t, errs, ledger.ErrExists)
	if got := get(t, s, billno); got.LeaseOwner != fmt.Sprintf("invocation-%d", won) || got.Attempts != 1 {
		t.Errorf("stored %q with %d attempts, want invocation-%d's with 1", got.LeaseOwner, got.Attempts, won)
	}
}

func testConcurrentAcquire(t *testing.T, newStore func(*testing.T) ledger.Store) {
	const billno = "RACEACQUIRE0001"
	s := newStore(t)
	toState(t, s, billno, ledger.Unknown)
	hash := created(newItem(billno)).Hash
	items := make([]*ledger.Item, concurrency)
	errs := race(func(i int) error {
		var err error
		items[i], err = s.Acquire(t.Context(), key(billno), ledger.Lease{
			Hash: hash, Owner: fmt.Sprintf("invocation-%d", i), Until: at(90 * time.Second), Now: at(60 * time.Second),
		})
		return err
	})
	won := winner(t, errs, ledger.ErrPrecondition)
	same(t, "Get after the race", get(t, s, billno), items[won])
	if items[won].Attempts != 2 {
		t.Errorf("attempts %d after one Acquire, want 2", items[won].Attempts)
	}
}

func testNeverDeletes(t *testing.T, newStore func(*testing.T) ledger.Store) {
	s := newStore(t)
	// No method of a store removes an item.
	typ := reflect.TypeOf(s)
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		for _, bad := range []string{"Delete", "Remove", "Expire", "Purge"} {
			if strings.Contains(name, bad) {
				t.Errorf("%v has a method %s", typ, name)
			}
		}
	}
	// Every state, final ones included, stays readable; every write above
	// kept the item.
	states := []ledger.State{ledger.Recorded, ledger.Sent, ledger.Failed, ledger.Unknown, ledger.Received, ledger.Refunded, ledger.Expired, ledger.NeedsAttention}
	for i, st := range states {
		toState(t, s, fmt.Sprintf("KEEP%04d", i), st)
	}
	for i, st := range states {
		if got := get(t, s, fmt.Sprintf("KEEP%04d", i)); got.State != st || !got.RecordedAt.Equal(msUTC(base)) {
			t.Errorf("item %d: state %s recorded %v, want %s recorded %v", i, got.State, got.RecordedAt, st, msUTC(base))
		}
	}
}
