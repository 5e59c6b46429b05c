package wxpay

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
)

// Seed corpora: these f.Add calls plus testdata/fuzz/<FuzzName>/.

var xmlSeeds = []string{
	typicalSuccess,
	hbinfoMany,
	"<xml></xml>",
	"<xml><a/><b></b></xml>",
	`<?xml version="1.0" encoding="UTF-8"?><xml><a><![CDATA[x<y]]></a><b>1&amp;2</b></xml>`,
	"<xml><a>x&#xD;\ny]]&gt;z</a></xml>",
	"<xml><a>x]]>y</a></xml>",
	"<xml><a><b>1</b></a></xml>",
	"<xml><a>1</a><a>2</a></xml>",
	"<xml><a>1</a></xml>trailing",
	"<html><body>400 Bad Request</body></html>",
	"<!DOCTYPE html><html></html>",
	"<xml><return_code>SUCC",
	"<xml><p:a xmlns:p='u'>1</p:a></xml>",
	"<xml><hblist><hbinfo><openid>o</openid></hbinfo></hblist></xml>",
	"<xml><!-- c --><a>1<!-- d -->2</a><?pi?></xml>",
	"\ufeff<xml/>",
	"<xml>\r\n<a>\r</a>\r\n</xml>",
	"<xml><a-b>1</a-b><c.d>2</c.d></xml>",
	"<xml><名>1</名></xml>",
	"<xml><a><![CDATA[&&]]>&#xD;</a></xml>",
}

// checkXMLError asserts the error contract of the decoders.
func checkXMLError(t *testing.T, err error) {
	t.Helper()
	var xe *XMLError
	if !errors.As(err, &xe) || !errors.Is(err, ErrMalformedXML) {
		t.Fatalf("error %T %v is not an *XMLError matching ErrMalformedXML", err, err)
	}
}

// withoutEmpty drops empty values: an empty element and an absent one are
// the same APIv2 document (neither is signed; EncodeXML omits both).
func withoutEmpty(p Params) Params {
	out := Params{}
	for k, v := range p {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// reencode checks that p encodes, and decodes back to itself.
func reencode(t *testing.T, p Params) {
	t.Helper()
	enc, err := EncodeXML(p)
	if err != nil {
		t.Fatalf("EncodeXML of decoded %q: %v", p, err)
	}
	if len(enc) > MaxBodySize {
		// CDATA holding '&' and '<' re-encoded as entities can grow past
		// the limit: the limit, not a bug.
		return
	}
	back, err := DecodeXML(enc)
	if err != nil {
		t.Fatalf("DecodeXML(EncodeXML(%q)) = %v (document %q)", p, err, enc)
	}
	if !maps.Equal(back, withoutEmpty(p)) {
		t.Fatalf("round trip changed the params:\n got %q\nwant %q\n via %q", back, withoutEmpty(p), enc)
	}
	// Same document, same signature.
	if Sign(back, testKey, SignMD5) != Sign(p, testKey, SignMD5) {
		t.Fatalf("signature changed in the round trip of %q", p)
	}
}

func FuzzDecodeXML(f *testing.F) {
	for _, s := range xmlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeXML(data)
		if err != nil {
			if p != nil {
				t.Fatalf("params %q with error %v", p, err)
			}
			checkXMLError(t, err)
			return
		}
		reencode(t, p)
	})
}

func FuzzDecodeXMLRecords(f *testing.F) {
	for _, s := range xmlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, recs, err := DecodeXMLRecords(data, "hblist", "hbinfo")
		flat, flatErr := DecodeXML(data)
		if err != nil {
			checkXMLError(t, err)
			if flatErr == nil && flat["hblist"] == "" {
				t.Fatalf("DecodeXML accepts what DecodeXMLRecords refuses (%v): %q", err, data)
			}
			return
		}
		reencode(t, p)
		for _, r := range recs {
			reencode(t, r)
		}
		if recs == nil {
			// No container: the flat decoder reads the same document.
			if flatErr != nil || !maps.Equal(flat, p) {
				t.Fatalf("DecodeXMLRecords without records = %q; DecodeXML = %q, %v", p, flat, flatErr)
			}
		}
	})
}

