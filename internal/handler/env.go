package handler

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// FromEnv builds op's handler the way a deployed function runs: settings
// from the environment, credentials from the Secrets Manager secret named
// by WXPAY_SECRET_ID, JSON logs on stdout at AWS_LAMBDA_LOG_LEVEL (or
// LOG_LEVEL). It never fails: a configuration fault is logged once and
// every invocation answers CONFIG_ERROR naming it, so callers see the
// problem rather than a crashing function.
func FromEnv(ctx context.Context, op Operation) *Handler {
	level := os.Getenv("AWS_LAMBDA_LOG_LEVEL")
	if level == "" {
		level = os.Getenv("LOG_LEVEL")
	}
	logger := NewLogger(os.Stdout, level)
	settings, err := SettingsFromEnv(os.Getenv)
	if err != nil {
		return broken(op, settings, logger, &credstore.ConfigError{Field: "environment", Reason: err.Error()})
	}
	if settings.Ledger, err = ledgerFromEnv(ctx, logger); err != nil {
		return broken(op, settings, logger, &credstore.ConfigError{Field: "aws", Reason: "cannot load the AWS SDK configuration", Err: err})
	}
	table, err := campaignTableFromEnv(ctx)
	if err != nil {
		return broken(op, settings, logger, &credstore.ConfigError{Field: "aws", Reason: "cannot load the AWS SDK configuration", Err: err})
	}
	if table != nil {
		settings.Window = table
	}
	store, err := credstore.FromEnv(ctx, settings.NewClient, logger)
	if err != nil {
		var cerr *credstore.ConfigError
		if !errors.As(err, &cerr) {
			cerr = &credstore.ConfigError{Field: "aws", Reason: "cannot load the AWS SDK configuration", Err: err}
		}
		return broken(op, settings, logger, cerr)
	}
	return New(op, store, settings, logger)
}

// broken is a handler that answers every request with err.
func broken(op Operation, settings Settings, logger *slog.Logger, err *credstore.ConfigError) *Handler {
	logger.Error("configuration error", slog.String("function", op.Name()), slog.String("error", err.Error()))
	h := New(op, nil, settings, logger)
	h.configErr = err
	return h
}

// ledgerFromEnv builds the ledger on the DynamoDB table WXPAY_LEDGER_TABLE
// names, reached as the AWS SDK's configuration says
// (AWS_ENDPOINT_URL_DYNAMODB among it). Without the variable there is no
// ledger, which is said once. Nothing is called yet: a table that cannot
// be reached is found on the first request, which answers
// LEDGER_UNAVAILABLE and sends nothing.
func ledgerFromEnv(ctx context.Context, logger *slog.Logger) (ledger.Store, error) {
	table := strings.TrimSpace(os.Getenv("WXPAY_LEDGER_TABLE"))
	if table == "" {
		logger.Warn("WXPAY_LEDGER_TABLE is not set: red packets are sent without a record, repeats of a billno are sent again rather than replayed, and conflicting repeats are left to WeChat")
		return nil, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return ledger.NewDynamoDB(dynamodb.NewFromConfig(cfg), table), nil
}

// campaignTableFromEnv is the campaign table WXPAY_CAMPAIGN_TABLE names:
// the campaigns, and the stack's shared count of sends per second (one
// item per merchant). Nil without the variable: no campaign shares the
// merchant's rate.
func campaignTableFromEnv(ctx context.Context) (*campaign.DynamoDB, error) {
	table := strings.TrimSpace(os.Getenv("WXPAY_CAMPAIGN_TABLE"))
	if table == "" {
		return nil, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return campaign.NewDynamoDB(dynamodb.NewFromConfig(cfg), table), nil
}
