package credstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

func TestClientConcurrentFirstUseFetchesOnce(t *testing.T) {
	m := newMerchant(t, testMchID, certOpts{})
	fake := newFakeSM(m.pemSecret())
	fake.delay = 50 * time.Millisecond
	s, _ := newTestStore(t, fake, newClock(testNow))

	const n = 50
	clients := make([]*wxpay.Client, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			clients[i], errs[i] = s.Client(context.Background())
		}()
	}
	start.Done()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if clients[i] != clients[0] {
			t.Fatalf("caller %d got another client", i)
		}
	}
	if got := fake.count(); got != 1 {
		t.Errorf("GetSecretValue calls = %d, want 1", got)
	}
	if got := s.Fetches(); got != 1 {
		t.Errorf("Fetches() = %d, want 1", got)
	}
	if fake.inputs[0] != "wxpay/merchant" {
		t.Errorf("SecretId = %q", fake.inputs[0])
	}
}

func TestWarmCallsDoNotFetch(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	clk := newClock(testNow)
	s, _ := newTestStore(t, fake, clk)
	first, err := s.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		clk.Add(200 * time.Millisecond) // 200 s in all: inside the TTL
		c, err := s.Client(context.Background())
		if err != nil || c != first {
			t.Fatalf("warm Client = %p, %v; want %p", c, err, first)
		}
	}
	if got := s.Fetches(); got != 1 {
		t.Errorf("Fetches() = %d, want 1", got)
	}
}

func TestTTLRefresh(t *testing.T) {
	m1 := newMerchant(t, testMchID, certOpts{})
	m2 := newMerchant(t, testMchID, certOpts{})
	fake := newFakeSM(m1.pemSecret())
	clk := newClock(testNow)
	s, logs := newTestStore(t, fake, clk)
	ctx := context.Background()

	c1, _ := s.Client(ctx)
	clk.Add(DefaultTTL - time.Second)
	if c, _ := s.Client(ctx); c != c1 || s.Fetches() != 1 {
		t.Fatalf("before the TTL: client %p (want %p), %d fetches", c, c1, s.Fetches())
	}

	// After the TTL, an unchanged secret keeps the same client.
	clk.Add(2 * time.Second)
	if c, _ := s.Client(ctx); c != c1 || s.Fetches() != 2 {
		t.Fatalf("after the TTL, unchanged: client %p (want %p), %d fetches (want 2)", c, c1, s.Fetches())
	}
	if c, _ := s.Client(ctx); c != c1 || s.Fetches() != 2 {
		t.Fatalf("refreshed: client %p, %d fetches (want 2)", c, s.Fetches())
	}

	// A rotated secret gives a new client after the next TTL.
	fake.set(m2.pemSecret())
	clk.Add(time.Minute)
	if c, _ := s.Client(ctx); c != c1 {
		t.Fatal("rotated before the TTL passed")
	}
	clk.Add(DefaultTTL)
	c2, err := s.Client(ctx)
	if err != nil || c2 == c1 || s.Fetches() != 3 {
		t.Fatalf("after rotation: client %p (old %p), %v, %d fetches (want 3)", c2, c1, err, s.Fetches())
	}
	if !strings.Contains(logs.String(), "credentials rotated") {
		t.Errorf("no rotation logged:\n%s", logs)
	}
}

func TestTTLConfigurable(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	clk := newClock(testNow)
	s := New(Config{SecretID: "x", TTL: 30 * time.Second, SecretsManager: fake, NewClient: offlineClient, Now: clk.Now, Logger: discard()})
	_, _ = s.Client(context.Background())
	clk.Add(31 * time.Second)
	_, _ = s.Client(context.Background())
	if s.Fetches() != 2 {
		t.Errorf("Fetches() = %d, want 2 after a 30 s TTL", s.Fetches())
	}
}

