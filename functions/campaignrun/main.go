// Command campaignrun is the Lambda function CampaignRunFunction: every
// minute it plans and sends the campaigns that have rows left and no
// runner, at the stack's rate, and writes the reports that are due; a
// direct invoke with {"campaign_id": "..."} runs that campaign. It runs as
// bootstrap on provided.al2023; see template.yaml.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

func main() {
	// Built once per execution environment: warm invocations reuse the
	// AWS clients, the merchant's credentials and the TLS connection to
	// WeChat Pay.
	h := handler.CampaignRunFromEnv(context.Background())
	lambda.Start(h)
}
