// Package credstore loads the merchant credentials from one AWS Secrets
// Manager secret, builds the WeChat Pay client from them once per
// execution environment, and keeps it: warm invocations make no Secrets
// Manager call and reuse the client's kept-alive TLS connection.
//
// The secret is fetched with GetSecretValue only (no DescribeSecret, so
// the function's role needs secretsmanager:GetSecretValue on the secret,
// plus kms:Decrypt for a customer-managed key). It is fetched again after
// Config.TTL, and at once when WeChat refuses the credentials (CA_ERROR,
// SIGN_ERROR: the secret was rotated); see Do. A refresh that fails keeps
// the last good credentials in service, logs a warning, and is tried again
// after Config.RetryAfter.
//
// Every problem is a *ConfigError naming the variable or secret field to
// fix; no error or log line carries a secret value.
package credstore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Defaults of Config.
const (
	DefaultTTL          = 5 * time.Minute
	DefaultRetryAfter   = 30 * time.Second
	DefaultFetchTimeout = 10 * time.Second
)

// expiryWarning is how long before the merchant certificate expires the
// store starts warning about it.
const expiryWarning = 30 * 24 * time.Hour

// GetSecretValueAPI is the one Secrets Manager call the store makes;
// *secretsmanager.Client implements it.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Config configures a Store.
type Config struct {
	// SecretID is the name or ARN of the secret (WXPAY_SECRET_ID).
	SecretID string
	// TTL is how long fetched credentials are used before the secret is
	// fetched again (DefaultTTL when <= 0).
	TTL time.Duration
	// SecretsManager is the client GetSecretValue is called on.
	SecretsManager GetSecretValueAPI
	// NewClient builds the WeChat Pay client from fresh credentials; the
	// caller fills base URLs and the like. Nil means wxpay.NewClient with
	// only the credentials set.
	NewClient func(*wxpay.Credentials) (*wxpay.Client, error)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives warnings (failed refreshes) and notices (loads,
	// rotations), never with secret values. slog.Default() when nil.
	Logger *slog.Logger

	// RetryAfter is how long the store waits after a failed refresh
	// before fetching again, serving the last good client meanwhile. It
	// also spaces forced refreshes (Refresh) that found the secret
	// unchanged. DefaultRetryAfter when <= 0.
	RetryAfter time.Duration
	// FetchTimeout bounds one fetch (GetSecretValue with the SDK's
	// retries, and building the client). DefaultFetchTimeout when <= 0.
	FetchTimeout time.Duration
	// Sleep waits before Do's retry; wxpay.Sleep when nil.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Store holds the WeChat Pay client built from the secret. It is safe for
// concurrent use; make one per execution environment (at init) and share
// it.
type Store struct {
	cfg     Config
	initErr *ConfigError
	fetches atomic.Int64

	mu          sync.Mutex
	cur         *entry    // the client in service, nil before the first good fetch
	nextRefresh time.Time // no TTL refresh before this
	quietUntil  time.Time // no forced refresh of an unchanged secret before this
	flight      *flight   // the fetch under way, if any
}

// entry is one client in service and what it was built from.
type entry struct {
	client *wxpay.Client
	creds  *wxpay.Credentials
	sum    [sha256.Size]byte // of the SecretString, to spot an unchanged secret
}

// flight is one fetch that any number of callers wait for.
type flight struct {
	done   chan struct{}
	client *wxpay.Client // the client in service after the fetch, if any
	err    *ConfigError  // why the fetch failed, if it did
}

// New returns a store; nothing is fetched until the first Client call.
// A Config without SecretID (or SecretsManager) gives a store whose every
// call returns a *ConfigError naming it.
func New(cfg Config) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Sleep == nil {
		cfg.Sleep = wxpay.Sleep
	}
	if cfg.NewClient == nil {
		cfg.NewClient = func(c *wxpay.Credentials) (*wxpay.Client, error) {
			return wxpay.NewClient(wxpay.Config{Credentials: c})
		}
	}
	s := &Store{cfg: cfg}
	switch {
	case cfg.SecretID == "":
		s.initErr = &ConfigError{Field: envSecretID, Reason: "not set: it must name the Secrets Manager secret holding the merchant credentials"}
	case cfg.SecretsManager == nil:
		s.initErr = &ConfigError{Field: "secretsmanager", Reason: "no Secrets Manager client configured"}
	}
	return s
}

// newBroken returns a store whose every call fails with err.
func newBroken(err *ConfigError, logger *slog.Logger) *Store {
	s := New(Config{Logger: logger})
	s.initErr = err
	logger.Error("wxpay: credentials unavailable", slog.Any("error", err))
	return s
}

// Fetches returns how many GetSecretValue calls the store has made.
func (s *Store) Fetches() int { return int(s.fetches.Load()) }

// SecretID returns the secret the store reads.
func (s *Store) SecretID() string { return s.cfg.SecretID }

// Client returns the WeChat Pay client built from the secret.
//
// The first call fetches the secret; concurrent first callers wait for
// that one fetch (each no longer than its ctx allows). Later calls return
// the same client without any I/O until the TTL passes; then the caller
// that notices waits for one refresh while concurrent callers keep using
// the current client. A refresh that fails keeps the current client,
// logs a warning and is retried after Config.RetryAfter, not on every
// call. A refresh that finds the secret unchanged keeps the same
// *wxpay.Client, and so its warm connections. Before the first good fetch
// there is nothing to serve, so each call finding no fetch under way
// tries again.
//
// The error, when there is no client to return, is a *ConfigError.
func (s *Store) Client(ctx context.Context) (*wxpay.Client, error) {
	if s.initErr != nil {
		return nil, s.initErr
	}
	s.mu.Lock()
	cur := s.cur
	if cur != nil && (s.flight != nil || s.cfg.Now().Before(s.nextRefresh)) {
		s.mu.Unlock()
		return cur.client, nil
	}
	f := s.startLocked(ctx, false)
	s.mu.Unlock()
	return s.wait(ctx, f)
}

// Refresh fetches the secret again at once, because WeChat refused the
// credentials of stale (CA_ERROR or SIGN_ERROR). When another caller has
// already replaced stale, it returns the current client without fetching.
// When a forced refresh found the secret unchanged less than
// Config.RetryAfter ago, it returns stale without fetching, so that a
// merchant whose key is wrong does not turn every call into a Secrets
// Manager call.
//
// A failed refresh keeps stale in service and logs a warning; Refresh
// then returns stale and no error. The error, when there is no client at
// all, is a *ConfigError.
func (s *Store) Refresh(ctx context.Context, stale *wxpay.Client) (*wxpay.Client, error) {
	if s.initErr != nil {
		return nil, s.initErr
	}
	s.mu.Lock()
	cur := s.cur
	if cur != nil && (cur.client != stale || (s.flight == nil && s.cfg.Now().Before(s.quietUntil))) {
		s.mu.Unlock()
		return cur.client, nil
	}
	f := s.startLocked(ctx, true)
	s.mu.Unlock()
	return s.wait(ctx, f)
}

// Do runs fn with the store's client. When fn's error is WeChat refusing
// the credentials (wxpay.IsCredentialError: CA_ERROR or SIGN_ERROR), Do
// refreshes the credentials and, if that brought new ones, runs fn once
// more with them, at least wxpay.MinRetryInterval after the refused try
// and only if ctx leaves time for it. fn must send the same request again
// (the same mch_billno): CA_ERROR and SIGN_ERROR are refusals, so no money
// moved.
//
// Do returns fn's last result and error unchanged (errors.As finds the
// *wxpay.Error), or a *ConfigError when there is no client.
func Do[T any](ctx context.Context, s *Store, fn func(*wxpay.Client) (T, error)) (T, error) {
	c, err := s.Client(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(c)
	if err == nil || !wxpay.IsCredentialError(err) {
		return v, err
	}
	refusedAt := s.cfg.Now()
	fresh, rerr := s.Refresh(ctx, c)
	if rerr != nil || fresh == c {
		// Nothing new to try with: WeChat's refusal stands.
		return v, err
	}
	if fresh.MchID() != c.MchID() {
		// The same billno under another merchant would be another red
		// packet: never resend across merchants.
		s.cfg.Logger.WarnContext(ctx, "wxpay: the rotated secret names another mch_id; not resending",
			slog.String("secret_id", s.cfg.SecretID), slog.String("mch_id", c.MchID()), slog.String("new_mch_id", fresh.MchID()))
		return v, err
	}
	wait := max(wxpay.MinRetryInterval-s.cfg.Now().Sub(refusedAt), 0)
	if !roomFor(ctx, wait) {
		return v, err
	}
	if wait > 0 && s.cfg.Sleep(ctx, wait) != nil {
		return v, err
	}
	s.cfg.Logger.InfoContext(ctx, "wxpay: retrying with rotated credentials after WeChat refused the previous ones",
		slog.String("secret_id", s.cfg.SecretID), slog.String("mch_id", fresh.MchID()))
	return fn(fresh)
}

// roomFor reports whether ctx leaves time for a wait and one try after it.
func roomFor(ctx context.Context, wait time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	// The deadline is wall-clock time, whatever clock the store was given.
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > wait+500*time.Millisecond
}

// startLocked returns the fetch under way, or starts one. The fetch runs
// on its own goroutine with ctx's values but not its cancellation (other
// callers may be waiting for it), bounded by Config.FetchTimeout.
func (s *Store) startLocked(ctx context.Context, forced bool) *flight {
	if s.flight != nil {
		return s.flight
	}
	f := &flight{done: make(chan struct{})}
	s.flight = f
	go s.run(context.WithoutCancel(ctx), f, s.cur, forced)
	return f
}

// wait waits for f, or for ctx. A caller whose ctx ends first gets the
// current client if there is one.
func (s *Store) wait(ctx context.Context, f *flight) (*wxpay.Client, error) {
	select {
	case <-f.done:
		if f.client != nil {
			return f.client, nil
		}
		return nil, f.err
	case <-ctx.Done():
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		if cur != nil {
			return cur.client, nil
		}
		return nil, &ConfigError{Field: "secret", Reason: "no answer from Secrets Manager before the deadline", Err: ctx.Err(), Transient: true}
	}
}

// run performs one fetch, logs its outcome, and publishes it (logging
// first, so that the line is written before any caller returns).
func (s *Store) run(ctx context.Context, f *flight, prev *entry, forced bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	next, unchanged, cerr := s.fetch(ctx, prev)
	now := s.cfg.Now()
	s.logOutcome(ctx, prev, next, unchanged, cerr, now)

	s.mu.Lock()
	switch {
	case cerr != nil:
		s.nextRefresh = now.Add(s.cfg.RetryAfter)
		s.quietUntil = s.nextRefresh
		f.err = cerr
	case unchanged:
		s.nextRefresh = now.Add(s.cfg.TTL)
		if forced {
			s.quietUntil = now.Add(s.cfg.RetryAfter)
		}
	default:
		s.cur = next
		s.nextRefresh = now.Add(s.cfg.TTL)
		s.quietUntil = time.Time{}
	}
	if s.cur != nil {
		f.client = s.cur.client
	}
	s.flight = nil
	close(f.done)
	s.mu.Unlock()

	if next != nil && prev != nil {
		// In-flight calls on the old client finish on their connections;
		// its idle connections close now, the others when they idle out
		// (the transport's IdleConnTimeout).
		prev.client.CloseIdleConnections()
	}
}

// logOutcome logs a fetch: never a secret value, only the secret's ID,
// the mch_id and the certificate's serial and validity.
func (s *Store) logOutcome(ctx context.Context, prev, next *entry, unchanged bool, cerr *ConfigError, now time.Time) {
	log := s.cfg.Logger
	attrs := []any{slog.String("secret_id", s.cfg.SecretID)}
	switch {
	case cerr != nil && prev != nil:
		log.WarnContext(ctx, "wxpay: credentials refresh failed; serving the last good credentials",
			append(attrs, slog.Any("error", cerr), slog.Duration("retry_in", s.cfg.RetryAfter), causeAttr(cerr))...)
	case cerr != nil:
		log.ErrorContext(ctx, "wxpay: credentials unavailable", append(attrs, slog.Any("error", cerr), causeAttr(cerr))...)
	case unchanged:
		log.DebugContext(ctx, "wxpay: credentials unchanged", attrs...)
		warnExpiry(ctx, log, prev.creds, now, attrs)
	default:
		msg := "wxpay: credentials loaded"
		if prev != nil {
			msg = "wxpay: credentials rotated"
		}
		log.InfoContext(ctx, msg, append(attrs, credAttrs(next.creds)...)...)
		warnExpiry(ctx, log, next.creds, now, attrs)
	}
}

// fetch reads the secret and, unless it is unchanged since prev, builds a
// client from it.
func (s *Store) fetch(ctx context.Context, prev *entry) (next *entry, unchanged bool, cerr *ConfigError) {
	s.fetches.Add(1)
	out, err := s.cfg.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.cfg.SecretID)})
	if err != nil {
		return nil, false, fromAWS(ctx, err)
	}
	if out == nil || out.SecretString == nil {
		if out != nil && len(out.SecretBinary) > 0 {
			return nil, false, &ConfigError{Field: "secret", Reason: "holds SecretBinary; store the JSON as SecretString"}
		}
		return nil, false, &ConfigError{Field: "secret", Reason: "has no SecretString"}
	}
	sum := sha256.Sum256([]byte(*out.SecretString))
	if prev != nil && sum == prev.sum {
		return nil, true, nil
	}
	creds, err := ParseSecret([]byte(*out.SecretString), s.cfg.Now())
	if err != nil {
		if !errors.As(err, &cerr) {
			cerr = &ConfigError{Field: "secret", Reason: "unusable", Err: err}
		}
		return nil, false, cerr
	}
	client, err := s.cfg.NewClient(creds)
	if err != nil {
		if isCredSentinel(err) {
			// NewClient checks the credentials against its own clock.
			return nil, false, credError(err, fieldCert, fieldKey, false)
		}
		return nil, false, &ConfigError{Field: "wxpay", Reason: "cannot build the WeChat Pay client: " + err.Error(), Err: err}
	}
	if client == nil {
		return nil, false, &ConfigError{Field: "wxpay", Reason: "NewClient returned no client"}
	}
	return &entry{client: client, creds: creds, sum: sum}, false, nil
}

