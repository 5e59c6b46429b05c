package handler

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	env, cerr := loadEnvironment(ctx)
	if cerr != nil {
		return broken(op, env.settings, env.logger, cerr)
	}
	settings := env.settings
	settings.Ledger = env.ledger
	if env.ledger == nil {
		env.logger.Warn("WXPAY_LEDGER_TABLE is not set: red packets are sent without a record, repeats of a billno are sent again rather than replayed, and conflicting repeats are left to WeChat")
	}
	if env.campaigns != nil {
		settings.Window = env.campaigns
	}
	return New(op, env.creds, settings, env.logger)
}

// broken is a handler that answers every request with err.
func broken(op Operation, settings Settings, logger *slog.Logger, err *credstore.ConfigError) *Handler {
	logger.Error("configuration error", slog.String("function", op.Name()), slog.String("error", err.Error()))
	h := New(op, nil, settings, logger)
	h.configErr = err
	return h
}

// environment is what a function builds from its environment, once per
// execution environment.
type environment struct {
	logger   *slog.Logger
	settings Settings
	aws      aws.Config
	// ledger is the DynamoDB table WXPAY_LEDGER_TABLE names, campaigns
	// the one WXPAY_CAMPAIGN_TABLE names (the campaigns, and the stack's
	// shared count of sends per second); nil without the variable.
	ledger    ledger.Store
	campaigns *campaign.DynamoDB
	// creds are the merchant's credentials, from WXPAY_SECRET_ID.
	creds *credstore.Store
}

// loadEnvironment reads the functions' settings, loads the AWS SDK's
// configuration once for all their clients (each load costs milliseconds
// of cold start), and builds the tables the variables name and the
// credential store. Nothing is called yet: a table or a secret that
// cannot be reached is found by the first request. Its error, a
// configuration fault, comes with the logger and the settings read.
func loadEnvironment(ctx context.Context) (*environment, *credstore.ConfigError) {
	level := os.Getenv("AWS_LAMBDA_LOG_LEVEL")
	if level == "" {
		level = os.Getenv("LOG_LEVEL")
	}
	env := &environment{logger: NewLogger(os.Stdout, level)}
	var err error
	if env.settings, err = SettingsFromEnv(os.Getenv); err != nil {
		return env, &credstore.ConfigError{Field: "environment", Reason: err.Error()}
	}
	if env.aws, err = credstore.LoadAWSConfig(ctx); err != nil {
		var cerr *credstore.ConfigError
		errors.As(err, &cerr)
		return env, cerr
	}
	var db *dynamodb.Client
	if table := strings.TrimSpace(os.Getenv("WXPAY_LEDGER_TABLE")); table != "" {
		db = dynamodb.NewFromConfig(env.aws)
		env.ledger = ledger.NewDynamoDB(db, table)
	}
	if table := strings.TrimSpace(os.Getenv("WXPAY_CAMPAIGN_TABLE")); table != "" {
		if db == nil {
			db = dynamodb.NewFromConfig(env.aws)
		}
		env.campaigns = campaign.NewDynamoDB(db, table)
	}
	env.creds = credstore.FromConfig(env.aws, env.settings.NewClient, env.logger)
	return env, nil
}
