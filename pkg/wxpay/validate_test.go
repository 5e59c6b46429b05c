package wxpay

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// validationCase is one request that changes a valid one; field is the
// *ValidationError's Field, or "" when the request must pass.
type validationCase[R any] struct {
	name  string
	mod   func(*R)
	field string
}

var (
	chinese32 = strings.Repeat("中", 10) + "ab" // 32 bytes, 12 characters
	chinese33 = strings.Repeat("中", 11)        // 33 bytes, 11 characters
)

// commonCases apply to every send request through accessors.
type sendFields struct {
	billno, appID, sendName, openID, wishing, actName, remark, sceneID *string
	amount, num                                                        *int64
}

func commonCases[R any](get func(*R) sendFields) []validationCase[R] {
	c := func(name, field string, mod func(f sendFields)) validationCase[R] {
		return validationCase[R]{name, func(r *R) { mod(get(r)) }, field}
	}
	return []validationCase[R]{
		c("valid", "", func(sendFields) {}),
		c("billno 28", "", func(f sendFields) { *f.billno = strings.Repeat("A", 28) }),
		c("billno 1", "", func(f sendFields) { *f.billno = "z" }),
		c("billno mixed", "", func(f sendFields) { *f.billno = "aZ09" }),
		c("billno empty", "mch_billno", func(f sendFields) { *f.billno = "" }),
		c("billno 29", "mch_billno", func(f sendFields) { *f.billno = strings.Repeat("A", 29) }),
		c("billno hyphen", "mch_billno", func(f sendFields) { *f.billno = "B-1" }),
		c("billno underscore", "mch_billno", func(f sendFields) { *f.billno = "B_1" }),
		c("billno space", "mch_billno", func(f sendFields) { *f.billno = "B 1" }),
		c("billno non-ASCII", "mch_billno", func(f sendFields) { *f.billno = "单号1" }),
		c("billno fullwidth digit", "mch_billno", func(f sendFields) { *f.billno = "１" }),
		c("send_name 32 bytes", "", func(f sendFields) { *f.sendName = chinese32 }),
		c("send_name 33 bytes", "send_name", func(f sendFields) { *f.sendName = chinese33 }),
		c("send_name 33 ASCII", "send_name", func(f sendFields) { *f.sendName = strings.Repeat("s", 33) }),
		c("send_name empty", "send_name", func(f sendFields) { *f.sendName = "" }),
		c("send_name newline", "send_name", func(f sendFields) { *f.sendName = "a\nb" }),
		c("send_name tab", "send_name", func(f sendFields) { *f.sendName = "a\tb" }),
		c("send_name NUL", "send_name", func(f sendFields) { *f.sendName = "a\x00b" }),
		c("send_name DEL", "send_name", func(f sendFields) { *f.sendName = "a\x7fb" }),
		c("send_name leading space", "send_name", func(f sendFields) { *f.sendName = " ab" }),
		c("send_name invalid UTF-8", "send_name", func(f sendFields) { *f.sendName = "a\xffb" }),
		c("send_name U+FFFE", "send_name", func(f sendFields) { *f.sendName = "a\ufffeb" }),
		c("send_name markup is fine", "", func(f sendFields) { *f.sendName = `<&"'>]]>` }),
		c("send_name emoji is fine", "", func(f sendFields) { *f.sendName = "🧧红包" }),
		c("re_openid empty", "re_openid", func(f sendFields) { *f.openID = "" }),
		c("re_openid 32", "", func(f sendFields) { *f.openID = strings.Repeat("o", 32) }),
		c("re_openid 33", "re_openid", func(f sendFields) { *f.openID = strings.Repeat("o", 33) }),
		c("wxappid empty", "wxappid", func(f sendFields) { *f.appID = "" }),
		c("wxappid 33", "wxappid", func(f sendFields) { *f.appID = strings.Repeat("w", 33) }),
		c("amount zero", "total_amount", func(f sendFields) { *f.amount = 0 }),
		c("amount negative", "total_amount", func(f sendFields) { *f.amount = -100 }),
		c("wishing 128 bytes", "", func(f sendFields) { *f.wishing = strings.Repeat("中", 42) + "ab" }),
		c("wishing 129 bytes", "wishing", func(f sendFields) { *f.wishing = strings.Repeat("中", 43) }),
		c("wishing empty", "wishing", func(f sendFields) { *f.wishing = "" }),
		c("wishing control", "wishing", func(f sendFields) { *f.wishing = "a\rb" }),
		c("act_name 32 bytes", "", func(f sendFields) { *f.actName = chinese32 }),
		c("act_name 33 bytes", "act_name", func(f sendFields) { *f.actName = chinese33 }),
		c("act_name empty", "act_name", func(f sendFields) { *f.actName = "" }),
		c("remark 256 bytes", "", func(f sendFields) { *f.remark = strings.Repeat("备", 85) + "a" }),
		c("remark 257 bytes", "remark", func(f sendFields) { *f.remark = strings.Repeat("备", 85) + "ab" }),
		c("remark empty", "remark", func(f sendFields) { *f.remark = "" }),
		c("remark trailing space", "remark", func(f sendFields) { *f.remark = "r " }),
		c("scene_id each", "", func(f sendFields) { *f.sceneID = "PRODUCT_8" }),
		c("scene_id 9", "scene_id", func(f sendFields) { *f.sceneID = "PRODUCT_9" }),
		c("scene_id 0", "scene_id", func(f sendFields) { *f.sceneID = "PRODUCT_0" }),
		c("scene_id lower case", "scene_id", func(f sendFields) { *f.sceneID = "product_1" }),
		c("scene_id padded", "scene_id", func(f sendFields) { *f.sceneID = "PRODUCT_1 " }),
	}
}

