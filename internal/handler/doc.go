// Package handler is what the four Lambda functions share: it recognises
// the event source by the event's shape (API Gateway REST or HTTP API, SQS,
// direct invoke), decodes and validates the request, calls WeChat Pay
// through pkg/wxpay with credentials from internal/credstore, and maps the
// outcome to an HTTP status and the contract's JSON body. Each request has
// one JSON log line; a send's line carries its CloudWatch metrics in the
// Embedded Metric Format (internal/metrics), and so does the reconciler
// function's line per invocation.
//
// Each functions/<name>/main.go only wires this package and calls
// lambda.Start.
package handler
