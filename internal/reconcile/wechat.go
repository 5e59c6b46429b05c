package reconcile

import (
	"context"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// WeChat is what the reconciler asks of WeChat Pay, for one merchant.
// Merchant implements it with the merchant's client; tests use a fake.
type WeChat interface {
	// MchID is the merchant whose red packets are reconciled.
	MchID(ctx context.Context) (string, error)
	// QueryRedpack reads a red packet's record (gethbinfo) with the
	// wxappid it was sent with. A billno WeChat has no record of is a
	// *wxpay.Error with wxpay.OutcomeNotFound.
	QueryRedpack(ctx context.Context, wxappid, billno string) (*wxpay.QueryResult, error)
	// SendFields sends a stored request again, exactly: its API and its
	// signed fields (wxpay.Client.SendFields).
	SendFields(ctx context.Context, api string, fields map[string]string) (any, error)
}

// Merchant is WeChat through the merchant's client from Secrets Manager:
// every call goes through credstore.Do, which refreshes refused
// credentials and tries the same request once more.
type Merchant struct {
	Store *credstore.Store
}

// MchID implements WeChat: the merchant of the secret.
func (m Merchant) MchID(ctx context.Context) (string, error) {
	c, err := m.Store.Client(ctx)
	if err != nil {
		return "", err
	}
	return c.MchID(), nil
}

// QueryRedpack implements WeChat.
func (m Merchant) QueryRedpack(ctx context.Context, wxappid, billno string) (*wxpay.QueryResult, error) {
	return credstore.Do(ctx, m.Store, func(c *wxpay.Client) (*wxpay.QueryResult, error) {
		return c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: billno, AppID: wxappid})
	})
}

// SendFields implements WeChat.
func (m Merchant) SendFields(ctx context.Context, api string, fields map[string]string) (any, error) {
	return credstore.Do(ctx, m.Store, func(c *wxpay.Client) (any, error) {
		return c.SendFields(ctx, api, fields)
	})
}
