package wxpay

import (
	"context"
	"strconv"
)

// SendResult is a red packet WeChat accepted. JSON names are WeChat's.
type SendResult struct {
	MchBillno   string `json:"mch_billno"`
	MchID       string `json:"mch_id"`
	WxAppID     string `json:"wxappid"`
	ReOpenID    string `json:"re_openid"`
	TotalAmount int64  `json:"total_amount"`
	SendListID  string `json:"send_listid"`
	// Attempts is how many requests the call took.
	Attempts int `json:"-"`
}

// SendMiniResult is an accepted mini-program red packet with what the
// mini-program passes to wx.sendBizRedPacket.
type SendMiniResult struct {
	SendResult
	// Package is WeChat's raw package string.
	Package string `json:"package"`
	// JSAPI holds the parameters of wx.sendBizRedPacket.
	JSAPI JSAPIParams `json:"jsapi"`
}

// QueryResult is gethbinfo's record of a red packet.
type QueryResult struct {
	MchBillno    string     `json:"mch_billno"`
	MchID        string     `json:"mch_id"`
	DetailID     string     `json:"detail_id"`
	Status       string     `json:"status"`
	SendType     string     `json:"send_type,omitempty"`
	HBType       string     `json:"hb_type,omitempty"`
	TotalNum     int64      `json:"total_num"`
	TotalAmount  int64      `json:"total_amount"`
	Reason       string     `json:"reason,omitempty"`
	SendTime     string     `json:"send_time,omitempty"`
	RefundTime   string     `json:"refund_time,omitempty"`
	RefundAmount int64      `json:"refund_amount,omitempty"`
	Wishing      string     `json:"wishing,omitempty"`
	Remark       string     `json:"remark,omitempty"`
	ActName      string     `json:"act_name,omitempty"`
	Receivers    []Receiver `json:"hblist"`
	// Attempts is how many requests the call took.
	Attempts int `json:"-"`
}

// Receiver is one hbinfo entry: who received how much, and when.
type Receiver struct {
	OpenID  string `json:"openid"`
	Amount  int64  `json:"amount"`
	RcvTime string `json:"rcv_time"`
}

// The gethbinfo statuses.
const (
	StatusSending   = "SENDING"
	StatusSent      = "SENT"
	StatusFailed    = "FAILED"
	StatusReceived  = "RECEIVED"
	StatusRefunding = "RFUND_ING"
	StatusRefund    = "REFUND"
)

// request is what every red packet request can do: check itself and list
// its signed fields.
type request interface {
	Validate() error
	appendFields(dst []field, mchID, nonce string) []field
}

// prepare validates r and returns a fresh nonce for it.
func (c *Client) prepare(r request) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	return c.nonce()
}

// Each Build method lists its request's fields in an array on its own
// stack: through the request interface the slice would escape to the heap.

// BuildSendGroup validates r and returns the signed request body.
func (c *Client) BuildSendGroup(r *SendGroupRequest) ([]byte, error) {
	nonce, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	var fields [maxFields]field
	return buildBody(r.appendFields(fields[:0], c.creds.MchID, nonce), c.creds.APIKey), nil
}

// BuildSendMini validates r and returns the signed request body.
func (c *Client) BuildSendMini(r *SendMiniRequest) ([]byte, error) {
	nonce, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	var fields [maxFields]field
	return buildBody(r.appendFields(fields[:0], c.creds.MchID, nonce), c.creds.APIKey), nil
}

// BuildSend validates r and returns the signed request body.
func (c *Client) BuildSend(r *SendRequest) ([]byte, error) {
	nonce, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	var fields [maxFields]field
	return buildBody(r.appendFields(fields[:0], c.creds.MchID, nonce), c.creds.APIKey), nil
}

// BuildQuery validates r and returns the signed request body.
func (c *Client) BuildQuery(r *QueryRequest) ([]byte, error) {
	nonce, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	var fields [maxFields]field
	return buildBody(r.appendFields(fields[:0], c.creds.MchID, nonce), c.creds.APIKey), nil
}

// SendGroupRedpack sends a fission red packet (sendgroupredpack). An
// invalid request returns a *ValidationError before anything is sent; a
// refusal or an unclear answer returns an *Error. Retries reuse the billno.
func (c *Client) SendGroupRedpack(ctx context.Context, r *SendGroupRequest) (*SendResult, error) {
	body, err := c.BuildSendGroup(r)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, "sendgroupredpack", PathSendGroupRedpack, r.MchBillno, r.ReOpenID, r.TotalAmount, body)
}

// SendRedpack sends a normal cash red packet (sendredpack).
func (c *Client) SendRedpack(ctx context.Context, r *SendRequest) (*SendResult, error) {
	body, err := c.BuildSend(r)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, "sendredpack", PathSendRedpack, r.MchBillno, r.ReOpenID, r.TotalAmount, body)
}

