// Command send is the Lambda function SendFunction: normal cash red packets, sendredpack.
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
	h := handler.FromEnv(context.Background(), handler.Send)
	lambda.Start(h)
}