func TestRefreshFailureKeepsLastGood(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	clk := newClock(testNow)
	s, logs := newTestStore(t, fake, clk)
	ctx := context.Background()
	c1, err := s.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}

	fake.fail(apiErr("ThrottlingException"), apiErr("AccessDeniedException"))
	clk.Add(DefaultTTL + time.Second)
	c, err := s.Client(ctx)
	if err != nil || c != c1 {
		t.Fatalf("Client after a failed refresh = %p, %v; want the last good %p", c, err, c1)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "ThrottlingException") || !strings.Contains(out, "retry_in=30s") {
		t.Errorf("no warning logged:\n%s", out)
	}

	// Not retried on every call...
	for range 10 {
		clk.Add(time.Second)
		if c, err := s.Client(ctx); err != nil || c != c1 {
			t.Fatalf("Client = %p, %v", c, err)
		}
	}
	if s.Fetches() != 2 {
		t.Fatalf("Fetches() = %d, want 2: a failed refresh is retried after RetryAfter", s.Fetches())
	}
	// ...but after RetryAfter; a second failure keeps serving too.
	clk.Add(DefaultRetryAfter)
	if c, err := s.Client(ctx); err != nil || c != c1 || s.Fetches() != 3 {
		t.Fatalf("Client = %p, %v, %d fetches; want the last good and 3", c, err, s.Fetches())
	}
	if !strings.Contains(logs.String(), "AccessDeniedException") {
		t.Errorf("second failure not logged:\n%s", logs)
	}
	clk.Add(DefaultRetryAfter + time.Second)
	if c, err := s.Client(ctx); err != nil || c != c1 || s.Fetches() != 4 {
		t.Fatalf("after recovery: %p, %v, %d fetches", c, err, s.Fetches())
	}
}

func TestFirstFetchFailureIsConfigErrorThenRecovers(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	fake.fail(apiErr("ResourceNotFoundException"))
	s, _ := newTestStore(t, fake, newClock(testNow))
	_, err := s.Client(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "secret" || !strings.Contains(ce.Reason, "ResourceNotFoundException") || ce.Temporary() {
		t.Fatalf("Client = %v, want a permanent ConfigError on secret", err)
	}
	// With nothing to serve, the next call tries again.
	if _, err := s.Client(context.Background()); err != nil {
		t.Fatalf("second Client: %v", err)
	}
}

func TestIdenticalSecretKeepsClient(t *testing.T) {
	secret := newMerchant(t, testMchID, certOpts{}).pemSecret()
	fake := newFakeSM(secret)
	clk := newClock(testNow)
	var built int
	logger, _ := newLogger()
	s := New(Config{
		SecretID: "id", SecretsManager: fake, Now: clk.Now, Logger: logger,
		NewClient: func(c *wxpay.Credentials) (*wxpay.Client, error) {
			built++
			return offlineClient(c)
		},
	})
	c1, _ := s.Client(context.Background())
	for range 5 {
		fake.set(strings.Clone(secret)) // equal bytes, another string
		clk.Add(DefaultTTL + time.Second)
		if c, err := s.Client(context.Background()); err != nil || c != c1 {
			t.Fatalf("Client = %p, %v; want the same %p", c, err, c1)
		}
	}
	if s.Fetches() != 6 || built != 1 {
		t.Errorf("Fetches() = %d (want 6), clients built = %d (want 1)", s.Fetches(), built)
	}
}

func TestRefreshStaleDedupes(t *testing.T) {
	m1 := newMerchant(t, testMchID, certOpts{})
	m2 := newMerchant(t, testMchID, certOpts{})
	fake := newFakeSM(m1.pemSecret())
	clk := newClock(testNow)
	s, _ := newTestStore(t, fake, clk)
	ctx := context.Background()
	c1, _ := s.Client(ctx)

	fake.set(m2.pemSecret())
	fake.delay = 20 * time.Millisecond
	const n = 20
	got := make([]*wxpay.Client, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = s.Refresh(ctx, c1)
		}()
	}
	wg.Wait()
	c2 := got[0]
	if c2 == nil || c2 == c1 {
		t.Fatalf("Refresh returned %p (old %p)", c2, c1)
	}
	for i, c := range got {
		if c != c2 {
			t.Fatalf("caller %d got %p, want %p", i, c, c2)
		}
	}
	if s.Fetches() != 2 {
		t.Fatalf("Fetches() = %d, want 2: one forced refresh for %d callers", s.Fetches(), n)
	}
	// A late caller still holding c1 gets c2 without a fetch.
	if c, err := s.Refresh(ctx, c1); err != nil || c != c2 || s.Fetches() != 2 {
		t.Fatalf("late Refresh(c1) = %p, %v, %d fetches", c, err, s.Fetches())
	}
	if c, _ := s.Client(ctx); c != c2 {
		t.Fatal("Client does not return the refreshed client")
	}

	// A forced refresh that finds the secret unchanged keeps c2 and is
	// not repeated within RetryAfter.
	if c, err := s.Refresh(ctx, c2); err != nil || c != c2 || s.Fetches() != 3 {
		t.Fatalf("Refresh(c2), unchanged = %p, %v, %d fetches (want c2, 3)", c, err, s.Fetches())
	}
	if c, _ := s.Refresh(ctx, c2); c != c2 || s.Fetches() != 3 {
		t.Fatalf("repeated Refresh(c2) fetched again: %d fetches", s.Fetches())
	}
	clk.Add(DefaultRetryAfter + time.Second)
	if _, _ = s.Refresh(ctx, c2); s.Fetches() != 4 {
		t.Fatalf("Refresh after RetryAfter: %d fetches, want 4", s.Fetches())
	}
}

