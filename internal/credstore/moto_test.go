package credstore

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

func TestMotoServer(t *testing.T) {
	url := mototest.Start(t)
	ctx := context.Background()
	m1 := newMerchant(t, testMchID, certOpts{})
	m2 := newMerchant(t, testMchID, certOpts{rsa: true})

	admin := sdkClient(url)
	created, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String("prod/wxpay/merchant"),
		SecretString: aws.String(m1.pemSecret()),
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	for _, id := range []string{"prod/wxpay/merchant", aws.ToString(created.ARN)} {
		t.Run(id, func(t *testing.T) {
			sdkEnv(t, url)
			t.Setenv("WXPAY_SECRET_ID", id)
			s, err := FromEnv(ctx, offlineClient, discard())
			if err != nil {
				t.Fatal(err)
			}
			c1, err := s.Client(ctx)
			if err != nil {
				t.Fatalf("Client: %v", err)
			}
			if c1.MchID() != testMchID || s.Fetches() != 1 {
				t.Fatalf("MchID %q, %d fetches", c1.MchID(), s.Fetches())
			}
			// Unchanged secret: same client.
			if c, err := s.Refresh(ctx, c1); err != nil || c != c1 {
				t.Fatalf("Refresh, unchanged = %p, %v", c, err)
			}
		})
	}

	// Rotation through moto: PutSecretValue, then a forced refresh sees it.
	sdkEnv(t, url)
	t.Setenv("WXPAY_SECRET_ID", "prod/wxpay/merchant")
	s, err := FromEnv(ctx, offlineClient, discard())
	if err != nil {
		t.Fatal(err)
	}
	c1, err := s.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String("prod/wxpay/merchant"),
		SecretString: aws.String(m2.pemSecret()),
	}); err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	c2, err := s.Refresh(ctx, c1)
	if err != nil || c2 == c1 {
		t.Fatalf("Refresh after rotation = %p (old %p), %v", c2, c1, err)
	}

	// A secret moto does not have.
	t.Setenv("WXPAY_SECRET_ID", "prod/wxpay/missing")
	s, err = FromEnv(ctx, offlineClient, discard())
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Client(ctx)
	if ce, ok := err.(*ConfigError); !ok || ce.Field != "secret" || ce.Temporary() {
		t.Fatalf("missing secret: %v", err)
	}
}
