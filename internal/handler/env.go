package handler

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
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
