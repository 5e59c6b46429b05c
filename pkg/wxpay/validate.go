package wxpay

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidationError is a request that must not be sent: Field names the
// offending field (WeChat's name for it) and Reason says what is wrong.
type ValidationError struct {
	Field  string
	Reason string
}

// Error names the field and what is wrong with it.
func (e *ValidationError) Error() string {
	return "wxpay: invalid request: " + e.Field + ": " + e.Reason
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits WeChat documents for red packets. String lengths are counted in
// UTF-8 bytes, the strictest reading of WeChat's String(n).
const (
	maxBillnoLen   = 28
	maxAppIDLen    = 32
	maxNameLen     = 32 // send_name, act_name
	maxOpenIDLen   = 32
	maxWishingLen  = 128
	maxRemarkLen   = 256
	maxRiskInfoLen = 128
	maxMchIDLen    = 32

	// Amounts in fen. Without a scene_id a red packet is 1 to 200 yuan.
	sceneFreeMin = 100
	sceneFreeMax = 20000
	// WeChat's bounds for one red packet with a scene_id: 0.30 to 4,999
	// yuan. A merchant's own product settings may be narrower (MONEY_LIMIT).
	sceneMin = 30
	sceneMax = 499900

	groupMinNum = 3
	groupMaxNum = 20
)

// sceneIDs are the documented scene_id values.
var sceneIDs = map[string]bool{
	"PRODUCT_1": true, "PRODUCT_2": true, "PRODUCT_3": true, "PRODUCT_4": true,
	"PRODUCT_5": true, "PRODUCT_6": true, "PRODUCT_7": true, "PRODUCT_8": true,
}

// riskInfoKeys are the keys risk_info may carry.
var riskInfoKeys = map[string]bool{"posttime": true, "mobile": true, "deviceid": true, "clientversion": true}

// Validate checks the request as WeChat documents sendgroupredpack.
func (r *SendGroupRequest) Validate() error {
	if err := firstError(
		checkBillno(r.MchBillno),
		checkText("wxappid", r.WxAppID, maxAppIDLen, true),
		checkText("send_name", r.SendName, maxNameLen, true),
		checkText("re_openid", r.ReOpenID, maxOpenIDLen, true),
		checkPositive("total_amount", r.TotalAmount),
	); err != nil {
		return err
	}
	if r.TotalNum < groupMinNum || r.TotalNum > groupMaxNum {
		return invalid("total_num", "must be %d to %d for a group red packet, got %d", groupMinNum, groupMaxNum, r.TotalNum)
	}
	if avg := r.TotalAmount / r.TotalNum; r.TotalAmount < sceneFreeMin*r.TotalNum || r.TotalAmount > sceneFreeMax*r.TotalNum {
		return invalid("total_amount", "the average red packet must be 100 to 20000 fen (1 to 200 yuan), got about %d fen", avg)
	}
	if r.AmtType != AmtTypeAllRand {
		return invalid("amt_type", "must be %s", AmtTypeAllRand)
	}
	return firstError(
		checkText("wishing", r.Wishing, maxWishingLen, true),
		checkText("act_name", r.ActName, maxNameLen, true),
		checkText("remark", r.Remark, maxRemarkLen, true),
		checkText("msgappid", r.MsgAppID, maxAppIDLen, false),
		checkDigits("sub_mch_id", r.SubMchID),
		checkDigits("consume_mch_id", r.ConsumeMchID),
		checkScene(r.SceneID, r.TotalAmount),
		checkRiskInfo(r.RiskInfo),
	)
}

// Validate checks the request as WeChat documents sendminiprogramhb.
func (r *SendMiniRequest) Validate() error {
	if r.NotifyWay != "" && r.NotifyWay != NotifyWayMiniProgram {
		return invalid("notify_way", "must be %s", NotifyWayMiniProgram)
	}
	return firstError(
		checkBillno(r.MchBillno),
		checkText("wxappid", r.WxAppID, maxAppIDLen, true),
		checkText("send_name", r.SendName, maxNameLen, true),
		checkText("re_openid", r.ReOpenID, maxOpenIDLen, true),
		checkPositive("total_amount", r.TotalAmount),
		checkSingle(r.TotalNum),
		checkText("wishing", r.Wishing, maxWishingLen, true),
		checkText("act_name", r.ActName, maxNameLen, true),
		checkText("remark", r.Remark, maxRemarkLen, true),
		checkScene(r.SceneID, r.TotalAmount),
	)
}

// Validate checks the request as WeChat documents sendredpack.
func (r *SendRequest) Validate() error {
	return firstError(
		checkBillno(r.MchBillno),
		checkText("wxappid", r.WxAppID, maxAppIDLen, true),
		checkText("send_name", r.SendName, maxNameLen, true),
		checkText("re_openid", r.ReOpenID, maxOpenIDLen, true),
		checkPositive("total_amount", r.TotalAmount),
		checkSingle(r.TotalNum),
		checkText("wishing", r.Wishing, maxWishingLen, true),
		checkClientIP(r.ClientIP),
		checkText("act_name", r.ActName, maxNameLen, true),
		checkText("remark", r.Remark, maxRemarkLen, true),
		checkText("msgappid", r.MsgAppID, maxAppIDLen, false),
		checkDigits("sub_mch_id", r.SubMchID),
		checkDigits("consume_mch_id", r.ConsumeMchID),
		checkScene(r.SceneID, r.TotalAmount),
		checkRiskInfo(r.RiskInfo),
	)
}

// Validate checks the request as WeChat documents gethbinfo.
func (r *QueryRequest) Validate() error {
	return firstError(
		checkBillno(r.MchBillno),
		checkText("appid", r.AppID, maxAppIDLen, true),
	)
}

func firstError(errs ...*ValidationError) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkBillno: 1 to 28 characters of [0-9A-Za-z]. The billno is the red
// packet's idempotency key, so it is never generated or altered here.
func checkBillno(billno string) *ValidationError {
	if billno == "" {
		return invalid("mch_billno", "is required")
	}
	if len(billno) > maxBillnoLen {
		return invalid("mch_billno", "must be at most %d characters, got %d", maxBillnoLen, len(billno))
	}
	for i := 0; i < len(billno); i++ {
		c := billno[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return invalid("mch_billno", "may hold only letters and digits")
		}
	}
	return nil
}

// checkText: present if required, at most max UTF-8 bytes, XML-safe and free
// of control characters (WeChat's display fields are single lines).
func checkText(name, value string, max int, required bool) *ValidationError {
	if value == "" {
		if required {
			return invalid(name, "is required")
		}
		return nil
	}
	if len(value) > max {
		return invalid(name, "must be at most %d bytes of UTF-8, got %d", max, len(value))
	}
	// One pass for both character rules; an invalid character is reported
	// before a control character, wherever they are.
	control := false
	for i, r := range value {
		switch {
		case r < 0x20 || r == 0x7f:
			control = true
		case r < utf8.RuneSelf:
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(value[i:]); size == 1 {
				return invalid(name, "must be valid UTF-8 text")
			}
		case r > 0xD7FF && r < 0xE000, r == 0xFFFE, r == 0xFFFF:
			return invalid(name, "must be valid UTF-8 text")
		}
	}
	if control {
		return invalid(name, "must not contain control characters")
	}
	// As strings.TrimSpace(value) != value, without its slow path for
	// values that start with a non-ASCII character.
	first, _ := utf8.DecodeRuneInString(value)
	last, _ := utf8.DecodeLastRuneInString(value)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return invalid(name, "must not start or end with white space")
	}
	return nil
}

