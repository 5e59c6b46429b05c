package handler

import (
	"context"
	"net/http"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Operation is one function's WeChat Pay call: how its request is read and
// which client method sends it.
type Operation interface {
	// Name is the function's name, as logged ("sendmini").
	Name() string
	// API is the WeChat Pay call ("sendminiprogramhb").
	API() string
	// Method is the HTTP method of the function's API route.
	Method() string
	parse(r httpRequest, s Settings) (call, *wxpay.ValidationError)
}

// call is one decoded request, ready to send.
type call struct {
	billno string
	openid string
	// fields are the request's signed fields for a merchant, which the
	// ledger records; nil for a query, which records nothing.
	fields func(mchID string) map[string]string
	send   func(ctx context.Context, c *wxpay.Client) (any, error)
	// caller is the caller's IAM identity, behind API Gateway.
	caller string
	// record is the ledger's record of the billno, which a query's
	// answer shows.
	record *ledgerRecord
}

// operation implements Operation for one request and result type.
type operation[Req any] struct {
	name, api, method string
	// fromHTTP builds the request from an API Gateway request; nil means
	// the request is the JSON body.
	fromHTTP func(r httpRequest, s Settings) *Req
	// fill completes a request decoded from JSON with configured defaults.
	fill     func(r *Req, s Settings)
	billno   func(*Req) string
	openid   func(*Req) string
	fields   func(r *Req, mchID string) map[string]string // nil: not recorded
	send     func(ctx context.Context, c *wxpay.Client, r *Req) (any, error)
	validate func(*Req) error
}

// Name implements Operation.
func (o *operation[Req]) Name() string { return o.name }

// API implements Operation.
func (o *operation[Req]) API() string { return o.api }

// Method implements Operation.
func (o *operation[Req]) Method() string { return o.method }

func (o *operation[Req]) parse(r httpRequest, s Settings) (call, *wxpay.ValidationError) {
	var req *Req
	if o.fromHTTP != nil && r.method != "" {
		req = o.fromHTTP(r, s)
	} else {
		req = new(Req)
		if verr := decodeRequest(r.body, req); verr != nil {
			// Name the billno in the answer and the log when there is a
			// well-formed one, so the caller can match the refusal.
			return call{billno: wellFormedBillno(billnoOf(string(r.body)))}, verr
		}
		if o.fill != nil {
			o.fill(req, s)
		}
	}
	c := call{billno: o.billno(req), openid: o.openid(req), caller: r.caller}
	if err := o.validate(req); err != nil {
		c.billno = wellFormedBillno(c.billno) // a malformed one is not echoed
		verr, _ := err.(*wxpay.ValidationError)
		if verr == nil {
			verr = &wxpay.ValidationError{Field: "body", Reason: err.Error()}
		}
		return c, verr
	}
	c.send = func(ctx context.Context, cl *wxpay.Client) (any, error) { return o.send(ctx, cl, req) }
	if o.fields != nil {
		c.fields = func(mchID string) map[string]string { return o.fields(req, mchID) }
	}
	return c, nil
}

// The four functions' operations.
var (
	// SendGroup sends fission red packets (sendgroupredpack).
	SendGroup Operation = &operation[wxpay.SendGroupRequest]{
		name: "sendgroup", api: "sendgroupredpack", method: http.MethodPost,
		billno:   func(r *wxpay.SendGroupRequest) string { return r.MchBillno },
		openid:   func(r *wxpay.SendGroupRequest) string { return r.ReOpenID },
		validate: func(r *wxpay.SendGroupRequest) error { return r.Validate() },
		fields:   (*wxpay.SendGroupRequest).Fields,
		send: func(ctx context.Context, c *wxpay.Client, r *wxpay.SendGroupRequest) (any, error) {
			return c.SendGroupRedpack(ctx, r)
		},
	}
	// SendMini sends mini-program red packets (sendminiprogramhb).
	SendMini Operation = &operation[wxpay.SendMiniRequest]{
		name: "sendmini", api: "sendminiprogramhb", method: http.MethodPost,
		billno:   func(r *wxpay.SendMiniRequest) string { return r.MchBillno },
		openid:   func(r *wxpay.SendMiniRequest) string { return r.ReOpenID },
		validate: func(r *wxpay.SendMiniRequest) error { return r.Validate() },
		fields:   (*wxpay.SendMiniRequest).Fields,
		send: func(ctx context.Context, c *wxpay.Client, r *wxpay.SendMiniRequest) (any, error) {
			return c.SendMiniProgramHB(ctx, r)
		},
	}
	// Send sends normal cash red packets (sendredpack).
	Send Operation = &operation[wxpay.SendRequest]{
		name: "send", api: "sendredpack", method: http.MethodPost,
		billno:   func(r *wxpay.SendRequest) string { return r.MchBillno },
		openid:   func(r *wxpay.SendRequest) string { return r.ReOpenID },
		validate: func(r *wxpay.SendRequest) error { return r.Validate() },
		fields:   (*wxpay.SendRequest).Fields,
		send: func(ctx context.Context, c *wxpay.Client, r *wxpay.SendRequest) (any, error) {
			return c.SendRedpack(ctx, r)
		},
	}
	// Query reads red packet records (gethbinfo). Through API Gateway the
	// billno is the path's {mch_billno} and appid the query string's; from
	// SQS or a direct invoke, the JSON object's. A missing appid is the
	// configured default (WXPAY_APPID).
	Query Operation = &operation[wxpay.QueryRequest]{
		name: "query", api: "gethbinfo", method: http.MethodGet,
		fromHTTP: func(r httpRequest, s Settings) *wxpay.QueryRequest {
			q := &wxpay.QueryRequest{MchBillno: r.path["mch_billno"], AppID: r.query["appid"]}
			if q.AppID == "" {
				q.AppID = s.DefaultAppID
			}
			return q
		},
		fill: func(r *wxpay.QueryRequest, s Settings) {
			if r.AppID == "" {
				r.AppID = s.DefaultAppID
			}
		},
		billno:   func(r *wxpay.QueryRequest) string { return r.MchBillno },
		openid:   func(*wxpay.QueryRequest) string { return "" },
		validate: func(r *wxpay.QueryRequest) error { return r.Validate() },
		send: func(ctx context.Context, c *wxpay.Client, r *wxpay.QueryRequest) (any, error) {
			return c.QueryRedpack(ctx, r)
		},
	}
)

// wellFormedBillno returns billno if it has mch_billno's form (1 to 28
// letters and digits), else "": a malformed one is not echoed.
func wellFormedBillno(billno string) string {
	if (&wxpay.QueryRequest{MchBillno: billno, AppID: "x"}).Validate() != nil {
		return ""
	}
	return billno
}
