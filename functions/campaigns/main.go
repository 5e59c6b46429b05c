// Command campaigns is the Lambda function CampaignsFunction: the campaign
// API (POST /campaigns, GET /campaigns/{id}, POST /campaigns/{id}/pause,
// /resume and /cancel) and the bucket's notifications of files dropped
// under incoming/. It checks files and creates campaigns; CampaignRunFunction
// sends them. It runs as bootstrap on provided.al2023; see template.yaml.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

func main() {
	// Built once per execution environment: warm invocations reuse the
	// AWS clients and the merchant's credentials.
	h := handler.CampaignsFromEnv(context.Background())
	lambda.Start(h)
}
