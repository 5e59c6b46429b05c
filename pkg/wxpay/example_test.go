package wxpay_test

import (
	"fmt"
	"slices"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// WeChat's official APIv2 signature example.
func ExampleSign() {
	params := wxpay.Params{
		"appid":       "wxd930ea5d5a258f4f",
		"mch_id":      "10000100",
		"device_info": "1000",
		"body":        "test",
		"nonce_str":   "ibuaiVcKdpRxkhJA",
	}
	const key = "192006250b4c09247ec02edce69f6a2d"
	fmt.Println(wxpay.Sign(params, key, wxpay.SignMD5))
	fmt.Println(wxpay.Sign(params, key, wxpay.SignHMACSHA256))

	params["sign"] = wxpay.Sign(params, key, wxpay.SignMD5)
	fmt.Println(wxpay.VerifySign(params, key))
	// Output:
	// 9A0A8659F005D6984697E2CA0A9CF3B7
	// 6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6
	// true
}

func ExampleEncodeXML() {
	doc, err := wxpay.EncodeXML(wxpay.Params{
		"mch_billno": "10000098201411111234567890",
		"wishing":    "恭喜发财 & <大吉>",
		"remark":     "a]]>b",
		"scene_id":   "", // empty values are omitted
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(doc))
	// Output:
	// <xml><mch_billno>10000098201411111234567890</mch_billno><remark>a]]&gt;b</remark><wishing><![CDATA[恭喜发财 & <大吉>]]></wishing></xml>
}

func ExampleDecodeXML() {
	params, err := wxpay.DecodeXML([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<xml>
  <return_code><![CDATA[SUCCESS]]></return_code>
  <result_code><![CDATA[FAIL]]></result_code>
  <err_code><![CDATA[NOTENOUGH]]></err_code>
  <err_code_des>帐号余额不足，请到商户平台充值后再重试</err_code_des>
</xml>`))
	if err != nil {
		panic(err)
	}
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Printf("%s=%s\n", name, params[name])
	}

	_, err = wxpay.DecodeXML([]byte("<html><body>400 Bad Request</body></html>"))
	fmt.Println(err)
	// Output:
	// err_code=NOTENOUGH
	// err_code_des=帐号余额不足，请到商户平台充值后再重试
	// result_code=FAIL
	// return_code=SUCCESS
	// wxpay: malformed XML: an HTML page
}
