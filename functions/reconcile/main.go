// Command reconcile is the Lambda function ReconcileFunction: it follows
// the ledger's red packets to their end with gethbinfo, on a schedule (one
// pass over the due items per EventBridge or Scheduler invocation, or a
// direct invoke with {}), or one billno on demand ({"mch_billno": "..."}).
// It runs as bootstrap on provided.al2023; see template.yaml.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

func main() {
	// Built once per execution environment: warm invocations reuse the
	// credentials, the TLS connection to WeChat Pay and the ledger client.
	h := handler.ReconcileFromEnv(context.Background())
	lambda.Start(h)
}
