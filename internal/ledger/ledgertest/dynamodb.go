package ledgertest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// DynamoDBTable creates the ledger table name at the DynamoDB endpoint url
// (a moto_server's, from mototest.Start) and returns a client of that
// endpoint, with test credentials, and the store over the table.
func DynamoDBTable(t testing.TB, url, name string) (*dynamodb.Client, *ledger.DynamoDB) {
	t.Helper()
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if err := ledger.CreateTable(context.Background(), client, name); err != nil {
		t.Fatal(err)
	}
	return client, ledger.NewDynamoDB(client, name)
}
