package wxpay

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"testing"
)

// TestRequestFromFields: each API's request comes back from its Fields as
// it was (notify_way as always signed), and fields that would not come
// back the same are refused, naming the field.
func TestRequestFromFields(t *testing.T) {
	fullSend := validSend()
	fullSend.MsgAppID, fullSend.SubMchID, fullSend.SceneID, fullSend.RiskInfo, fullSend.ConsumeMchID = "wxmsg", "1900000110", "PRODUCT_2", validRiskInfo, "1900000111"
	fullGroup := validGroup()
	fullGroup.MsgAppID, fullGroup.SubMchID, fullGroup.SceneID, fullGroup.RiskInfo, fullGroup.ConsumeMchID = "wxmsg", "1900000110", "PRODUCT_2", validRiskInfo, "1900000111"
	mini := validMini()
	mini.NotifyWay = NotifyWayMiniProgram // Fields always signs it
	miniNoScene := validMini()
	miniNoScene.SceneID, miniNoScene.NotifyWay = "", NotifyWayMiniProgram

	for _, tc := range []struct {
		name string
		api  string
		req  RedpackRequest
	}{
		{"send", "sendredpack", validSend()},
		{"send, every optional field", "sendredpack", fullSend},
		{"mini", "sendminiprogramhb", mini},
		{"mini without scene", "sendminiprogramhb", miniNoScene},
		{"group", "sendgroupredpack", validGroup()},
		{"group, every optional field", "sendgroupredpack", fullGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := tc.req.Fields(testMchID)
			got, err := RequestFromFields(tc.api, fields)
			if err != nil {
				t.Fatalf("RequestFromFields: %v", err)
			}
			if !reflect.DeepEqual(got, tc.req) {
				t.Errorf("rebuilt %+v, want %+v", got, tc.req)
			}
			if back := got.Fields(testMchID); !maps.Equal(back, fields) {
				t.Errorf("fields %v, want %v", back, fields)
			}
		})
	}

	send := func(edit func(map[string]string)) map[string]string {
		f := validSend().Fields(testMchID)
		edit(f)
		return f
	}
	miniFields := func(edit func(map[string]string)) map[string]string {
		f := validMini().Fields(testMchID)
		edit(f)
		return f
	}
	for _, tc := range []struct {
		name   string
		api    string
		fields map[string]string
		field  string // the field the error names
	}{
		{"unknown api", "gethbinfo", validSend().Fields(testMchID), "api"},
		{"another API's fields", "sendminiprogramhb", validSend().Fields(testMchID), "client_ip"},
		{"no mch_id", "sendredpack", send(func(f map[string]string) { delete(f, "mch_id") }), "mch_id"},
		{"a field the API does not sign", "sendredpack", send(func(f map[string]string) { f["notify_way"] = NotifyWayMiniProgram }), "notify_way"},
		{"an unknown field", "sendredpack", send(func(f map[string]string) { f["amount"] = "1000" }), "amount"},
		{"nonce_str", "sendredpack", send(func(f map[string]string) { f["nonce_str"] = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS" }), "nonce_str"},
		{"sign", "sendredpack", send(func(f map[string]string) { f["sign"] = "C380BEC2BFD727A4B6845133519F3AD6" }), "sign"},
		{"an empty value", "sendredpack", send(func(f map[string]string) { f["scene_id"] = "" }), "scene_id"},
		{"leading zero", "sendredpack", send(func(f map[string]string) { f["total_amount"] = "01000" }), "total_amount"},
		{"plus sign", "sendredpack", send(func(f map[string]string) { f["total_num"] = "+1" }), "total_num"},
		{"not a number", "sendredpack", send(func(f map[string]string) { f["total_amount"] = "10.00" }), "total_amount"},
		{"mini without notify_way", "sendminiprogramhb", miniFields(func(f map[string]string) { delete(f, "notify_way") }), "notify_way"},
		{"mini with another notify_way", "sendminiprogramhb", miniFields(func(f map[string]string) { f["notify_way"] = "JSAPI" }), "notify_way"},
		{"a required field missing", "sendredpack", send(func(f map[string]string) { delete(f, "total_num") }), "total_num"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RequestFromFields(tc.api, tc.fields)
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Field != tc.field {
				t.Fatalf("RequestFromFields = %+v, %v; want a *ValidationError naming %s", r, err, tc.field)
			}
			if r != nil {
				t.Errorf("a request with the error: %+v", r)
			}
		})
	}
}

// TestSendFields: a stored request is sent with exactly its fields, to its
// API's path; one that is not the client's merchant's, or that does not
// validate, is refused before any I/O.
func TestSendFields(t *testing.T) {
	for _, tc := range []struct {
		api, path string
		fields    map[string]string
		rep       func(t *testing.T) reply
	}{
		{"sendredpack", PathSendRedpack, validSend().Fields(testMchID), func(t *testing.T) reply { return xmlReply(t, successParams(validSend().MchBillno)) }},
		{"sendgroupredpack", PathSendGroupRedpack, validGroup().Fields(testMchID), func(t *testing.T) reply {
			p := successParams(validGroup().MchBillno)
			p["total_amount"] = "600"
			return xmlReply(t, p)
		}},
		{"sendminiprogramhb", PathSendMiniProgramHB, validMini().Fields(testMchID), func(t *testing.T) reply { return successMini(t) }},
	} {
		t.Run(tc.api, func(t *testing.T) {
			srv := newScriptServer(t, tc.rep(t))
			c, _ := newTestClient(t, srv, nil)
			res, err := c.SendFields(context.Background(), tc.api, tc.fields)
			if err != nil {
				t.Fatalf("SendFields: %v", err)
			}
			switch res.(type) {
			case *SendResult:
				if tc.api == "sendminiprogramhb" {
					t.Errorf("result %T", res)
				}
			case *SendMiniResult:
				if tc.api != "sendminiprogramhb" {
					t.Errorf("result %T", res)
				}
			default:
				t.Errorf("result %T", res)
			}
			bodies, paths, _ := srv.requests()
			if len(bodies) != 1 || paths[0] != tc.path {
				t.Fatalf("requests to %v", paths)
			}
			sent, err := DecodeXML(bodies[0])
			if err != nil {
				t.Fatal(err)
			}
			if !VerifySign(sent, testKey) {
				t.Errorf("the request's signature does not verify")
			}
			delete(sent, "nonce_str")
			delete(sent, "sign")
			if !maps.Equal(map[string]string(sent), tc.fields) {
				t.Errorf("sent %v, want exactly %v", sent, tc.fields)
			}
		})
	}

	c, transport := offlineClient(t)
	otherMerchant := validSend().Fields("1900000110")
	invalidAmount := validSend().Fields(testMchID)
	invalidAmount["total_amount"] = "10"
	for name, tc := range map[string]struct {
		api    string
		fields map[string]string
		field  string
	}{
		"another merchant":    {"sendredpack", otherMerchant, "mch_id"},
		"not rebuilt exactly": {"sendredpack", validMini().Fields(testMchID), "notify_way"},
		"invalid":             {"sendredpack", invalidAmount, "total_amount"},
	} {
		res, err := c.SendFields(context.Background(), tc.api, tc.fields)
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != tc.field || res != nil {
			t.Errorf("%s: SendFields = %v, %v; want a *ValidationError naming %s", name, res, err, tc.field)
		}
	}
	if n := transport.n.Load(); n != 0 {
		t.Errorf("%d requests for refused fields", n)
	}
}