// singleCases apply to sendminiprogramhb and sendredpack (one red packet).
func singleCases[R any](get func(*R) sendFields) []validationCase[R] {
	c := func(name, field string, mod func(f sendFields)) validationCase[R] {
		return validationCase[R]{name, func(r *R) { mod(get(r)) }, field}
	}
	return []validationCase[R]{
		c("num 0", "total_num", func(f sendFields) { *f.num = 0 }),
		c("num 2", "total_num", func(f sendFields) { *f.num = 2 }),
		c("num 3", "total_num", func(f sendFields) { *f.num = 3 }),
		c("num -1", "total_num", func(f sendFields) { *f.num = -1 }),
		c("100 fen without scene", "", func(f sendFields) { *f.amount, *f.sceneID = 100, "" }),
		c("20000 fen without scene", "", func(f sendFields) { *f.amount, *f.sceneID = 20000, "" }),
		c("99 fen without scene", "scene_id", func(f sendFields) { *f.amount, *f.sceneID = 99, "" }),
		c("50 fen without scene", "scene_id", func(f sendFields) { *f.amount, *f.sceneID = 50, "" }),
		c("29 fen with scene", "total_amount", func(f sendFields) { *f.amount, *f.sceneID = 29, "PRODUCT_2" }),
		c("499901 fen with scene", "total_amount", func(f sendFields) { *f.amount, *f.sceneID = 499901, "PRODUCT_2" }),
		c("20001 fen without scene", "scene_id", func(f sendFields) { *f.amount, *f.sceneID = 20001, "" }),
		c("99 fen with scene", "", func(f sendFields) { *f.amount, *f.sceneID = 99, "PRODUCT_1" }),
		c("30 fen with scene", "", func(f sendFields) { *f.amount, *f.sceneID = 30, "PRODUCT_2" }),
		c("499900 fen with scene", "", func(f sendFields) { *f.amount, *f.sceneID = 499900, "PRODUCT_8" }),
		c("20001 fen with scene", "", func(f sendFields) { *f.amount, *f.sceneID = 20001, "PRODUCT_3" }),
		c("499 yuan with scene", "", func(f sendFields) { *f.amount, *f.sceneID = 49900, "PRODUCT_4" }),
	}
}

func runValidation[R any](t *testing.T, valid func() *R, validate func(*R) error, cases []validationCase[R]) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := valid()
			tt.mod(r)
			err := validate(r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", *r, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate(%+v) = %v (%T), want a *ValidationError", *r, err, err)
			}
			if ve.Field != tt.field {
				t.Fatalf("Field = %q (%v), want %q", ve.Field, err, tt.field)
			}
			if ve.Reason == "" || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error text %q", err)
			}
			if OutcomeOf(err) != OutcomeFailed {
				t.Errorf("OutcomeOf(validation error) = %s", OutcomeOf(err))
			}
		})
	}
}

func miniFields(r *SendMiniRequest) sendFields {
	return sendFields{&r.MchBillno, &r.WxAppID, &r.SendName, &r.ReOpenID, &r.Wishing, &r.ActName, &r.Remark, &r.SceneID, &r.TotalAmount, &r.TotalNum}
}

func sendFieldsOf(r *SendRequest) sendFields {
	return sendFields{&r.MchBillno, &r.WxAppID, &r.SendName, &r.ReOpenID, &r.Wishing, &r.ActName, &r.Remark, &r.SceneID, &r.TotalAmount, &r.TotalNum}
}

func groupFields(r *SendGroupRequest) sendFields {
	return sendFields{&r.MchBillno, &r.WxAppID, &r.SendName, &r.ReOpenID, &r.Wishing, &r.ActName, &r.Remark, &r.SceneID, &r.TotalAmount, &r.TotalNum}
}

