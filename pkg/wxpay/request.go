package wxpay

import "strconv"

// The APIv2 paths of the red packet calls.
const (
	PathSendGroupRedpack  = "/mmpaymkttransfers/sendgroupredpack"
	PathSendMiniProgramHB = "/mmpaymkttransfers/sendminiprogramhb"
	PathSendRedpack       = "/mmpaymkttransfers/sendredpack"
	PathGetHBInfo         = "/mmpaymkttransfers/gethbinfo"
)

// SendGroupRequest is a fission (group) red packet, sendgroupredpack. Field
// names in JSON are WeChat's own. mch_id, nonce_str and sign are filled by
// the client.
type SendGroupRequest struct {
	MchBillno    string `json:"mch_billno"`
	WxAppID      string `json:"wxappid"`
	SendName     string `json:"send_name"`
	ReOpenID     string `json:"re_openid"`
	TotalAmount  int64  `json:"total_amount"`
	TotalNum     int64  `json:"total_num"`
	AmtType      string `json:"amt_type"`
	Wishing      string `json:"wishing"`
	ActName      string `json:"act_name"`
	Remark       string `json:"remark"`
	MsgAppID     string `json:"msgappid,omitempty"`
	SubMchID     string `json:"sub_mch_id,omitempty"`
	SceneID      string `json:"scene_id,omitempty"`
	RiskInfo     string `json:"risk_info,omitempty"`
	ConsumeMchID string `json:"consume_mch_id,omitempty"`
}

// SendMiniRequest is a mini-program red packet, sendminiprogramhb. NotifyWay
// may be left empty: it is always MINI_PROGRAM_JSAPI.
type SendMiniRequest struct {
	MchBillno   string `json:"mch_billno"`
	WxAppID     string `json:"wxappid"`
	SendName    string `json:"send_name"`
	ReOpenID    string `json:"re_openid"`
	TotalAmount int64  `json:"total_amount"`
	TotalNum    int64  `json:"total_num"`
	Wishing     string `json:"wishing"`
	ActName     string `json:"act_name"`
	Remark      string `json:"remark"`
	NotifyWay   string `json:"notify_way,omitempty"`
	SceneID     string `json:"scene_id,omitempty"`
}

// SendRequest is a normal cash red packet, sendredpack.
type SendRequest struct {
	MchBillno    string `json:"mch_billno"`
	WxAppID      string `json:"wxappid"`
	SendName     string `json:"send_name"`
	ReOpenID     string `json:"re_openid"`
	TotalAmount  int64  `json:"total_amount"`
	TotalNum     int64  `json:"total_num"`
	Wishing      string `json:"wishing"`
	ClientIP     string `json:"client_ip"`
	ActName      string `json:"act_name"`
	Remark       string `json:"remark"`
	MsgAppID     string `json:"msgappid,omitempty"`
	SubMchID     string `json:"sub_mch_id,omitempty"`
	SceneID      string `json:"scene_id,omitempty"`
	RiskInfo     string `json:"risk_info,omitempty"`
	ConsumeMchID string `json:"consume_mch_id,omitempty"`
}

// QueryRequest asks gethbinfo for a red packet's record. bill_type is
// always MCHT (by merchant billno).
type QueryRequest struct {
	MchBillno string `json:"mch_billno"`
	AppID     string `json:"appid"`
}

// NotifyWayMiniProgram is sendminiprogramhb's only notify_way.
const NotifyWayMiniProgram = "MINI_PROGRAM_JSAPI"

// AmtTypeAllRand is sendgroupredpack's only amt_type.
const AmtTypeAllRand = "ALL_RAND"

// maxFields is the most fields a request signs (sendgroupredpack and
// sendredpack have 17), so that a request's fields fit in an array on the
// stack.
const maxFields = 17

// The fields each API knows, sorted bytewise: the order they are signed in.
// An unknown field makes WeChat answer SIGN_ERROR, so nothing else is sent.
var (
	SendGroupFields = []string{"act_name", "amt_type", "consume_mch_id", "mch_billno", "mch_id", "msgappid", "nonce_str", "re_openid", "remark", "risk_info", "scene_id", "send_name", "sub_mch_id", "total_amount", "total_num", "wishing", "wxappid"}
	SendMiniFields  = []string{"act_name", "mch_billno", "mch_id", "nonce_str", "notify_way", "re_openid", "remark", "scene_id", "send_name", "total_amount", "total_num", "wishing", "wxappid"}
	SendFields      = []string{"act_name", "client_ip", "consume_mch_id", "mch_billno", "mch_id", "msgappid", "nonce_str", "re_openid", "remark", "risk_info", "scene_id", "send_name", "sub_mch_id", "total_amount", "total_num", "wishing", "wxappid"}
	QueryFields     = []string{"appid", "bill_type", "mch_billno", "mch_id", "nonce_str"}
)

