package wxpay

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// The fields each API documents (WeChat's reference pages), written out
// independently of request.go.
var documentedFields = map[string][]string{
	"sendgroupredpack":  {"nonce_str", "mch_billno", "mch_id", "sub_mch_id", "wxappid", "msgappid", "send_name", "re_openid", "total_amount", "total_num", "amt_type", "wishing", "act_name", "remark", "scene_id", "risk_info", "consume_mch_id"},
	"sendminiprogramhb": {"nonce_str", "mch_billno", "mch_id", "wxappid", "send_name", "re_openid", "total_amount", "total_num", "wishing", "act_name", "remark", "notify_way", "scene_id"},
	"sendredpack":       {"nonce_str", "mch_billno", "mch_id", "sub_mch_id", "wxappid", "msgappid", "send_name", "re_openid", "total_amount", "total_num", "wishing", "client_ip", "act_name", "remark", "scene_id", "risk_info", "consume_mch_id"},
	"gethbinfo":         {"nonce_str", "mch_billno", "mch_id", "appid", "bill_type"},
}

func TestFieldLists(t *testing.T) {
	lists := map[string][]string{
		"sendgroupredpack":  SendGroupFields,
		"sendminiprogramhb": SendMiniFields,
		"sendredpack":       SendFields,
		"gethbinfo":         QueryFields,
	}
	order := map[string][]field{
		"sendgroupredpack":  validGroup().appendFields(nil, "m", "n"),
		"sendminiprogramhb": validMini().appendFields(nil, "m", "n"),
		"sendredpack":       validSend().appendFields(nil, "m", "n"),
		"gethbinfo":         validQuery().appendFields(nil, "m", "n"),
	}
	for api, list := range lists {
		if len(list) > maxFields {
			t.Errorf("%s: %d fields, more than maxFields %d", api, len(list), maxFields)
		}
		if !slices.IsSorted(list) {
			t.Errorf("%s: exported field list is not sorted bytewise: %q", api, list)
		}
		want := slices.Sorted(slices.Values(documentedFields[api]))
		if !slices.Equal(list, want) {
			t.Errorf("%s: fields %q, want %q", api, list, want)
		}
		// Signing relies on appendFields being in exactly this order.
		var names []string
		for _, f := range order[api] {
			names = append(names, f.name)
		}
		if !slices.Equal(names, list) {
			t.Errorf("%s: appendFields order %q, want %q", api, names, list)
		}
	}
}

// TestBuildFieldSets: each body carries exactly its API's non-empty fields
// and sign, with the request's values, mch_id and a 32-character nonce.
func TestBuildFieldSets(t *testing.T) {
	c, _ := offlineClient(t)
	fullGroup := validGroup()
	fullGroup.MsgAppID, fullGroup.SubMchID, fullGroup.SceneID, fullGroup.RiskInfo, fullGroup.ConsumeMchID = "wxmsg", "1900000110", "PRODUCT_2", validRiskInfo, "1900000111"
	fullSend := validSend()
	fullSend.MsgAppID, fullSend.SubMchID, fullSend.SceneID, fullSend.RiskInfo, fullSend.ConsumeMchID = "wxmsg", "1900000110", "PRODUCT_2", validRiskInfo, "1900000111"
	miniNoScene := validMini()
	miniNoScene.SceneID = ""
	miniNotify := validMini()
	miniNotify.NotifyWay = NotifyWayMiniProgram

	tests := []struct {
		name   string
		api    string
		build  func() ([]byte, error)
		values map[string]string // every expected field but nonce_str and sign
	}{
		{"group minimal", "sendgroupredpack", func() ([]byte, error) { return c.BuildSendGroup(validGroup()) }, map[string]string{
			"act_name": "新年红包", "amt_type": "ALL_RAND", "mch_billno": validGroup().MchBillno, "mch_id": testMchID,
			"re_openid": testOpenID, "remark": "新年快乐", "send_name": "天虹百货", "total_amount": "600", "total_num": "3",
			"wishing": "恭喜发财", "wxappid": testAppID}},
		{"group full", "sendgroupredpack", func() ([]byte, error) { return c.BuildSendGroup(fullGroup) }, map[string]string{
			"act_name": "新年红包", "amt_type": "ALL_RAND", "mch_billno": validGroup().MchBillno, "mch_id": testMchID,
			"re_openid": testOpenID, "remark": "新年快乐", "send_name": "天虹百货", "total_amount": "600", "total_num": "3",
			"wishing": "恭喜发财", "wxappid": testAppID, "msgappid": "wxmsg", "sub_mch_id": "1900000110", "scene_id": "PRODUCT_2",
			"risk_info": validRiskInfo, "consume_mch_id": "1900000111"}},
		{"mini", "sendminiprogramhb", func() ([]byte, error) { return c.BuildSendMini(validMini()) }, map[string]string{
			"act_name": "新年红包", "mch_billno": validMini().MchBillno, "mch_id": testMchID, "notify_way": "MINI_PROGRAM_JSAPI",
			"re_openid": testOpenID, "remark": "新年快乐", "scene_id": "PRODUCT_1", "send_name": "天虹百货",
			"total_amount": "1000", "total_num": "1", "wishing": "恭喜发财", "wxappid": testAppID}},
		{"mini without scene", "sendminiprogramhb", func() ([]byte, error) { return c.BuildSendMini(miniNoScene) }, map[string]string{
			"act_name": "新年红包", "mch_billno": validMini().MchBillno, "mch_id": testMchID, "notify_way": "MINI_PROGRAM_JSAPI",
			"re_openid": testOpenID, "remark": "新年快乐", "send_name": "天虹百货",
			"total_amount": "1000", "total_num": "1", "wishing": "恭喜发财", "wxappid": testAppID}},
		{"mini notify_way given", "sendminiprogramhb", func() ([]byte, error) { return c.BuildSendMini(miniNotify) }, map[string]string{
			"act_name": "新年红包", "mch_billno": validMini().MchBillno, "mch_id": testMchID, "notify_way": "MINI_PROGRAM_JSAPI",
			"re_openid": testOpenID, "remark": "新年快乐", "scene_id": "PRODUCT_1", "send_name": "天虹百货",
			"total_amount": "1000", "total_num": "1", "wishing": "恭喜发财", "wxappid": testAppID}},
		{"send minimal", "sendredpack", func() ([]byte, error) { return c.BuildSend(validSend()) }, map[string]string{
			"act_name": "新年红包", "client_ip": "192.168.0.1", "mch_billno": validSend().MchBillno, "mch_id": testMchID,
			"re_openid": testOpenID, "remark": "新年快乐", "send_name": "天虹百货", "total_amount": "1000", "total_num": "1",
			"wishing": "恭喜发财", "wxappid": testAppID}},
		{"send full", "sendredpack", func() ([]byte, error) { return c.BuildSend(fullSend) }, map[string]string{
			"act_name": "新年红包", "client_ip": "192.168.0.1", "mch_billno": validSend().MchBillno, "mch_id": testMchID,
			"re_openid": testOpenID, "remark": "新年快乐", "send_name": "天虹百货", "total_amount": "1000", "total_num": "1",
			"wishing": "恭喜发财", "wxappid": testAppID, "msgappid": "wxmsg", "sub_mch_id": "1900000110", "scene_id": "PRODUCT_2",
			"risk_info": validRiskInfo, "consume_mch_id": "1900000111"}},
		{"query", "gethbinfo", func() ([]byte, error) { return c.BuildQuery(validQuery()) }, map[string]string{
			"appid": testAppID, "bill_type": "MCHT", "mch_billno": validQuery().MchBillno, "mch_id": testMchID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(body, []byte("<xml>")) || !bytes.HasSuffix(body, []byte("</xml>")) {
				t.Errorf("body %q", body)
			}
			p, err := DecodeXML(body)
			if err != nil {
				t.Fatal(err)
			}
			nonce := p["nonce_str"]
			if len(nonce) != 32 || strings.Trim(nonce, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				t.Errorf("nonce_str %q: want 32 letters and digits", nonce)
			}
			want := maps.Clone(tt.values)
			want["nonce_str"] = nonce
			want["sign"] = refSign(want, testKey, false)
			if !maps.Equal(p, want) {
				t.Errorf("body fields\n got %q\nwant %q", p, want)
			}
			for k := range p {
				if k != "sign" && !slices.Contains(documentedFields[tt.api], k) {
					t.Errorf("%s sends %q, which it does not know", tt.api, k)
				}
			}
		})
	}
}

