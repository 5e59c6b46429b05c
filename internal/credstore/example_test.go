package credstore_test

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// A function builds the store once, at init, and sends every red packet
// through Do, so that a rotated secret is picked up on CA_ERROR or
// SIGN_ERROR and the same request (the same mch_billno) is tried once more.
func Example() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	store, err := credstore.FromEnv(context.Background(), func(c *wxpay.Credentials) (*wxpay.Client, error) {
		return wxpay.NewClient(wxpay.Config{Credentials: c, BaseURL: os.Getenv("WXPAY_BASE_URL")})
	}, logger)
	if err != nil {
		logger.Error("AWS SDK configuration", slog.Any("error", err))
		return
	}

	ctx := context.Background()
	req := &wxpay.SendRequest{MchBillno: "10000098201411111234567890" /* ... */}
	res, err := credstore.Do(ctx, store, func(c *wxpay.Client) (*wxpay.SendResult, error) {
		return c.SendRedpack(ctx, req)
	})
	var ce *credstore.ConfigError
	switch {
	case errors.As(err, &ce):
		// 500 (or 503 when ce.Temporary()), {"error": {"code": ce.Code(), "message": ce.Error(), ...}}
		_ = ce.HTTPStatus()
	case err != nil:
		// WeChat's answer: errors.As(err, new(*wxpay.Error)), wxpay.OutcomeOf(err)
	default:
		_ = res.SendListID
	}
}
