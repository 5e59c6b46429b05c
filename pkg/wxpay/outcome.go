package wxpay

import (
	"errors"
	"fmt"
)

// Outcome classifies what a call did with the merchant's money.
type Outcome string

// The outcomes of a call.
const (
	// OutcomeSuccess: WeChat accepted the red packet (or answered the query).
	OutcomeSuccess Outcome = "success"
	// OutcomeFailed: WeChat refused; no money moved.
	OutcomeFailed Outcome = "failed"
	// OutcomeUnknown: money may have moved. Only a retry with the same
	// mch_billno, or a later gethbinfo, tells.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeNotFound: gethbinfo has no record of the billno (yet). It is
	// not proof that a send failed.
	OutcomeNotFound Outcome = "not_found"
)

// Codes the client reports for answers that carry no err_code from WeChat.
const (
	CodeTimeout      = "TIMEOUT"       // the deadline passed before an answer
	CodeNetwork      = "NETWORK_ERROR" // no answer: connection refused, reset, TLS failure
	CodeHTTPStatus   = "HTTP_ERROR"    // an HTTP status other than 200
	CodeBadResponse  = "BAD_RESPONSE"  // an answer that is not a readable APIv2 document
	CodeBadSignature = "BAD_SIGNATURE" // an answer whose signature does not verify
	CodeMismatch     = "MISMATCH"      // an answer about another billno or merchant
	CodeUnknownState = "UNKNOWN_STATE" // an answer that is neither success nor a known refusal
	CodeNotAttempted = "NOT_ATTEMPTED" // the deadline passed before anything was sent
)

// Error is a call that did not succeed. Outcome says whether money may have
// moved; Code is WeChat's err_code, or one of the Code constants when
// WeChat's answer was missing or unreadable.
type Error struct {
	// API is the call, such as "sendminiprogramhb".
	API string
	// MchBillno is the red packet's billno (the idempotency key).
	MchBillno string
	// Outcome is OutcomeFailed, OutcomeUnknown or OutcomeNotFound.
	Outcome Outcome
	// Code is WeChat's err_code or a Code constant.
	Code string
	// Message is WeChat's err_code_des (or return_msg), or a description.
	Message string
	// Retryable says whether a later retry with the same billno may help.
	Retryable bool
	// Attempts is how many requests were sent.
	Attempts int
	// HTTPStatus is the last HTTP status seen, 0 if none.
	HTTPStatus int
	// Err is the underlying transport or decoding error, if any.
	Err error
}

// Error describes the call, its outcome and code, never secrets.
func (e *Error) Error() string {
	s := fmt.Sprintf("wxpay: %s %s: %s %s", e.API, e.MchBillno, e.Outcome, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// OutcomeOf returns the outcome err stands for: success for nil, the
// Outcome of an *Error, and unknown for anything else, since an error the
// client cannot explain may have moved money.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OutcomeSuccess
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome
	}
	var v *ValidationError
	if errors.As(err, &v) {
		return OutcomeFailed
	}
	return OutcomeUnknown
}

// retryKind says how the client retries after an answer.
type retryKind uint8

const (
	retryNever   retryKind = iota // final answer
	retrySame                     // retry after the minimum interval, same billno
	retryBackoff                  // retry with growing waits, same billno
)

// verdict is the classification of one err_code.
type verdict struct {
	outcome Outcome
	retry   retryKind
}

// errCodeVerdicts maps WeChat's red packet err_codes to what they mean for
// the money. Codes not listed are unknown and retried with the same billno.
var errCodeVerdicts = map[string]verdict{
	"SYSTEMERROR":       {OutcomeUnknown, retrySame},
	"PROCESSING":        {OutcomeUnknown, retryNever},
	"FREQ_LIMIT":        {OutcomeFailed, retryBackoff},
	"CA_ERROR":          {OutcomeFailed, retryNever},
	"SIGN_ERROR":        {OutcomeFailed, retryNever},
	"NOTENOUGH":         {OutcomeFailed, retryNever},
	"SENDNUM_LIMIT":     {OutcomeFailed, retryNever},
	"SENDAMOUNT_LIMIT":  {OutcomeFailed, retryNever},
	"RCVDAMOUNT_LIMIT":  {OutcomeFailed, retryNever},
	"MONEY_LIMIT":       {OutcomeFailed, retryNever},
	"NO_AUTH":           {OutcomeFailed, retryNever},
	"ILLEGAL_APPID":     {OutcomeFailed, retryNever},
	"OPENID_ERROR":      {OutcomeFailed, retryNever},
	"MSGAPPID_ERROR":    {OutcomeFailed, retryNever},
	"ACCEPTMODE_ERROR":  {OutcomeFailed, retryNever},
	"API_METHOD_CLOSED": {OutcomeFailed, retryNever},
	"PARAM_ERROR":       {OutcomeFailed, retryNever},
	"XML_ERROR":         {OutcomeFailed, retryNever},
	"SEND_FAILED":       {OutcomeFailed, retryNever},
	"FATAL_ERROR":       {OutcomeFailed, retryNever},
}

// classifyErrCode returns the verdict for a WeChat err_code. NOT_FOUND is
// only meaningful for gethbinfo; for a send it is as unknown as any other
// unexpected code.
func classifyErrCode(code string, query bool) verdict {
	if code == "NOT_FOUND" && query {
		return verdict{OutcomeNotFound, retryNever}
	}
	if v, ok := errCodeVerdicts[code]; ok {
		return v
	}
	return verdict{OutcomeUnknown, retrySame}
}

// IsCredentialError reports whether err is WeChat refusing the merchant's
// credentials (CA_ERROR or SIGN_ERROR): the certificate or APIv2 key is
// wrong, perhaps because the secret was rotated.
func IsCredentialError(err error) bool {
	var e *Error
	// Only a definite refusal: after an unknown try, a resend with
	// refreshed credentials could pay a second time.
	return errors.As(err, &e) && e.Outcome == OutcomeFailed && (e.Code == "CA_ERROR" || e.Code == "SIGN_ERROR")
}