func TestRefreshFailureKeepsStale(t *testing.T) {
	m1 := newMerchant(t, testMchID, certOpts{})
	fake := newFakeSM(m1.pemSecret())
	s, logs := newTestStore(t, fake, newClock(testNow))
	ctx := context.Background()
	c1, _ := s.Client(ctx)
	fake.fail(apiErr("InternalServiceError"))
	c, err := s.Refresh(ctx, c1)
	if err != nil || c != c1 {
		t.Fatalf("Refresh with Secrets Manager failing = %p, %v; want the stale client and no error", c, err)
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning:\n%s", logs)
	}
}

// wxErr is WeChat refusing a call.
func wxErr(code string) error {
	return &wxpay.Error{API: "sendredpack", MchBillno: "B1", Outcome: wxpay.OutcomeFailed, Code: code, Message: "refused"}
}

func TestDoRetriesOnceOnCredentialErrors(t *testing.T) {
	for _, code := range []string{"CA_ERROR", "SIGN_ERROR"} {
		t.Run(code, func(t *testing.T) {
			m1 := newMerchant(t, testMchID, certOpts{})
			m2 := newMerchant(t, testMchID, certOpts{})
			fake := newFakeSM(m1.pemSecret())
			clk := newClock(testNow)
			var waits []time.Duration
			logger, logs := newLogger()
			s := New(Config{
				SecretID: "id", SecretsManager: fake, NewClient: offlineClient, Now: clk.Now, Logger: logger,
				Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
			})
			ctx := context.Background()
			c1, _ := s.Client(ctx)
			fake.set(m2.pemSecret())                                 // rotated; the store does not know yet
			fake.onCall = func() { clk.Add(300 * time.Millisecond) } // the refresh takes 300 ms

			var seen []*wxpay.Client
			res, err := Do(ctx, s, func(c *wxpay.Client) (string, error) {
				seen = append(seen, c)
				if c == c1 {
					return "", wxErr(code)
				}
				return "sent B1", nil
			})
			if err != nil || res != "sent B1" {
				t.Fatalf("Do = %q, %v", res, err)
			}
			if len(seen) != 2 || seen[0] != c1 || seen[1] == c1 {
				t.Fatalf("fn ran with %v, want the old client then a new one", seen)
			}
			if s.Fetches() != 2 {
				t.Errorf("Fetches() = %d, want 2", s.Fetches())
			}
			if want := wxpay.MinRetryInterval - 300*time.Millisecond; len(waits) != 1 || waits[0] != want {
				t.Errorf("waits = %v, want [%v]: the retry keeps WeChat's minimum interval after the refusal", waits, want)
			}
			if !strings.Contains(logs.String(), "retrying with rotated credentials") {
				t.Errorf("retry not logged:\n%s", logs)
			}
			// The next call uses the new client directly.
			_, _ = Do(ctx, s, func(c *wxpay.Client) (int, error) {
				if c != seen[1] {
					t.Error("the next call does not use the refreshed client")
				}
				return 0, nil
			})
		})
	}
}