// SendMiniProgramHB sends a mini-program red packet (sendminiprogramhb) and
// signs the wx.sendBizRedPacket parameters for the returned package.
func (c *Client) SendMiniProgramHB(ctx context.Context, r *SendMiniRequest) (*SendMiniResult, error) {
	body, err := c.BuildSendMini(r)
	if err != nil {
		return nil, err
	}
	const api = "sendminiprogramhb"
	p, attempts, err := c.sendCall(ctx, api, PathSendMiniProgramHB, r.MchBillno, r.ReOpenID, r.TotalAmount, body)
	if err != nil {
		return nil, err
	}
	res := &SendMiniResult{SendResult: sendResult(p, r.MchBillno, attempts), Package: p["package"]}
	if res.Package == "" {
		// The red packet was sent, but the page cannot open it.
		return nil, &Error{API: api, MchBillno: r.MchBillno, Outcome: OutcomeUnknown, Code: CodeBadResponse,
			Message: "success without a package", Attempts: attempts}
	}
	if res.JSAPI, err = c.JSAPI(r.WxAppID, res.Package); err != nil {
		return nil, &Error{API: api, MchBillno: r.MchBillno, Outcome: OutcomeUnknown, Code: CodeBadResponse,
			Message: "could not sign the jsapi parameters", Attempts: attempts, Err: err}
	}
	return res, nil
}

// QueryRedpack reads a red packet's record (gethbinfo, bill_type MCHT). A
// billno WeChat does not know yet is an *Error with OutcomeNotFound.
func (c *Client) QueryRedpack(ctx context.Context, r *QueryRequest) (*QueryResult, error) {
	body, err := c.BuildQuery(r)
	if err != nil {
		return nil, err
	}
	ans, attempts, err := c.call(ctx, "gethbinfo", PathGetHBInfo, r.MchBillno, body, true)
	if err != nil {
		return nil, err
	}
	p := ans.params
	res := &QueryResult{
		MchBillno:    p["mch_billno"],
		MchID:        p["mch_id"],
		DetailID:     p["detail_id"],
		Status:       p["status"],
		SendType:     p["send_type"],
		HBType:       p["hb_type"],
		TotalNum:     atoi(p["total_num"]),
		TotalAmount:  atoi(p["total_amount"]),
		Reason:       p["reason"],
		SendTime:     p["send_time"],
		RefundTime:   p["refund_time"],
		RefundAmount: atoi(p["refund_amount"]),
		Wishing:      p["wishing"],
		Remark:       p["remark"],
		ActName:      p["act_name"],
		Receivers:    make([]Receiver, 0, len(ans.records)),
		Attempts:     attempts,
	}
	for _, rec := range ans.records {
		res.Receivers = append(res.Receivers, Receiver{OpenID: rec["openid"], Amount: atoi(rec["amount"]), RcvTime: rec["rcv_time"]})
	}
	return res, nil
}

func (c *Client) send(ctx context.Context, api, path, billno, openid string, amount int64, body []byte) (*SendResult, error) {
	p, attempts, err := c.sendCall(ctx, api, path, billno, openid, amount, body)
	if err != nil {
		return nil, err
	}
	res := sendResult(p, billno, attempts)
	return &res, nil
}

// sendCall sends a red packet and checks that WeChat's success answer is
// about this one: an answer naming another openid or amount means money
// moved in a way nobody asked for, an unknown outcome to investigate.
func (c *Client) sendCall(ctx context.Context, api, path, billno, openid string, amount int64, body []byte) (Params, int, error) {
	ans, attempts, err := c.call(ctx, api, path, billno, body, false)
	if err != nil {
		return nil, attempts, err
	}
	p := ans.params
	mismatch := ""
	var digits [20]byte // the amount compared without allocating its string
	if got := p["re_openid"]; got != "" && got != openid {
		mismatch = "re_openid"
	} else if got := p["total_amount"]; got != "" && got != string(strconv.AppendInt(digits[:0], amount, 10)) {
		mismatch = "total_amount"
	}
	if mismatch != "" {
		return nil, attempts, &Error{API: api, MchBillno: billno, Outcome: OutcomeUnknown, Code: CodeMismatch,
			Message: "the success answer names another " + mismatch, Attempts: attempts}
	}
	return p, attempts, nil
}

func sendResult(p Params, billno string, attempts int) SendResult {
	return SendResult{
		MchBillno:   billno,
		MchID:       p["mch_id"],
		WxAppID:     p["wxappid"],
		ReOpenID:    p["re_openid"],
		TotalAmount: atoi(p["total_amount"]),
		SendListID:  p["send_listid"],
		Attempts:    attempts,
	}
}

// atoi parses a decimal field, 0 when absent or malformed (display only;
// amounts that matter come from the request).
func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
