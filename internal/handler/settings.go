package handler

import (
	"context"
	"crypto/x509"
	"fmt"
	"strconv"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Settings are the functions' non-secret configuration, from the
// environment (see SettingsFromEnv).
type Settings struct {
	// BaseURL and BackupURL are WeChat Pay's (WXPAY_BASE_URL,
	// WXPAY_BACKUP_BASE_URL); empty means production with its backup.
	BaseURL, BackupURL string
	// PaySignPackage is WXPAY_PAYSIGN_PACKAGE: encoded (default) or raw.
	PaySignPackage wxpay.PaySignPackage
	// DefaultAppID is the query function's appid when the query string
	// has none (WXPAY_APPID).
	DefaultAppID string
	// SQSConcurrency bounds the records of a batch handled at once
	// (WXPAY_SQS_CONCURRENCY, default 10; WeChat allows about 30 requests
	// a second per merchant).
	SQSConcurrency int
	// Reserve is the time kept before Lambda's deadline to answer
	// (WXPAY_DEADLINE_RESERVE, default 1s; at most a tenth of the time
	// left).
	Reserve time.Duration
	// MaxAttempts bounds the tries of one call (WXPAY_MAX_ATTEMPTS,
	// default 3).
	MaxAttempts int
	// Ledger records every red packet before it is sent (FromEnv builds
	// it from WXPAY_LEDGER_TABLE); nil sends without a record.
	Ledger ledger.Store
	// Window counts each send in the stack's shared count of sends per
	// second, which campaigns leave room in (FromEnv builds it from
	// WXPAY_CAMPAIGN_TABLE); nil counts nothing.
	Window campaign.Window
	// Sleep waits between a call's tries; wxpay.Sleep when nil. Tests
	// record the waits rather than sleep them.
	Sleep func(ctx context.Context, d time.Duration) error
	// RootCAs verifies WeChat Pay's server; nil means the system roots,
	// which honour SSL_CERT_FILE. Tests in one process give each simulator
	// its own pool here.
	RootCAs *x509.CertPool
}

func (s Settings) withDefaults() Settings {
	if s.SQSConcurrency <= 0 {
		s.SQSConcurrency = 10
	}
	if s.Reserve <= 0 {
		s.Reserve = time.Second
	}
	return s
}

// SettingsFromEnv reads the settings through getenv (os.Getenv).
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		BaseURL:        getenv("WXPAY_BASE_URL"),
		BackupURL:      getenv("WXPAY_BACKUP_BASE_URL"),
		PaySignPackage: wxpay.PaySignPackage(getenv("WXPAY_PAYSIGN_PACKAGE")),
		DefaultAppID:   getenv("WXPAY_APPID"),
	}
	switch s.PaySignPackage {
	case "", wxpay.PaySignEncoded, wxpay.PaySignRaw:
	default:
		return s, fmt.Errorf("WXPAY_PAYSIGN_PACKAGE must be %q or %q", wxpay.PaySignEncoded, wxpay.PaySignRaw)
	}
	var err error
	if s.SQSConcurrency, err = intEnv(getenv, "WXPAY_SQS_CONCURRENCY", 1, 100); err != nil {
		return s, err
	}
	if s.MaxAttempts, err = intEnv(getenv, "WXPAY_MAX_ATTEMPTS", 1, 10); err != nil {
		return s, err
	}
	if v := getenv("WXPAY_DEADLINE_RESERVE"); v != "" {
		if s.Reserve, err = time.ParseDuration(v); err != nil || s.Reserve < 0 {
			return s, fmt.Errorf("WXPAY_DEADLINE_RESERVE must be a duration such as 1s")
		}
	}
	return s.withDefaults(), nil
}

func intEnv(getenv func(string) string, name string, lo, hi int) (int, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be a whole number from %d to %d", name, lo, hi)
	}
	return n, nil
}

// NewClient builds a WeChat Pay client from fresh credentials with these
// settings; internal/credstore calls it after each secret fetch.
func (s Settings) NewClient(creds *wxpay.Credentials) (*wxpay.Client, error) {
	return wxpay.NewClient(wxpay.Config{
		Credentials:    creds,
		BaseURL:        s.BaseURL,
		BackupURL:      s.BackupURL,
		PaySignPackage: s.PaySignPackage,
		MaxAttempts:    s.MaxAttempts,
		RootCAs:        s.RootCAs,
		Sleep:          s.Sleep,
	})
}
