// Command sendgroup is the Lambda function SendGroupFunction: fission (group) red packets, sendgroupredpack.
// It runs as bootstrap on provided.al2023; see template.yaml.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

func main() {
	// Built once per execution environment: warm invocations reuse the
	// credentials and the TLS connection to WeChat Pay.
	h := handler.FromEnv(context.Background(), handler.SendGroup)
	lambda.Start(h)
}
