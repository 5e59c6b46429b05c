package credstore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// sdkClient is the real SDK client aimed at endpoint, with static
// credentials and no retries (fault tests do not wait on backoff).
func sdkClient(endpoint string) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "test-secret-key", Source: "test"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

// sdkEnv points the SDK's default configuration at endpoint with static
// credentials, and keeps it from reading anything else on this machine
// (shared files, EC2 metadata, container credentials).
func sdkEnv(t *testing.T, endpoint string) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "nonexistent")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":       endpoint,
		"AWS_REGION":                             "us-east-1",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_ACCESS_KEY_ID":                      "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":                  "test-secret-key",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_DEFAULT_PROFILE":                    "",
		"AWS_CONFIG_FILE":                        none,
		"AWS_SHARED_CREDENTIALS_FILE":            none,
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_ROLE_ARN":                           "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS":    "",
		"AWS_MAX_ATTEMPTS":                       "1",
		"WXPAY_SECRET_TTL":                       "",
	} {
		t.Setenv(k, v)
	}
}

func newSMServer(t *testing.T) *smtest.Server {
	t.Helper()
	srv := smtest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

func TestSDKAgainstFake(t *testing.T) {
	m := newMerchant(t, testMchID, certOpts{})
	srv := newSMServer(t)
	srv.Put("prod/wxpay/merchant", m.pemSecret())
	srv.SetDelay(50 * time.Millisecond)
	logger, logs := newLogger()
	s := New(Config{SecretID: "prod/wxpay/merchant", SecretsManager: sdkClient(srv.URL()), NewClient: offlineClient, Logger: logger})

	const n = 50
	var wg sync.WaitGroup
	clients := make([]*wxpay.Client, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.Client(context.Background())
			if err != nil {
				t.Error(err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	for i := range n {
		if clients[i] == nil || clients[i] != clients[0] {
			t.Fatalf("caller %d got client %p, caller 0 %p", i, clients[i], clients[0])
		}
	}
	for range 10 {
		if c, err := s.Client(context.Background()); err != nil || c != clients[0] {
			t.Fatal("warm call changed the client")
		}
	}
	if srv.Calls() != 1 || s.Fetches() != 1 {
		t.Errorf("GetSecretValue calls: server %d, store %d; want 1", srv.Calls(), s.Fetches())
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Op != "GetSecretValue" || reqs[0].SecretID != "prod/wxpay/merchant" {
		t.Errorf("requests = %+v; want only GetSecretValue (no DescribeSecret: one IAM permission)", reqs)
	}
	if clients[0].MchID() != testMchID {
		t.Errorf("MchID = %q", clients[0].MchID())
	}
	assertNoLeak(t, "log", logs.String(), secretValues(m.apiKey, []string{m.certPEM, m.keyPEM}, "", ""))
}

func TestSDKErrorCodes(t *testing.T) {
	tests := []struct {
		code      string
		field     string
		temporary bool
		reason    string
	}{
		{"ResourceNotFoundException", "secret", false, "ResourceNotFoundException"},
		{"AccessDeniedException", "secret", false, "AccessDeniedException: GetSecretValue denied"},
		{"DecryptionFailure", "secret", false, "kms:Decrypt"},
		{"InvalidRequestException", "secret", false, "deletion"},
		{"InvalidParameterException", "WXPAY_SECRET_ID", false, "InvalidParameterException"},
		{"UnrecognizedClientException", "secret", false, "credentials"},
		{"ExpiredTokenException", "secret", false, "credentials"},
		{"ThrottlingException", "secret", true, "throttled"},
		{"InternalServiceError", "secret", true, "InternalServiceError"},
		{"ServiceUnavailable", "secret", true, "ServiceUnavailable"},
		{"SomethingNewException", "secret", false, "SomethingNewException"},
	}
	m := newMerchant(t, testMchID, certOpts{})
	srv := newSMServer(t)
	srv.Put("wxpay", m.pemSecret())
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			srv.Fail(1, tt.code)
			logger, logs := newLogger()
			s := New(Config{SecretID: "wxpay", SecretsManager: sdkClient(srv.URL()), NewClient: offlineClient, Logger: logger})
			_, err := s.Client(context.Background())
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Client = %v, want *ConfigError", err)
			}
			if ce.Field != tt.field || ce.Temporary() != tt.temporary || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("got Field %q Temporary %v Reason %q; want %q %v ~%q", ce.Field, ce.Temporary(), ce.Reason, tt.field, tt.temporary, tt.reason)
			}
			wantStatus := 500
			if tt.temporary {
				wantStatus = 503
			}
			if ce.HTTPStatus() != wantStatus || ce.Code() != "CONFIG_ERROR" {
				t.Errorf("HTTPStatus %d Code %q", ce.HTTPStatus(), ce.Code())
			}
			if !strings.Contains(logs.String(), tt.code) {
				t.Errorf("log lacks the AWS code:\n%s", logs)
			}
			// The fault was one call: the store recovers on the next.
			if _, err := s.Client(context.Background()); err != nil {
				t.Errorf("after the fault: %v", err)
			}
		})
	}
}