// appendFields appends the request's signed fields to dst in SendGroupFields
// order.
func (r *SendGroupRequest) appendFields(dst []field, mchID, nonce string) []field {
	return append(dst,
		field{"act_name", r.ActName},
		field{"amt_type", r.AmtType},
		field{"consume_mch_id", r.ConsumeMchID},
		field{"mch_billno", r.MchBillno},
		field{"mch_id", mchID},
		field{"msgappid", r.MsgAppID},
		field{"nonce_str", nonce},
		field{"re_openid", r.ReOpenID},
		field{"remark", r.Remark},
		field{"risk_info", r.RiskInfo},
		field{"scene_id", r.SceneID},
		field{"send_name", r.SendName},
		field{"sub_mch_id", r.SubMchID},
		field{"total_amount", strconv.FormatInt(r.TotalAmount, 10)},
		field{"total_num", strconv.FormatInt(r.TotalNum, 10)},
		field{"wishing", r.Wishing},
		field{"wxappid", r.WxAppID},
	)
}

// appendFields appends the request's signed fields to dst in SendMiniFields
// order.
func (r *SendMiniRequest) appendFields(dst []field, mchID, nonce string) []field {
	return append(dst,
		field{"act_name", r.ActName},
		field{"mch_billno", r.MchBillno},
		field{"mch_id", mchID},
		field{"nonce_str", nonce},
		field{"notify_way", NotifyWayMiniProgram},
		field{"re_openid", r.ReOpenID},
		field{"remark", r.Remark},
		field{"scene_id", r.SceneID},
		field{"send_name", r.SendName},
		field{"total_amount", strconv.FormatInt(r.TotalAmount, 10)},
		field{"total_num", strconv.FormatInt(r.TotalNum, 10)},
		field{"wishing", r.Wishing},
		field{"wxappid", r.WxAppID},
	)
}

// appendFields appends the request's signed fields to dst in SendFields
// order.
func (r *SendRequest) appendFields(dst []field, mchID, nonce string) []field {
	return append(dst,
		field{"act_name", r.ActName},
		field{"client_ip", r.ClientIP},
		field{"consume_mch_id", r.ConsumeMchID},
		field{"mch_billno", r.MchBillno},
		field{"mch_id", mchID},
		field{"msgappid", r.MsgAppID},
		field{"nonce_str", nonce},
		field{"re_openid", r.ReOpenID},
		field{"remark", r.Remark},
		field{"risk_info", r.RiskInfo},
		field{"scene_id", r.SceneID},
		field{"send_name", r.SendName},
		field{"sub_mch_id", r.SubMchID},
		field{"total_amount", strconv.FormatInt(r.TotalAmount, 10)},
		field{"total_num", strconv.FormatInt(r.TotalNum, 10)},
		field{"wishing", r.Wishing},
		field{"wxappid", r.WxAppID},
	)
}

// appendFields appends the request's signed fields to dst in QueryFields
// order.
func (r *QueryRequest) appendFields(dst []field, mchID, nonce string) []field {
	return append(dst,
		field{"appid", r.AppID},
		field{"bill_type", "MCHT"},
		field{"mch_billno", r.MchBillno},
		field{"mch_id", mchID},
		field{"nonce_str", nonce},
	)
}

// buildBody signs fields (sorted, empty values skipped) with key and
// returns the <xml> request body with the sign field last.
func buildBody(fields []field, key string) []byte {
	size := len("<xml></xml><sign></sign>") + 32
	for _, f := range fields {
		size += 2*len(f.name) + len(f.value) + len("<></>") + len("<![CDATA[]]>")
	}
	body := make([]byte, 0, size)
	body = append(body, "<xml>"...)
	for _, f := range fields {
		if f.value != "" {
			body = appendElement(body, f.name, f.value)
		}
	}
	body = append(body, "<sign>"...)
	body = signFields(body, fields, key, SignMD5)
	return append(body, "</sign></xml>"...)
}