// checkPositive: a whole number of fen, within WeChat's bounds for one red
// packet (a mistyped amount never reaches WeChat).
func checkPositive(name string, fen int64) *ValidationError {
	if fen <= 0 {
		return invalid(name, "must be a positive whole number of fen, got %d", fen)
	}
	if fen < sceneMin || fen > sceneMax {
		return invalid(name, "must be %d to %d fen (0.30 to 4999 yuan), got %d", sceneMin, sceneMax, fen)
	}
	return nil
}

func checkSingle(num int64) *ValidationError {
	if num != 1 {
		return invalid("total_num", "must be 1, got %d", num)
	}
	return nil
}

func checkDigits(name, value string) *ValidationError {
	if value == "" {
		return nil
	}
	if len(value) > maxMchIDLen || !isDigits(value) {
		return invalid(name, "must be a merchant number (digits, at most %d)", maxMchIDLen)
	}
	return nil
}

// checkScene: scene_id is one of PRODUCT_1..PRODUCT_8, and required when the
// amount is below 1 yuan or above 200 yuan.
func checkScene(scene string, fen int64) *ValidationError {
	if scene == "" {
		if fen < sceneFreeMin || fen > sceneFreeMax {
			return invalid("scene_id", "is required when total_amount is below 100 or above 20000 fen")
		}
		return nil
	}
	if !sceneIDs[scene] {
		return invalid("scene_id", "must be one of PRODUCT_1 to PRODUCT_8")
	}
	return nil
}

// checkClientIP: the IPv4 address of the calling machine.
func checkClientIP(ip string) *ValidationError {
	if ip == "" {
		return invalid("client_ip", "is required")
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return invalid("client_ip", "must be an IPv4 address")
	}
	return nil
}

// checkRiskInfo: as WeChat describes it, the URL-encoding of
// "posttime=...&mobile=...&deviceid=...&clientversion=...", non-empty
// values only, posttime a Unix timestamp.
func checkRiskInfo(risk string) *ValidationError {
	if risk == "" {
		return nil
	}
	if len(risk) > maxRiskInfoLen {
		return invalid("risk_info", "must be at most %d bytes, got %d", maxRiskInfoLen, len(risk))
	}
	decoded, err := url.QueryUnescape(risk)
	if err != nil || decoded == risk && strings.Contains(risk, "&") {
		return invalid("risk_info", "must be URL-encoded key=value pairs")
	}
	values, err := url.ParseQuery(decoded)
	if err != nil || len(values) == 0 {
		return invalid("risk_info", "must be URL-encoded key=value pairs")
	}
	for key, vals := range values {
		if !riskInfoKeys[key] {
			return invalid("risk_info", "unknown key %q (posttime, mobile, deviceid, clientversion)", key)
		}
		if len(vals) != 1 || vals[0] == "" {
			return invalid("risk_info", "key %q must appear once with a value", key)
		}
	}
	if pt, ok := values["posttime"]; ok && !isDigits(pt[0]) {
		return invalid("risk_info", "posttime must be a Unix timestamp")
	}
	return nil
}
