package campaign_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/campaign/campaigntest"
)

// TestMemory runs the Store contract on Memory.
func TestMemory(t *testing.T) {
	campaigntest.Run(t, func(t *testing.T) campaign.Store { return campaign.NewMemory() })
}

// TestMemoryWindow runs the Window contract on MemoryWindow.
func TestMemoryWindow(t *testing.T) {
	campaigntest.RunWindow(t, func(t *testing.T) campaign.Window { return campaign.NewMemoryWindow() })
}

// TestDynamoDB runs the Store contract on moto_server's DynamoDB, a table
// for each subtest.
func TestDynamoDB(t *testing.T) {
	campaigntest.Run(t, func(t *testing.T) campaign.Store {
		d, _, _ := campaigntest.DynamoDBTable(t)
		return d
	})
}

// TestDynamoDBWindow runs the Window contract on moto_server's DynamoDB, a
// table for each subtest.
func TestDynamoDBWindow(t *testing.T) {
	campaigntest.RunWindow(t, func(t *testing.T) campaign.Window {
		d, _, _ := campaigntest.DynamoDBTable(t)
		return d
	})
}

// TestDynamoDBSingleTable checks that campaigns and pacing items share the
// table without meeting: List and Get never return a pacing item, and
// the window never touches a campaign.
func TestDynamoDBSingleTable(t *testing.T) {
	ctx := context.Background()
	d, _, _ := campaigntest.DynamoDBTable(t)
	now := time.Unix(1_700_000_000, 0)
	// A campaign whose id is a merchant's, next to that merchant's pacing
	// item.
	c := campaigntest.Full("1900000109")
	c.State = campaign.Running
	if err := d.Create(ctx, c); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if ok, err := d.Take(ctx, "1900000109", now, 5); !ok || err != nil {
		t.Fatalf("Take: %v, %v", ok, err)
	}
	if err := d.Count(ctx, "1900000110", now); err != nil {
		t.Fatalf("Count: %v", err)
	}
	got, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 1 || got[0].ID != c.ID || got[0].Version != 1 || !reflect.DeepEqual(got[0].Settings, c.Settings) {
		t.Fatalf("List: %+v, want only campaign %s at version 1", got, c.ID)
	}
	for _, id := range []string{campaign.PacePrefix + "1900000109", campaign.PacePrefix + "1900000110"} {
		if _, err := d.Get(ctx, id); !errors.Is(err, campaign.ErrNotFound) {
			t.Errorf("Get %s: %v, want ErrNotFound", id, err)
		}
	}
	if err := d.Put(ctx, c); err != nil {
		t.Fatalf("Put after Take: %v", err)
	}
}

// failingDynamoDB answers every request with err.
type failingDynamoDB struct{ err error }

func (f failingDynamoDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, f.err
}

func (f failingDynamoDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, f.err
}

func (f failingDynamoDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, f.err
}

func (f failingDynamoDB) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return nil, f.err
}

// TestDynamoDBErrors checks that an error other than a failed condition is
// returned wrapped, by every method, and is not taken for one of the
// Store's errors nor for a full second.
func TestDynamoDBErrors(t *testing.T) {
	ctx := context.Background()
	throttled := errors.New("throttled")
	d := campaign.NewDynamoDB(failingDynamoDB{err: throttled}, "campaigns")
	now := time.Unix(1_700_000_000, 0)
	c := &campaign.Campaign{ID: "c1", State: campaign.Running, Version: 1}
	tests := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return d.Create(ctx, c) }},
		{"Get", func() error { _, err := d.Get(ctx, "c1"); return err }},
		{"Put", func() error { return d.Put(ctx, c) }},
		{"List", func() error { _, err := d.List(ctx); return err }},
		{"Take", func() error { _, err := d.Take(ctx, "1900000109", now, 5); return err }},
		{"Count", func() error { return d.Count(ctx, "1900000109", now) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, throttled) {
				t.Fatalf("%v, want it wrapping %v", err, throttled)
			}
			for _, e := range []error{campaign.ErrExists, campaign.ErrNotFound, campaign.ErrVersion} {
				if errors.Is(err, e) {
					t.Fatalf("%v is %v", err, e)
				}
			}
		})
	}
	if c.Version != 1 {
		t.Errorf("failed writes set Version %d, want 1 kept", c.Version)
	}
}
