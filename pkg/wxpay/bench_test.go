package wxpay

import (
	"testing"
)

// BenchmarkBuildSendMini measures the per-request CPU cost of the client:
// validation, nonce, MD5 signature and <xml> body of one sendminiprogramhb
// request. Target: at most 2.5 µs/op and 10 allocs/op.
func BenchmarkBuildSendMini(b *testing.B) {
	c, _ := offlineClient(b)
	r := validMini()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.BuildSendMini(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign signs WeChat's official example with MD5.
func BenchmarkSign(b *testing.B) {
	p := officialVector()
	b.ReportAllocs()
	for b.Loop() {
		if Sign(p, officialKey, SignMD5) != officialMD5 {
			b.Fatal("wrong signature")
		}
	}
}

// BenchmarkDecodeXML decodes a typical sendminiprogramhb success answer.
func BenchmarkDecodeXML(b *testing.B) {
	data := []byte(typicalSuccess)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeXML(data); err != nil {
			b.Fatal(err)
		}
	}
}

// typicalSuccess is a sendminiprogramhb success answer as WeChat writes it.
const typicalSuccess = `<xml>
<return_code><![CDATA[SUCCESS]]></return_code>
<return_msg><![CDATA[发放成功]]></return_msg>
<result_code><![CDATA[SUCCESS]]></result_code>
<err_code><![CDATA[SUCCESS]]></err_code>
<err_code_des><![CDATA[发放成功]]></err_code_des>
<mch_billno><![CDATA[10000098201411111234567890]]></mch_billno>
<mch_id><![CDATA[1900000109]]></mch_id>
<wxappid><![CDATA[wxd930ea5d5a258f4f]]></wxappid>
<re_openid><![CDATA[oxTWIuGaIt6gTKsQRLau2M0yL16E]]></re_openid>
<total_amount>1000</total_amount>
<send_listid><![CDATA[1000041701201411111234567890]]></send_listid>
<package><![CDATA[sendid=242e8abd163d300019b2cae74ba8e8c06e3f0e51ab84d16b3c80decd22a5b672&ver=8&sign=4110d649a5aef52dd6b95654ddf91ca7d5411ac159ace4e1a766b7d3967a1c3dfe1d256811445a4abda2d9cfa4a9b377a829258bd00d90313c6c346f2349fe89&mch_id=1900000109&sendtime=1417161234&wishing=%E6%81%AD%E5%96%9C%E5%8F%91%E8%B4%A2]]></package>
</xml>`