func TestDoRetriesOnlyOnce(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	s, _ := newTestStore(t, fake, newClock(testNow))
	ctx := context.Background()
	_, _ = s.Client(ctx)
	runs := 0
	_, err := Do(ctx, s, func(c *wxpay.Client) (int, error) {
		runs++
		fake.set(newMerchant(t, testMchID, certOpts{}).pemSecret()) // always "rotated"
		return 0, wxErr("CA_ERROR")
	})
	var we *wxpay.Error
	if runs != 2 || !errors.As(err, &we) || we.Code != "CA_ERROR" {
		t.Fatalf("runs = %d, err = %v; want 2 runs and the CA_ERROR unchanged", runs, err)
	}
}

func TestDoDoesNotRetryOtherErrors(t *testing.T) {
	errs := []error{
		wxErr("NOTENOUGH"),
		wxErr("SYSTEMERROR"),
		&wxpay.Error{Code: wxpay.CodeTimeout, Outcome: wxpay.OutcomeUnknown},
		&wxpay.ValidationError{Field: "mch_billno"},
		errors.New("boom"),
		fmt.Errorf("wrapped: %w", context.DeadlineExceeded),
	}
	for _, want := range errs {
		t.Run(want.Error(), func(t *testing.T) {
			fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
			s, _ := newTestStore(t, fake, newClock(testNow))
			runs := 0
			v, err := Do(context.Background(), s, func(c *wxpay.Client) (int, error) {
				runs++
				return 7, want
			})
			if runs != 1 || err != want || v != 7 {
				t.Fatalf("runs %d, (%d, %v); want one run returning (7, %v) unchanged", runs, v, err, want)
			}
			if s.Fetches() != 1 {
				t.Errorf("Fetches() = %d: refreshed on a non-credential error", s.Fetches())
			}
		})
	}
}

func TestDoCredentialErrorWithUnchangedSecret(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	s, _ := newTestStore(t, fake, newClock(testNow))
	runs := 0
	_, err := Do(context.Background(), s, func(c *wxpay.Client) (int, error) {
		runs++
		return 0, wxErr("SIGN_ERROR")
	})
	var we *wxpay.Error
	if runs != 1 || !errors.As(err, &we) || we.Code != "SIGN_ERROR" {
		t.Fatalf("runs = %d, err = %v; want one run: the secret did not change, a retry cannot help", runs, err)
	}
	if s.Fetches() != 2 {
		t.Errorf("Fetches() = %d, want 2 (one forced refresh)", s.Fetches())
	}
}

func TestDoNoRetryWithoutTimeLeft(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	clk := newClock(time.Now())
	s, _ := newTestStore(t, fake, clk)
	_, _ = s.Client(context.Background())
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(800*time.Millisecond))
	defer cancel()
	runs := 0
	_, err := Do(ctx, s, func(c *wxpay.Client) (int, error) {
		runs++
		fake.set(newMerchant(t, testMchID, certOpts{}).pemSecret())
		return 0, wxErr("CA_ERROR")
	})
	if runs != 1 || !wxpay.IsCredentialError(err) {
		t.Fatalf("runs = %d, err = %v; the deadline leaves no room for a retry", runs, err)
	}
	if s.Fetches() != 2 {
		t.Errorf("Fetches() = %d, want 2: the refresh happens, only the retry is skipped", s.Fetches())
	}
}

func TestClientContextEndsWhileWaiting(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	fake.delay = 300 * time.Millisecond
	s, _ := newTestStore(t, fake, newClock(testNow))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Client(ctx)
	var ce *ConfigError
	if !errors.As(err, &ce) || !ce.Temporary() || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Client = %v, want a temporary ConfigError wrapping the deadline", err)
	}
	// The fetch went on for the others: the next caller gets its result.
	if _, err := s.Client(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Fetches() != 1 {
		t.Errorf("Fetches() = %d, want 1", s.Fetches())
	}
}