func TestNonce(t *testing.T) {
	// Default source (crypto/rand): two builds differ.
	c, _ := offlineClient(t)
	b1, _ := c.BuildSendMini(validMini())
	b2, _ := c.BuildSendMini(validMini())
	p1, _ := DecodeXML(b1)
	p2, _ := DecodeXML(b2)
	if p1["nonce_str"] == p2["nonce_str"] || p1["sign"] == p2["sign"] {
		t.Errorf("two builds share nonce %q", p1["nonce_str"])
	}
	if p1["mch_billno"] != p2["mch_billno"] {
		t.Error("the billno changed between builds")
	}

	// The configured source is used: the same bytes give the same nonce,
	// and different bytes a different one.
	nonceFrom := func(seed []byte) (string, error) {
		c, err := NewClient(Config{Credentials: testCredentials(t), Transport: &countingTransport{},
			Now: newFakeClock().Now, Rand: bytes.NewReader(seed)})
		if err != nil {
			t.Fatal(err)
		}
		body, err := c.BuildQuery(validQuery())
		if err != nil {
			return "", err
		}
		p, _ := DecodeXML(body)
		return p["nonce_str"], nil
	}
	seed := []byte("0123456789abcdef0123456789abcdef")
	n1, err1 := nonceFrom(seed)
	n2, err2 := nonceFrom(seed)
	n3, err3 := nonceFrom(bytes.Repeat([]byte{0xff}, 32))
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	if n1 != n2 || n1 == n3 || len(n1) != 32 || len(n3) != 32 {
		t.Errorf("nonces from the configured Rand: %q %q %q", n1, n2, n3)
	}
	// Different positions of the 16 random bytes give different nonces.
	seen := map[string]bool{}
	for i := range 16 {
		s := make([]byte, 16)
		s[i] = 1
		n, _ := nonceFrom(s)
		seen[n] = true
	}
	if len(seen) != 16 {
		t.Errorf("%d distinct nonces from 16 distinct seeds", len(seen))
	}

	// A failing source is an error, not a panic or a weak nonce.
	if _, err := nonceFrom([]byte("short")); err == nil {
		t.Error("a random source that runs dry gave a nonce")
	}
	cErr, err := NewClient(Config{Credentials: testCredentials(t), Transport: &countingTransport{},
		Now: newFakeClock().Now, Rand: iotest.ErrReader(errors.New("entropy gone"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cErr.BuildSendMini(validMini()); err == nil || !strings.Contains(err.Error(), "entropy gone") {
		t.Errorf("BuildSendMini with a failing Rand: %v", err)
	}
}