func isCredSentinel(err error) bool {
	for _, target := range []error{wxpay.ErrCertificate, wxpay.ErrPrivateKey, wxpay.ErrKeyMismatch, wxpay.ErrP12Password,
		wxpay.ErrExpired, wxpay.ErrWrongMerchant, wxpay.ErrAPIKey, wxpay.ErrMchID} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// causeAttr logs the underlying error (the SDK's, with AWS's message and
// request ID), which carries no secret value.
func causeAttr(ce *ConfigError) slog.Attr {
	if ce.Err == nil {
		return slog.Attr{}
	}
	return slog.String("cause", ce.Err.Error())
}

// credAttrs describes credentials for the log: the mch_id and the
// certificate's serial and validity, nothing secret.
func credAttrs(c *wxpay.Credentials) []any {
	attrs := []any{slog.String("mch_id", c.MchID)}
	if leaf := leafOf(c); leaf != nil {
		attrs = append(attrs,
			slog.String("cert_serial", leaf.SerialNumber.Text(16)),
			slog.Time("cert_not_after", leaf.NotAfter))
	}
	return attrs
}

func warnExpiry(ctx context.Context, log *slog.Logger, c *wxpay.Credentials, now time.Time, attrs []any) {
	leaf := leafOf(c)
	if leaf == nil {
		return
	}
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		log.ErrorContext(ctx, "wxpay: merchant certificate has expired; rotate the secret", append(attrs, slog.Time("cert_not_after", leaf.NotAfter))...)
	case left < expiryWarning:
		log.WarnContext(ctx, "wxpay: merchant certificate expires soon; rotate the secret", append(attrs, slog.Time("cert_not_after", leaf.NotAfter))...)
	}
}

func leafOf(c *wxpay.Credentials) *x509.Certificate {
	if c.Certificate.Leaf != nil {
		return c.Certificate.Leaf
	}
	if len(c.Certificate.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
