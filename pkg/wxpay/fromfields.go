package wxpay

import (
	"context"
	"maps"
	"slices"
	"strconv"
)

// RedpackRequest is a red packet request of one of the three send APIs:
// *SendRequest, *SendMiniRequest or *SendGroupRequest.
type RedpackRequest interface {
	Validate() error
	Fields(mchID string) map[string]string
}

// RequestFromFields rebuilds the request of api ("sendredpack",
// "sendminiprogramhb" or "sendgroupredpack") from its signed fields as the
// request's Fields method listed them (mch_id among them, without
// nonce_str and sign), as a ledger stores them, so that it can be sent
// again exactly: the rebuilt request's Fields(fields["mch_id"]) equals
// fields. Fields that would not come back the same (a field the API does
// not sign, an amount not written as Fields writes it, an empty value) are
// a *ValidationError naming the field. The request is not validated
// otherwise: the client validates it before sending, as any request.
func RequestFromFields(api string, fields map[string]string) (RedpackRequest, error) {
	f := func(name string) string { return fields[name] }
	if f("mch_id") == "" {
		return nil, invalid("mch_id", "is required")
	}
	amount, err := fieldInt(fields, "total_amount")
	if err != nil {
		return nil, err
	}
	num, err := fieldInt(fields, "total_num")
	if err != nil {
		return nil, err
	}
	var r RedpackRequest
	switch api {
	case "sendredpack":
		r = &SendRequest{
			MchBillno: f("mch_billno"), WxAppID: f("wxappid"), SendName: f("send_name"), ReOpenID: f("re_openid"),
			TotalAmount: amount, TotalNum: num, Wishing: f("wishing"), ClientIP: f("client_ip"),
			ActName: f("act_name"), Remark: f("remark"), MsgAppID: f("msgappid"), SubMchID: f("sub_mch_id"),
			SceneID: f("scene_id"), RiskInfo: f("risk_info"), ConsumeMchID: f("consume_mch_id"),
		}
	case "sendminiprogramhb":
		r = &SendMiniRequest{
			MchBillno: f("mch_billno"), WxAppID: f("wxappid"), SendName: f("send_name"), ReOpenID: f("re_openid"),
			TotalAmount: amount, TotalNum: num, Wishing: f("wishing"), ActName: f("act_name"), Remark: f("remark"),
			NotifyWay: f("notify_way"), SceneID: f("scene_id"),
		}
	case "sendgroupredpack":
		r = &SendGroupRequest{
			MchBillno: f("mch_billno"), WxAppID: f("wxappid"), SendName: f("send_name"), ReOpenID: f("re_openid"),
			TotalAmount: amount, TotalNum: num, AmtType: f("amt_type"), Wishing: f("wishing"),
			ActName: f("act_name"), Remark: f("remark"), MsgAppID: f("msgappid"), SubMchID: f("sub_mch_id"),
			SceneID: f("scene_id"), RiskInfo: f("risk_info"), ConsumeMchID: f("consume_mch_id"),
		}
	default:
		return nil, invalid("api", "must be sendredpack, sendminiprogramhb or sendgroupredpack, got %q", api)
	}
	// The request must sign exactly the fields it was rebuilt from.
	back := r.Fields(f("mch_id"))
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if v, ok := back[name]; !ok || v != fields[name] {
			return nil, invalid(name, "does not come back as %s signs it", api)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(back)) {
		if _, ok := fields[name]; !ok {
			return nil, invalid(name, "is signed by %s but missing", api)
		}
	}
	return r, nil
}

// fieldInt reads a whole-number field; absent is 0, left for Validate.
func fieldInt(fields map[string]string, name string) (int64, error) {
	v, ok := fields[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, invalid(name, "must be a whole number")
	}
	return n, nil
}

// SendFields sends the red packet of api with exactly the signed fields
// (RequestFromFields), for the client's own merchant: fields' mch_id must
// be the client's. It is how a stored request is sent again, with its own
// billno and nothing changed. The result is a *SendResult, or a
// *SendMiniResult for sendminiprogramhb; a request that cannot be
// rebuilt exactly is a *ValidationError, and nothing is sent.
func (c *Client) SendFields(ctx context.Context, api string, fields map[string]string) (any, error) {
	if fields["mch_id"] != c.creds.MchID {
		return nil, invalid("mch_id", "is not the client's merchant")
	}
	r, err := RequestFromFields(api, fields)
	if err != nil {
		return nil, err
	}
	switch r := r.(type) {
	case *SendRequest:
		return result(c.SendRedpack(ctx, r))
	case *SendMiniRequest:
		return result(c.SendMiniProgramHB(ctx, r))
	default:
		return result(c.SendGroupRedpack(ctx, r.(*SendGroupRequest)))
	}
}

// result returns a call's result as any: nil, not a typed nil, with an
// error.
func result[R any](res *R, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return res, nil
}