func TestSDKSecretMissing(t *testing.T) {
	srv := newSMServer(t)
	s := New(Config{SecretID: "nope", SecretsManager: sdkClient(srv.URL()), NewClient: offlineClient, Logger: discard()})
	_, err := s.Client(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "secret" || !strings.Contains(ce.Reason, "ResourceNotFoundException") || ce.Temporary() {
		t.Fatalf("Client = %v", err)
	}
}

func TestSDKNetworkFailures(t *testing.T) {
	t.Run("connection dropped", func(t *testing.T) {
		srv := newSMServer(t)
		srv.Put("wxpay", newMerchant(t, testMchID, certOpts{}).pemSecret())
		srv.SetDown(true)
		s := New(Config{SecretID: "wxpay", SecretsManager: sdkClient(srv.URL()), NewClient: offlineClient, Logger: discard()})
		_, err := s.Client(context.Background())
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "secret" || !ce.Temporary() {
			t.Fatalf("Client = %v, want a temporary ConfigError", err)
		}
		srv.SetDown(false)
		if _, err := s.Client(context.Background()); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		srv := smtest.NewServer()
		url := srv.URL()
		srv.Close()
		s := New(Config{SecretID: "wxpay", SecretsManager: sdkClient(url), NewClient: offlineClient, Logger: discard()})
		_, err := s.Client(context.Background())
		var ce *ConfigError
		if !errors.As(err, &ce) || !ce.Temporary() || !strings.Contains(ce.Reason, "cannot reach Secrets Manager") {
			t.Fatalf("Client = %v, want a temporary ConfigError", err)
		}
	})
	t.Run("slow, deadline", func(t *testing.T) {
		srv := newSMServer(t)
		srv.Put("wxpay", newMerchant(t, testMchID, certOpts{}).pemSecret())
		srv.SetDelay(2 * time.Second)
		s := New(Config{SecretID: "wxpay", SecretsManager: sdkClient(srv.URL()), NewClient: offlineClient, Logger: discard(), FetchTimeout: 100 * time.Millisecond})
		_, err := s.Client(context.Background())
		var ce *ConfigError
		if !errors.As(err, &ce) || !ce.Temporary() {
			t.Fatalf("Client = %v, want a temporary ConfigError", err)
		}
	})
}

func TestFromEnv(t *testing.T) {
	m := newMerchant(t, testMchID, certOpts{})
	srv := newSMServer(t)
	srv.Put("prod/wxpay", m.pemSecret())
	arn := srv.ARN("prod/wxpay")

	for _, id := range []string{"prod/wxpay", arn, strings.TrimSuffix(arn, arn[len(arn)-7:])} {
		t.Run(id, func(t *testing.T) {
			sdkEnv(t, srv.URL())
			t.Setenv("WXPAY_SECRET_ID", id)
			t.Setenv("WXPAY_SECRET_TTL", "90s")
			before := srv.Calls()
			s, err := FromEnv(context.Background(), offlineClient, discard())
			if err != nil {
				t.Fatal(err)
			}
			if s.cfg.TTL != 90*time.Second {
				t.Errorf("TTL = %v, want 90s", s.cfg.TTL)
			}
			c, err := s.Client(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c.MchID() != testMchID {
				t.Errorf("MchID = %q", c.MchID())
			}
			if _, err := s.Client(context.Background()); err != nil || srv.Calls()-before != 1 {
				t.Errorf("calls = %d, %v; want 1", srv.Calls()-before, err)
			}
		})
	}
}

func TestFromEnvRegionFromARN(t *testing.T) {
	srv := newSMServer(t)
	srv.Put("arn:aws:secretsmanager:ap-east-1:123456789012:secret:wxpay-AbCdEf", newMerchant(t, testMchID, certOpts{}).pemSecret())
	sdkEnv(t, srv.URL())
	t.Setenv("AWS_REGION", "")
	t.Setenv("WXPAY_SECRET_ID", "arn:aws:secretsmanager:ap-east-1:123456789012:secret:wxpay-AbCdEf")
	s, err := FromEnv(context.Background(), offlineClient, discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(context.Background()); err != nil {
		t.Fatalf("Client: %v", err)
	}

	t.Setenv("WXPAY_SECRET_ID", "wxpay")
	s, err = FromEnv(context.Background(), offlineClient, discard())
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Client(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "AWS_REGION" {
		t.Fatalf("Client without a region = %v, want a ConfigError on AWS_REGION", err)
	}
}

func TestFromEnvBadVariables(t *testing.T) {
	tests := []struct {
		name, secretID, ttl, field string
	}{
		{"WXPAY_SECRET_ID unset", "", "", "WXPAY_SECRET_ID"},
		{"WXPAY_SECRET_ID blank", "  ", "", "WXPAY_SECRET_ID"},
		{"WXPAY_SECRET_TTL not a duration", "wxpay", "300", "WXPAY_SECRET_TTL"},
		{"WXPAY_SECRET_TTL negative", "wxpay", "-5m", "WXPAY_SECRET_TTL"},
	}
	srv := newSMServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sdkEnv(t, srv.URL())
			t.Setenv("WXPAY_SECRET_ID", tt.secretID)
			t.Setenv("WXPAY_SECRET_TTL", tt.ttl)
			s, err := FromEnv(context.Background(), offlineClient, discard())
			if err != nil || s == nil {
				t.Fatalf("FromEnv = %v, %v; want a store that reports the problem on use", s, err)
			}
			for _, call := range []func() error{
				func() error { _, err := s.Client(context.Background()); return err },
				func() error { _, err := s.Refresh(context.Background(), nil); return err },
				func() error {
					_, err := Do(context.Background(), s, func(*wxpay.Client) (int, error) { return 0, nil })
					return err
				},
			} {
				err := call()
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tt.field || ce.Code() != "CONFIG_ERROR" || ce.Temporary() {
					t.Errorf("got %v, want a permanent ConfigError on %s", err, tt.field)
				}
			}
			if srv.Calls() != 0 || s.Fetches() != 0 {
				t.Errorf("Secrets Manager was called")
			}
		})
	}
}

func TestFromEnvUnsetWithoutAWSConfig(t *testing.T) {
	// Even with nothing configured for AWS, a missing WXPAY_SECRET_ID is
	// the error reported.
	t.Setenv("WXPAY_SECRET_ID", "")
	s, err := FromEnv(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Client(context.Background())
	if err == nil || err.Error() != "configuration error: WXPAY_SECRET_ID: not set: it must name the Secrets Manager secret holding the merchant credentials" {
		t.Fatalf("Client = %v", err)
	}
}