func TestStaleCallersDoNotWaitForTheRefresh(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	clk := newClock(testNow)
	s, _ := newTestStore(t, fake, clk)
	c1, _ := s.Client(context.Background())
	clk.Add(DefaultTTL + time.Second)
	// The refresh's GetSecretValue is held until the concurrent caller
	// has returned: a caller that waited for the refresh would never
	// return (rather than return a little late, which a loaded machine
	// makes indistinguishable from not waiting).
	release := make(chan struct{})
	fake.onCall = func() { <-release }
	done := make(chan struct{})
	go func() { defer close(done); _, _ = s.Client(context.Background()) }() // refreshes
	for s.Fetches() < 2 {
		time.Sleep(time.Millisecond)
	}
	type result struct {
		c   *wxpay.Client
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := s.Client(context.Background())
		got <- result{c, err}
	}()
	select {
	case r := <-got:
		if r.err != nil || r.c != c1 {
			t.Errorf("Client during the refresh = %p, %v; want the current client", r.c, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("a concurrent caller is still waiting for the refresh after 10 s")
	}
	close(release)
	<-done
}

func TestConfigErrorAPI(t *testing.T) {
	e := &ConfigError{Field: "secret", Reason: "ThrottlingException: slow down", Err: apiErr("ThrottlingException"), Transient: true}
	if e.Error() != "configuration error: secret: ThrottlingException: slow down" || e.Code() != "CONFIG_ERROR" ||
		!e.Temporary() || e.HTTPStatus() != 503 || !errors.Is(e, e.Err) {
		t.Errorf("ConfigError API: %q %q %v %d", e.Error(), e.Code(), e.Temporary(), e.HTTPStatus())
	}
	var handlerView interface {
		Code() string
		Temporary() bool
	} = e
	_ = handlerView
}

func TestNewWithoutSecretID(t *testing.T) {
	s := New(Config{SecretsManager: newFakeSM("{}"), Logger: discard()})
	_, err := s.Client(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "WXPAY_SECRET_ID" {
		t.Fatalf("Client = %v", err)
	}
	if _, err := s.Refresh(context.Background(), nil); !errors.As(err, &ce) {
		t.Fatalf("Refresh = %v", err)
	}
}

func TestNewClientFailure(t *testing.T) {
	fake := newFakeSM(newMerchant(t, testMchID, certOpts{}).pemSecret())
	s := New(Config{SecretID: "id", SecretsManager: fake, Logger: discard(),
		NewClient: func(c *wxpay.Credentials) (*wxpay.Client, error) {
			return wxpay.NewClient(wxpay.Config{Credentials: c, BaseURL: "http://insecure"})
		}})
	_, err := s.Client(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "wxpay" || !strings.Contains(ce.Reason, "https") {
		t.Fatalf("Client = %v", err)
	}
}

func TestSecretBinaryRefused(t *testing.T) {
	s := New(Config{SecretID: "id", Logger: discard(), SecretsManager: binarySM{}})
	_, err := s.Client(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "secret" || !strings.Contains(ce.Reason, "SecretBinary") {
		t.Fatalf("Client = %v", err)
	}
}

func BenchmarkClientWarm(b *testing.B) {
	fake := newFakeSM(newMerchant(b, testMchID, certOpts{}).pemSecret())
	s, _ := newTestStore(b, fake, newClock(testNow))
	if _, err := s.Client(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Client(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	if s.Fetches() != 1 {
		b.Fatalf("Fetches() = %d", s.Fetches())
	}
}

// TestDoNeverResendsAcrossMerchants: a rotated secret naming another mch_id
// makes the same billno another merchant's red packet; Do does not resend.
func TestDoNeverResendsAcrossMerchants(t *testing.T) {
	m1 := newMerchant(t, testMchID, certOpts{})
	m2 := newMerchant(t, "1900000110", certOpts{})
	fake := newFakeSM(m1.pemSecret())
	logger, logs := newLogger()
	s := New(Config{SecretID: "id", SecretsManager: fake, NewClient: offlineClient, Now: newClock(testNow).Now, Logger: logger,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	ctx := context.Background()
	if _, err := s.Client(ctx); err != nil {
		t.Fatal(err)
	}
	fake.set(m2.pemSecret())
	calls := 0
	_, err := Do(ctx, s, func(c *wxpay.Client) (string, error) {
		calls++
		return "", wxErr("CA_ERROR")
	})
	if calls != 1 || !wxpay.IsCredentialError(err) {
		t.Errorf("fn ran %d times, err %v: want one try and WeChat's refusal", calls, err)
	}
	if !strings.Contains(logs.String(), "another mch_id") {
		t.Errorf("not logged:\n%s", logs)
	}
}
