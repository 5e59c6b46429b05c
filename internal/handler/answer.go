package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Codes the functions answer with besides WeChat's err_codes.
const (
	CodeInvalidRequest = "INVALID_REQUEST"
	CodeConfig         = "CONFIG_ERROR"
	CodeInternal       = "INTERNAL_ERROR"
)

// answer is the outcome of one request: its HTTP status, JSON body and
// what the request log line reports.
type answer struct {
	status    int
	body      []byte
	billno    string
	openid    string
	outcome   wxpay.Outcome
	code      string
	attempts  int
	retryable bool
	// send: the answer is to a send request that passed validation (the
	// metric Sends counts it, unless replayed: the metric Replays does).
	send, replayed bool
}

// errorBody is the contract's failure body.
type errorBody struct {
	Error     errorDetail   `json:"error"`
	MchBillno string        `json:"mch_billno,omitempty"`
	Ledger    *ledgerRecord `json:"ledger,omitempty"`
}

// ledgerRecord is the ledger's record of a billno as the query function
// shows it.
type ledgerRecord struct {
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	RecordedAt time.Time `json:"recorded_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// recordedQuery is gethbinfo's answer with the ledger's record.
type recordedQuery struct {
	*wxpay.QueryResult
	Ledger *ledgerRecord `json:"ledger"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Outcome   string `json:"outcome"`
	Retryable bool   `json:"retryable"`
	Field     string `json:"field,omitempty"`
}

// statusByCode maps WeChat's refusals to HTTP statuses. A refusal not
// listed is 422: the request was understood and refused.
var statusByCode = map[string]int{
	"PARAM_ERROR":       http.StatusBadRequest,
	"XML_ERROR":         http.StatusBadRequest,
	"OPENID_ERROR":      http.StatusBadRequest,
	"ILLEGAL_APPID":     http.StatusBadRequest,
	"MSGAPPID_ERROR":    http.StatusBadRequest,
	"NO_AUTH":           http.StatusForbidden,
	"API_METHOD_CLOSED": http.StatusForbidden,
	"ACCEPTMODE_ERROR":  http.StatusForbidden,
	"FATAL_ERROR":       http.StatusConflict,
	"FREQ_LIMIT":        http.StatusTooManyRequests,
	// The deadline passed before anything was sent.
	wxpay.CodeNotAttempted: http.StatusServiceUnavailable,
	// The merchant's credentials were refused: a configuration fault.
	"CA_ERROR":   http.StatusInternalServerError,
	"SIGN_ERROR": http.StatusInternalServerError,
}

// success answers 200 with the result's JSON.
func success(c call, result any, attempts int) answer {
	body, err := marshal(result)
	if err != nil {
		// The money moved; the answer could not be written. Say unknown
		// so the caller queries rather than resends with a new billno.
		return failure(c, &wxpay.Error{Outcome: wxpay.OutcomeUnknown, Code: CodeInternal, Message: "could not encode the result", MchBillno: c.billno})
	}
	return answer{status: http.StatusOK, body: body, billno: c.billno, openid: c.openid, outcome: wxpay.OutcomeSuccess, attempts: attempts}
}

// failure maps an error to its status and body.
func failure(c call, err error) answer {
	a := answer{billno: c.billno, openid: c.openid}
	d := errorDetail{Message: err.Error()}
	var (
		verr *wxpay.ValidationError
		cerr *credstore.ConfigError
		werr *wxpay.Error
		perr *payout.Error
	)
	switch {
	case errors.As(err, &verr):
		a.status, d.Code, d.Outcome, d.Field = http.StatusBadRequest, CodeInvalidRequest, string(wxpay.OutcomeFailed), verr.Field
		d.Message = verr.Field + ": " + verr.Reason
	case errors.As(err, &cerr):
		// Nothing was sent: no money moved.
		a.status, d.Code, d.Outcome = http.StatusInternalServerError, CodeConfig, string(wxpay.OutcomeFailed)
		if cerr.Temporary() {
			a.status, d.Retryable = http.StatusServiceUnavailable, true
		}
		d.Message = cerr.Error()
	case errors.As(err, &perr):
		// The send path refused before sending: no money moved.
		a.status, d.Code, d.Outcome, d.Retryable = http.StatusConflict, perr.Code, string(wxpay.OutcomeFailed), perr.Retryable
		if perr.Code == payout.CodeLedgerUnavailable {
			a.status = http.StatusServiceUnavailable
		}
		d.Message = perr.Message
	case errors.As(err, &werr):
		a.attempts = werr.Attempts
		d.Code, d.Outcome, d.Retryable = werr.Code, string(werr.Outcome), werr.Retryable
		d.Message = werr.Message
		if d.Message == "" {
			d.Message = werr.Code
		}
		a.status = statusOf(werr)
	default:
		// An error nothing here explains: money may have moved.
		a.status, d.Code, d.Outcome, d.Retryable = http.StatusInternalServerError, CodeInternal, string(wxpay.OutcomeUnknown), true
		d.Message = "internal error"
	}
	a.outcome, a.code, a.retryable = wxpay.Outcome(d.Outcome), d.Code, d.Retryable
	a.body, _ = marshal(errorBody{Error: d, MchBillno: c.billno, Ledger: c.record})
	return a
}

// statusOf is the HTTP status of a WeChat Pay outcome.
func statusOf(e *wxpay.Error) int {
	switch e.Outcome {
	case wxpay.OutcomeNotFound:
		return http.StatusNotFound
	case wxpay.OutcomeFailed:
		if s, ok := statusByCode[e.Code]; ok {
			return s
		}
		return http.StatusUnprocessableEntity
	}
	// Unknown: money may have moved.
	switch e.Code {
	case wxpay.CodeTimeout:
		return http.StatusGatewayTimeout
	case "SYSTEMERROR", "PROCESSING":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// httpResponse is the API Gateway response carrying status and body:
// events.APIGatewayProxyResponse for REST APIs, and
// events.APIGatewayV2HTTPResponse for HTTP APIs.
func httpResponse(src Source, status int, body []byte) ([]byte, error) {
	headers := map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"}
	if src == SourceHTTP {
		return marshal(events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: headers, Body: string(body)})
	}
	return marshal(events.APIGatewayProxyResponse{StatusCode: status, Headers: headers, Body: string(body)})
}

// marshal writes v as compact JSON (encoding/json, whose bytes the answers
// have always had) without HTML escaping: the answer is data for programs,
// and WeChat's package keeps its & as is.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
