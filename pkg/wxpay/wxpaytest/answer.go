package wxpaytest

import (
	"net/http"
	"strconv"
	"strings"
)

// xmlField is one element of an answer: strings go in CDATA, numbers as
// plain text, as WeChat writes them.
type xmlField struct {
	name, value string
	number      bool
}

// answer is one APIv2 answer document, fields in WeChat's order.
type answer struct {
	fields  []xmlField
	records [][]xmlField // gethbinfo's <hblist>; nil for none
	errCode string       // for the log: "" on success
}

func (a *answer) add(name, value string) {
	if value != "" {
		a.fields = append(a.fields, xmlField{name: name, value: value})
	}
}

func (a *answer) addNumber(name string, n int64) {
	a.fields = append(a.fields, xmlField{name: name, value: strconv.FormatInt(n, 10), number: true})
}

// addEcho adds a request field echoed back as text, when present.
func (a *answer) addEcho(p map[string]string, names ...string) {
	for _, name := range names {
		a.add(name, p[name])
	}
}

// bytes renders the document: <xml>, one element a line.
func (a *answer) bytes() []byte {
	n := 16
	for _, f := range a.fields {
		n += 2*len(f.name) + len(f.value) + 18
	}
	for _, rec := range a.records {
		for _, f := range rec {
			n += 2*len(f.name) + len(f.value) + 18
		}
		n += 20
	}
	buf := make([]byte, 0, n+24)
	buf = append(buf, "<xml>\n"...)
	for _, f := range a.fields {
		buf = appendField(buf, f)
	}
	if a.records != nil {
		buf = append(buf, "<hblist>\n"...)
		for _, rec := range a.records {
			buf = append(buf, "<hbinfo>\n"...)
			for _, f := range rec {
				buf = appendField(buf, f)
			}
			buf = append(buf, "</hbinfo>\n"...)
		}
		buf = append(buf, "</hblist>\n"...)
	}
	return append(buf, "</xml>"...)
}

func appendField(buf []byte, f xmlField) []byte {
	buf = append(buf, '<')
	buf = append(buf, f.name...)
	buf = append(buf, '>')
	if f.number {
		buf = append(buf, f.value...)
	} else {
		buf = append(buf, "<![CDATA["...)
		// A "]]>" inside a value ends one CDATA section and starts
		// another, so that any echoed text survives.
		buf = append(buf, strings.ReplaceAll(f.value, "]]>", "]]]]><![CDATA[>")...)
		buf = append(buf, "]]>"...)
	}
	buf = append(buf, "</"...)
	buf = append(buf, f.name...)
	return append(buf, ">\n"...)
}

// WeChat's texts for the red packet err_codes (err_code_des).
var errText = map[string]string{
	"SUCCESS":           "发放成功",
	"NO_AUTH":           "发放失败，此请求可能存在风险，已被微信拦截",
	"SENDNUM_LIMIT":     "该用户今日领取红包个数超过限制",
	"ILLEGAL_APPID":     "非法appid，请确认是否为公众号的appid，不能为APP的appid",
	"MONEY_LIMIT":       "红包金额发放限制",
	"SEND_FAILED":       "红包发放失败,请更换单号再重试",
	"FATAL_ERROR":       "该订单已经存在并且参数不一致",
	"CA_ERROR":          "证书出错，请登录微信支付商户平台下载证书",
	"SIGN_ERROR":        "签名错误",
	"SYSTEMERROR":       "请求已受理，请稍后使用原单号查询发放结果",
	"XML_ERROR":         "输入xml参数格式错误",
	"FREQ_LIMIT":        "超过频率限制,请稍后再试",
	"API_METHOD_CLOSED": "你的商户号API发放方式已关闭，请联系管理员在商户平台开启",
	"NOTENOUGH":         "帐号余额不足，请到商户平台充值后再重试",
	"OPENID_ERROR":      "openid和appid不匹配",
	"MSGAPPID_ERROR":    "msgappid与主、子商户号的绑定关系校验失败",
	"ACCEPTMODE_ERROR":  "主、子商户号关系校验失败",
	"PROCESSING":        "请求已受理，请稍后使用原单号查询发放结果",
	"PARAM_ERROR":       "参数错误",
	"SENDAMOUNT_LIMIT":  "您的商户号今日发放金额超过限制，如有需要请登录微信支付商户平台更改API安全配置",
	"RCVDAMOUNT_LIMIT":  "该用户今日领取金额超过限制，如有需要请登录微信支付商户平台更改API安全配置",
	"NOT_FOUND":         "指定单号数据不存在",
}

// Err codes whose answers say return_code FAIL: the request itself was
// not acceptable (communication level), rather than refused by the
// business.
var returnFail = map[string]bool{"XML_ERROR": true, "SIGN_ERROR": true, "CA_ERROR": true, "PARAM_ERROR": true}

// failure builds an error answer: return_code (FAIL for request problems,
// SUCCESS for business refusals), return_msg and err_code_des = msg,
// result_code FAIL, err_code, then the request's identifying fields.
func failure(code, msg string, p map[string]string, query bool) *answer {
	if msg == "" {
		msg = errText[code]
		if msg == "" {
			msg = code
		}
	}
	a := &answer{errCode: code}
	if returnFail[code] {
		a.add("return_code", "FAIL")
	} else {
		a.add("return_code", "SUCCESS")
	}
	a.add("return_msg", msg)
	a.add("result_code", "FAIL")
	a.add("err_code", code)
	a.add("err_code_des", msg)
	if p == nil {
		return a
	}
	if query {
		a.addEcho(p, "mch_billno", "mch_id")
		return a
	}
	a.addEcho(p, "mch_billno", "mch_id", "wxappid", "re_openid")
	if amt := p["total_amount"]; isDigits(amt) && len(amt) < 19 {
		n, _ := strconv.ParseInt(amt, 10, 64)
		a.addNumber("total_amount", n)
	} else {
		a.add("total_amount", amt)
	}
	return a
}

// nginxPage is the HTML page WeChat's nginx gateway answers with status
// and an optional detail line (like "No required SSL certificate was
// sent").
func nginxPage(status int, detail string) []byte {
	title := strconv.Itoa(status) + " " + http.StatusText(status)
	var b strings.Builder
	b.WriteString("<html>\r\n<head><title>")
	if detail != "" {
		b.WriteString(strconv.Itoa(status) + " " + detail)
	} else {
		b.WriteString(title)
	}
	b.WriteString("</title></head>\r\n<body>\r\n<center><h1>")
	b.WriteString(title)
	b.WriteString("</h1></center>\r\n")
	if detail != "" {
		b.WriteString("<center>" + detail + "</center>\r\n")
	}
	b.WriteString("<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
	return []byte(b.String())
}

// busyPage is the front end's "system busy" HTML page.
const busyPage = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>微信支付</title>\n</head>\n<body>\n<p>系统繁忙，请稍后再试。</p>\n</body>\n</html>\n"

func writeHTML(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeXML(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// garble breaks an XML answer: its first end tag loses a letter, so the
// tags no longer match.
func garble(body []byte) []byte {
	out := clone(body)
	s := string(out)
	i := strings.Index(s, "</")
	if i < 0 || i+3 >= len(s) {
		return append(out[:len(out)/2:len(out)/2], "<<>"...)
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 4 {
		return append(out[:len(out)/2:len(out)/2], "<<>"...)
	}
	// Drop the tag name's last letter: </return_code> becomes </return_cod>.
	return append(out[:i+j-1:i+j-1], out[i+j:]...)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