var validRiskInfo = url.QueryEscape("posttime=1414561111&mobile=13800138000&deviceid=IOS&clientversion=234134")

func riskCases[R any](set func(*R, string)) []validationCase[R] {
	c := func(name, value, field string) validationCase[R] {
		return validationCase[R]{name, func(r *R) { set(r, value) }, field}
	}
	return []validationCase[R]{
		c("risk_info all keys", validRiskInfo, ""),
		c("risk_info lower-case escapes", "posttime%3d123123412%26clientversion%3d234134%26mobile%3d122344545%26deviceid%3dIOS", ""),
		c("risk_info one key", url.QueryEscape("deviceid=android-1"), ""),
		c("risk_info raw ampersand", "posttime=1414561111&mobile=13800138000", "risk_info"),
		c("risk_info unknown key", url.QueryEscape("posttime=1&ip=1.2.3.4"), "risk_info"),
		c("risk_info repeated key", url.QueryEscape("posttime=1&posttime=2"), "risk_info"),
		c("risk_info empty value", url.QueryEscape("mobile="), "risk_info"),
		c("risk_info posttime not digits", url.QueryEscape("posttime=yesterday"), "risk_info"),
		c("risk_info bad escape", "posttime%3D1%2", "risk_info"),
		c("risk_info semicolon", url.QueryEscape("posttime=1;mobile=2"), "risk_info"),
		c("risk_info not pairs", "hello", "risk_info"),
		c("risk_info too long", url.QueryEscape("deviceid="+strings.Repeat("d", 120)), "risk_info"),
	}
}

func merchantCases[R any](set func(r *R, msgAppID, subMch, consumeMch string)) []validationCase[R] {
	c := func(name, field string, a, s, m string) validationCase[R] {
		return validationCase[R]{name, func(r *R) { set(r, a, s, m) }, field}
	}
	return []validationCase[R]{
		c("optional ids set", "", "wxbe8ed3d7d4a1c4b0", "1900000110", "1900000111"),
		c("msgappid 33", "msgappid", strings.Repeat("w", 33), "", ""),
		c("sub_mch_id letters", "sub_mch_id", "", "19000a", ""),
		c("sub_mch_id 33 digits", "sub_mch_id", "", strings.Repeat("1", 33), ""),
		c("consume_mch_id negative", "consume_mch_id", "", "", "-1"),
	}
}

func TestValidateSendMini(t *testing.T) {
	cases := append(commonCases(miniFields), singleCases(miniFields)...)
	cases = append(cases,
		validationCase[SendMiniRequest]{"notify_way set", func(r *SendMiniRequest) { r.NotifyWay = NotifyWayMiniProgram }, ""},
		validationCase[SendMiniRequest]{"notify_way APP", func(r *SendMiniRequest) { r.NotifyWay = "APP" }, "notify_way"},
		validationCase[SendMiniRequest]{"notify_way lower", func(r *SendMiniRequest) { r.NotifyWay = "mini_program_jsapi" }, "notify_way"},
	)
	runValidation(t, validMini, (*SendMiniRequest).Validate, cases)
}

func TestValidateSend(t *testing.T) {
	cases := append(commonCases(sendFieldsOf), singleCases(sendFieldsOf)...)
	cases = append(cases, riskCases(func(r *SendRequest, v string) { r.RiskInfo = v })...)
	cases = append(cases, merchantCases(func(r *SendRequest, a, s, m string) { r.MsgAppID, r.SubMchID, r.ConsumeMchID = a, s, m })...)
	for _, ip := range []struct{ ip, field string }{
		{"10.0.0.1", ""},
		{"255.255.255.255", ""},
		{"", "client_ip"},
		{"::1", "client_ip"},
		{"2001:db8::1", "client_ip"},
		{"::ffff:192.168.0.1", "client_ip"},
		{"192.168.0", "client_ip"},
		{"256.1.1.1", "client_ip"},
		{"01.2.3.4", "client_ip"},
		{"1.2.3.4 ", "client_ip"},
		{"1.2.3.4:80", "client_ip"},
		{"localhost", "client_ip"},
	} {
		cases = append(cases, validationCase[SendRequest]{"client_ip " + ip.ip, func(r *SendRequest) { r.ClientIP = ip.ip }, ip.field})
	}
	runValidation(t, validSend, (*SendRequest).Validate, cases)
}

