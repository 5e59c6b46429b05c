package credstore

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// The variables FromEnv reads, besides the AWS SDK's own.
const (
	envSecretID  = "WXPAY_SECRET_ID"
	envSecretTTL = "WXPAY_SECRET_TTL"
)

// FromEnv builds the store a function uses, from its environment:
//
//   - WXPAY_SECRET_ID: the secret's name or ARN (required);
//   - WXPAY_SECRET_TTL: how long credentials are used before the secret is
//     fetched again, as a Go duration ("5m", the default; "90s");
//   - the AWS SDK's own configuration through config.LoadDefaultConfig:
//     AWS_REGION, credentials, AWS_ENDPOINT_URL_SECRETS_MANAGER,
//     AWS_MAX_ATTEMPTS, shared config files.
//
// When WXPAY_SECRET_ID is an ARN, the client uses the ARN's region: only
// that region can answer for the secret.
//
// Nothing is fetched yet. A missing or invalid variable does not fail
// FromEnv: the store is built, and every Client call returns the
// *ConfigError naming the variable, so that the function answers
// CONFIG_ERROR instead of failing to start. FromEnv returns an error (a
// *ConfigError) only when the AWS SDK configuration cannot be loaded.
func FromEnv(ctx context.Context, newClient func(*wxpay.Credentials) (*wxpay.Client, error), logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	id, ttl, broken := secretFromEnv(logger)
	if broken != nil {
		return broken, nil
	}
	awsCfg, err := LoadAWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return fromConfig(awsCfg, id, ttl, newClient, logger), nil
}

// FromConfig is FromEnv with the AWS SDK's configuration loaded already,
// so that a function's AWS clients share one load (each costs
// milliseconds of cold start). It never fails: a missing or invalid
// variable is the error of every Client call.
func FromConfig(awsCfg aws.Config, newClient func(*wxpay.Credentials) (*wxpay.Client, error), logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	id, ttl, broken := secretFromEnv(logger)
	if broken != nil {
		return broken
	}
	return fromConfig(awsCfg, id, ttl, newClient, logger)
}

// LoadAWSConfig loads the AWS SDK's configuration (config.LoadDefaultConfig).
// Its error is a *ConfigError; the loader's message, which may quote
// shared config files, stays in its Err.
func LoadAWSConfig(ctx context.Context) (aws.Config, error) {
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, &ConfigError{Field: "AWS SDK configuration", Reason: "cannot be loaded (AWS_* variables, shared config files)", Err: err}
	}
	return awsCfg, nil
}

// secretFromEnv reads WXPAY_SECRET_ID and WXPAY_SECRET_TTL; a broken
// store when either is missing or invalid.
func secretFromEnv(logger *slog.Logger) (id string, ttl time.Duration, broken *Store) {
	id = strings.TrimSpace(os.Getenv(envSecretID))
	if id == "" {
		return "", 0, newBroken(&ConfigError{Field: envSecretID, Reason: "not set: it must name the Secrets Manager secret holding the merchant credentials"}, logger)
	}
	if v := strings.TrimSpace(os.Getenv(envSecretTTL)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return "", 0, newBroken(&ConfigError{Field: envSecretTTL, Reason: "must be a positive Go duration such as 5m or 90s"}, logger)
		}
		ttl = d
	}
	return id, ttl, nil
}

// fromConfig is the store of secret id over Secrets Manager as awsCfg
// reaches it.
func fromConfig(awsCfg aws.Config, id string, ttl time.Duration, newClient func(*wxpay.Credentials) (*wxpay.Client, error), logger *slog.Logger) *Store {
	region := awsCfg.Region
	if r := arnRegion(id); r != "" {
		region = r
	}
	if region == "" {
		return newBroken(&ConfigError{Field: "AWS_REGION", Reason: "not set, so Secrets Manager cannot be reached"}, logger)
	}
	client := secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) { o.Region = region })
	return New(Config{
		SecretID:       id,
		TTL:            ttl,
		SecretsManager: client,
		NewClient:      newClient,
		Logger:         logger,
	})
}

// arnRegion returns the region of a secret ARN
// (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>), ""
// for a name.
func arnRegion(id string) string {
	parts := strings.SplitN(id, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return ""
	}
	return parts[3]
}
