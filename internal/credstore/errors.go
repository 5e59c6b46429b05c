package credstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// CodeConfigError is the error code a function answers a *ConfigError
// with.
const CodeConfigError = "CONFIG_ERROR"

// ConfigError is a deployment problem: a variable unset, the secret
// unreadable, or a secret whose content cannot work. Field names what to
// fix ("WXPAY_SECRET_ID", "secret", "secret.apiv2_key", ...); Reason says
// what is wrong. Neither, nor Err, ever carries a secret value, so the
// error may be logged and returned to callers as it is.
type ConfigError struct {
	// Field is the variable or secret field to fix: "WXPAY_SECRET_ID",
	// "WXPAY_SECRET_TTL", "AWS_REGION", "secret" (the secret as a whole:
	// not found, access denied, throttled, not JSON), "secret.mch_id",
	// "secret.apiv2_key", "secret.apiclient_cert", "secret.apiclient_key",
	// "secret.apiclient_p12", "secret.apiclient_p12_password", or "wxpay"
	// (the WeChat client could not be built from valid credentials).
	Field string
	// Reason says what is wrong, with the AWS error code when AWS refused.
	Reason string
	// Err is the underlying error (the SDK's, or one of the wxpay.Err*
	// sentinels), if any. It carries no secret value either.
	Err error
	// Transient marks problems that may pass without anyone fixing
	// anything: throttling, network failures, 5xx answers from AWS, a
	// deadline passing during the fetch. See Temporary.
	Transient bool
}

// Error returns "configuration error: <field>: <reason>".
func (e *ConfigError) Error() string {
	return "configuration error: " + e.Field + ": " + e.Reason
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Code returns CodeConfigError.
func (e *ConfigError) Code() string { return CodeConfigError }

// Temporary reports whether a retry later may succeed without a fix
// (answer 503), as opposed to a deployment that must be fixed (500).
func (e *ConfigError) Temporary() bool { return e.Transient }

// HTTPStatus is the status a function answers the error with: 503 when
// Temporary, 500 otherwise.
func (e *ConfigError) HTTPStatus() int {
	if e.Transient {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// LogValue logs the error as a group of its field, reason and
// temporariness.
func (e *ConfigError) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("code", CodeConfigError),
		slog.String("field", e.Field),
		slog.String("reason", e.Reason),
		slog.Bool("temporary", e.Transient),
	)
}

// fromAWS explains a failed GetSecretValue call.
func fromAWS(ctx context.Context, err error) *ConfigError {
	ce := &ConfigError{Field: "secret", Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch code {
		case "ResourceNotFoundException":
			ce.Reason = code + ": no such secret in this account and region (check WXPAY_SECRET_ID and AWS_REGION)"
		case "AccessDeniedException":
			ce.Reason = code + ": GetSecretValue denied: the function's role needs secretsmanager:GetSecretValue on the secret"
		case "DecryptionFailure":
			ce.Reason = code + ": the secret's KMS key cannot decrypt it: the role needs kms:Decrypt on a customer-managed key"
		case "InvalidRequestException":
			ce.Reason = code + ": the secret cannot be read now (deleted, or scheduled for deletion?)"
		case "InvalidParameterException", "ValidationException":
			ce.Field = "WXPAY_SECRET_ID"
			ce.Reason = code + ": not a valid secret name or ARN"
		case "UnrecognizedClientException", "InvalidSignatureException", "InvalidClientTokenId",
			"ExpiredTokenException", "MissingAuthenticationTokenException", "IncompleteSignature":
			ce.Reason = code + ": AWS refused the function's credentials"
		case "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
			"LimitExceededException", "ProvisionedThroughputExceededException":
			ce.Reason = code + ": GetSecretValue throttled; retry later"
			ce.Transient = true
		case "InternalServiceError", "InternalFailure", "InternalServerError",
			"ServiceUnavailable", "ServiceUnavailableException":
			ce.Reason = code + ": Secrets Manager failed; retry later"
			ce.Transient = true
		default:
			ce.Reason = code + ": GetSecretValue failed"
			var re *awshttp.ResponseError
			if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
				ce.Transient = true
			}
		}
		return ce
	}
	var mr *aws.MissingRegionError
	switch {
	case errors.As(err, &mr):
		ce.Field, ce.Reason = "AWS_REGION", "not set, so Secrets Manager cannot be reached"
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		ce.Reason, ce.Transient = "no answer from Secrets Manager before the deadline", true
	case isNetError(err):
		ce.Reason, ce.Transient = "cannot reach Secrets Manager: "+netErrorText(err), true
	default:
		// The SDK's messages (credential resolution, endpoint rules)
		// carry no secret value.
		ce.Reason = fmt.Sprintf("GetSecretValue failed: %v", err)
	}
	return ce
}

func isNetError(err error) bool {
	var ne net.Error
	var se *smithyhttp.RequestSendError
	return errors.As(err, &ne) || errors.As(err, &se)
}

// netErrorText is the innermost network error: "connection refused",
// not the SDK's whole chain.
func netErrorText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return "network error"
}