// FuzzValidateSendMini: Validate never panics, and whenever it passes the
// built body decodes, verifies with the key and has exactly the non-empty
// SendMiniFields and sign.
func FuzzValidateSendMini(f *testing.F) {
	v := validMini()
	f.Add(v.MchBillno, v.WxAppID, v.SendName, v.ReOpenID, v.TotalAmount, v.TotalNum, v.Wishing, v.ActName, v.Remark, "", v.SceneID)
	f.Add("B1", "wx1", "<&>", "o", int64(100), int64(1), "]]>", "\"'", "🧧", NotifyWayMiniProgram, "")
	f.Add("B1", "wx1", "s", "o", int64(99), int64(1), "w", "a", "r", "", "")
	f.Add("B1", "wx1", "s", "o", int64(20001), int64(1), "w", "a", "r", "", "PRODUCT_8")
	f.Add("B-1", "wx1", "s\r\n", "o", int64(-1), int64(2), "w\t", " a", "r\x00", "APP", "PRODUCT_9")
	c, ct := offlineClient(f)
	f.Fuzz(func(t *testing.T, billno, appID, sendName, openID string, amount, num int64, wishing, actName, remark, notifyWay, sceneID string) {
		r := &SendMiniRequest{
			MchBillno: billno, WxAppID: appID, SendName: sendName, ReOpenID: openID,
			TotalAmount: amount, TotalNum: num, Wishing: wishing, ActName: actName,
			Remark: remark, NotifyWay: notifyWay, SceneID: sceneID,
		}
		verr := r.Validate()
		body, err := c.BuildSendMini(r)
		if ct.n.Load() != 0 {
			t.Fatal("building a request did I/O")
		}
		if verr != nil {
			var ve *ValidationError
			if !errors.As(verr, &ve) || ve.Field == "" || !slices.Contains(SendMiniFields, ve.Field) {
				t.Fatalf("Validate error %#v names no SendMiniFields field", verr)
			}
			if err == nil || err.Error() != verr.Error() {
				t.Fatalf("BuildSendMini = %v, want the validation error %v", err, verr)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid request: BuildSendMini: %v", err)
		}
		// What Validate promises.
		if len(billno) > 28 || len(sendName) > 32 || len(actName) > 32 || len(wishing) > 128 ||
			len(remark) > 256 || len(openID) > 32 || amount <= 0 || num != 1 {
			t.Fatalf("Validate passed an out-of-range request %+v", r)
		}
		if (amount < 100 || amount > 20000) && sceneID == "" {
			t.Fatalf("Validate passed %d fen without scene_id", amount)
		}
		p, err := DecodeXML(body)
		if err != nil {
			t.Fatalf("built body does not decode: %v\n%q", err, body)
		}
		if !VerifySign(p, testKey) {
			t.Fatalf("built body does not verify: %q", body)
		}
		want := map[string]string{
			"act_name": actName, "mch_billno": billno, "mch_id": testMchID, "notify_way": NotifyWayMiniProgram,
			"re_openid": openID, "remark": remark, "scene_id": sceneID, "send_name": sendName,
			"total_amount": strconv.FormatInt(amount, 10), "total_num": strconv.FormatInt(num, 10),
			"wishing": wishing, "wxappid": appID,
		}
		var keys []string
		for _, k := range SendMiniFields {
			if k == "nonce_str" || want[k] != "" {
				keys = append(keys, k)
			}
		}
		keys = append(keys, "sign")
		slices.Sort(keys)
		if got := slices.Sorted(maps.Keys(p)); !slices.Equal(got, keys) {
			t.Fatalf("body keys %q, want %q", got, keys)
		}
		for k, v := range want {
			if p[k] != v {
				t.Fatalf("%s = %q, want %q", k, p[k], v)
			}
		}
		if len(p["nonce_str"]) != 32 {
			t.Fatalf("nonce_str %q", p["nonce_str"])
		}
	})
}