func TestValidateSendGroup(t *testing.T) {
	g := func(name, field string, mod func(*SendGroupRequest)) validationCase[SendGroupRequest] {
		return validationCase[SendGroupRequest]{name, mod, field}
	}
	cases := commonCases(groupFields)
	cases = append(cases, riskCases(func(r *SendGroupRequest, v string) { r.RiskInfo = v })...)
	cases = append(cases, merchantCases(func(r *SendGroupRequest, a, s, m string) { r.MsgAppID, r.SubMchID, r.ConsumeMchID = a, s, m })...)
	cases = append(cases,
		g("num 3", "", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount = 3, 300 }),
		g("num 20", "", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount = 20, 2000 }),
		g("num 2", "total_num", func(r *SendGroupRequest) { r.TotalNum = 2 }),
		g("num 1", "total_num", func(r *SendGroupRequest) { r.TotalNum = 1 }),
		g("num 21", "total_num", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount = 21, 2100 }),
		g("num 0", "total_num", func(r *SendGroupRequest) { r.TotalNum = 0 }),
		g("num negative", "total_num", func(r *SendGroupRequest) { r.TotalNum = -3 }),
		g("average 1 yuan", "", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount = 5, 500 }),
		g("average below 1 yuan", "total_amount", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount = 3, 299 }),
		g("average below 1 yuan with scene", "total_amount", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount, r.SceneID = 3, 299, "PRODUCT_1" }),
		g("average 200 yuan", "", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount, r.SceneID = 3, 60000, "PRODUCT_1" }),
		g("average above 200 yuan", "total_amount", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount, r.SceneID = 3, 60001, "PRODUCT_1" }),
		g("huge amount", "total_amount", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount, r.SceneID = 20, 1<<62, "PRODUCT_1" }),
		// The scene_id rule reads total_amount, the sum of the group.
		g("total above 200 yuan without scene", "scene_id", func(r *SendGroupRequest) { r.TotalNum, r.TotalAmount = 3, 30000 }),
		g("amt_type empty", "amt_type", func(r *SendGroupRequest) { r.AmtType = "" }),
		g("amt_type FIX", "amt_type", func(r *SendGroupRequest) { r.AmtType = "FIX" }),
		g("amt_type lower", "amt_type", func(r *SendGroupRequest) { r.AmtType = "all_rand" }),
	)
	runValidation(t, validGroup, (*SendGroupRequest).Validate, cases)
}

func TestValidateQuery(t *testing.T) {
	q := func(name, field string, mod func(*QueryRequest)) validationCase[QueryRequest] {
		return validationCase[QueryRequest]{name, mod, field}
	}
	runValidation(t, validQuery, (*QueryRequest).Validate, []validationCase[QueryRequest]{
		q("valid", "", func(*QueryRequest) {}),
		q("billno empty", "mch_billno", func(r *QueryRequest) { r.MchBillno = "" }),
		q("billno 29", "mch_billno", func(r *QueryRequest) { r.MchBillno = strings.Repeat("1", 29) }),
		q("billno symbol", "mch_billno", func(r *QueryRequest) { r.MchBillno = "1%" }),
		q("appid empty", "appid", func(r *QueryRequest) { r.AppID = "" }),
		q("appid 33", "appid", func(r *QueryRequest) { r.AppID = strings.Repeat("w", 33) }),
		q("appid control", "appid", func(r *QueryRequest) { r.AppID = "wx\n1" }),
	})
}

// TestInvalidRequestsSendNothing: every call validates before any I/O.
func TestInvalidRequestsSendNothing(t *testing.T) {
	c, ct := offlineClient(t)
	ctx := context.Background()
	calls := map[string]func() error{
		"sendgroupredpack": func() error {
			r := validGroup()
			r.TotalNum = 2
			_, err := c.SendGroupRedpack(ctx, r)
			return err
		},
		"sendminiprogramhb": func() error {
			r := validMini()
			r.MchBillno = "bad-billno"
			_, err := c.SendMiniProgramHB(ctx, r)
			return err
		},
		"sendredpack": func() error {
			r := validSend()
			r.ClientIP = "::1"
			_, err := c.SendRedpack(ctx, r)
			return err
		},
		"gethbinfo": func() error {
			_, err := c.QueryRedpack(ctx, &QueryRequest{MchBillno: "1"})
			return err
		},
		"send amount": func() error {
			r := validSend()
			r.TotalAmount = -1
			_, err := c.SendRedpack(ctx, r)
			return err
		},
	}
	for name, call := range calls {
		err := call()
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: err = %v, want a *ValidationError", name, err)
		}
		var we *Error
		if errors.As(err, &we) {
			t.Errorf("%s: a validation failure is also an *Error", name)
		}
	}
	if n := ct.n.Load(); n != 0 {
		t.Fatalf("invalid requests made %d HTTP requests", n)
	}
	// The counting transport does count: a valid request reaches it.
	if _, err := c.QueryRedpack(ctx, validQuery()); err == nil {
		t.Fatal("query through a failing transport succeeded")
	}
	if ct.n.Load() == 0 {
		t.Fatal("the counting transport saw nothing")
	}
}
