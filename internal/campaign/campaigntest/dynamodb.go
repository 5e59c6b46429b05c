package campaigntest

import (
	"fmt"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

var tables atomic.Int64

// notInName is what a table name cannot hold.
var notInName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// DynamoDBTable creates a campaign table (campaign.TableInput) of its own
// for t on moto_server (mototest.Start: skipped without moto_server, or
// failed when CI=true) and returns the store and window over it, a client
// of the endpoint with test credentials, and the table's name.
func DynamoDBTable(t testing.TB) (*campaign.DynamoDB, *dynamodb.Client, string) {
	t.Helper()
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(mototest.Start(t)),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	// Unique in the test binary, whose tests may share one server.
	name := fmt.Sprintf("campaign-%d-%s", tables.Add(1), notInName.ReplaceAllString(t.Name(), "-"))
	if len(name) > 255 {
		name = name[:255]
	}
	ctx := t.Context()
	if _, err := client.CreateTable(ctx, campaign.TableInput(name)); err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	return campaign.NewDynamoDB(client, name), client, name
}
