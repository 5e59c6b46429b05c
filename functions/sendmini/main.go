// Command sendmini is the Lambda function SendMiniFunction: mini-program red packets, sendminiprogramhb.
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
	h := handler.FromEnv(context.Background(), handler.SendMini)
	lambda.Start(h)
}
