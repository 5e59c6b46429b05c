package wxpay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// answerTransport answers every request in memory with one document.
type answerTransport struct {
	body  []byte
	calls atomic.Int32
}

func (a *answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	a.calls.Add(1)
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/xml"}},
		Body: io.NopCloser(strings.NewReader(string(a.body))), Request: r}, nil
}

// TestErrCodeOutcomes: what each of WeChat's red packet err_codes means for
// the money, and whether a later retry with the same billno may help.
func TestErrCodeOutcomes(t *testing.T) {
	type want struct {
		outcome   Outcome
		retryable bool
		attempts  int // of a send with MaxAttempts 3
	}
	unknownRetried := want{OutcomeUnknown, true, 3}
	final := want{OutcomeFailed, false, 1}
	table := map[string]want{
		"SYSTEMERROR":       unknownRetried,             // 请求已受理，请稍后使用原单号查询发放结果
		"PROCESSING":        {OutcomeUnknown, false, 1}, // 发红包流程正在处理: query later, do not hammer
		"FREQ_LIMIT":        {OutcomeFailed, true, 3},   // 超过频率限制: refused, back off and retry
		"CA_ERROR":          final,                      // 商户证书有误
		"SIGN_ERROR":        final,                      // 签名错误
		"NOTENOUGH":         final,                      // 帐号余额不足
		"SENDNUM_LIMIT":     final,                      // 该用户今日领取红包个数超过限制
		"SENDAMOUNT_LIMIT":  final,                      // 您的商户号今日发放金额超过限制
		"RCVDAMOUNT_LIMIT":  final,                      // 该用户今日领取金额超过限制
		"MONEY_LIMIT":       final,                      // 发送红包金额不在限制范围内
		"NO_AUTH":           final,                      // 发放失败，此请求可能存在风险，已被微信拦截
		"ILLEGAL_APPID":     final,                      // 非法appid
		"OPENID_ERROR":      final,                      // openid和appid不匹配
		"MSGAPPID_ERROR":    final,                      // 触达消息给用户appid有误
		"ACCEPTMODE_ERROR":  final,                      // 主、子商户号关系校验失败
		"API_METHOD_CLOSED": final,                      // 你的商户号API发放方式已关闭
		"PARAM_ERROR":       final,                      // 参数错误
		"XML_ERROR":         final,                      // 输入xml参数格式错误
		"SEND_FAILED":       final,                      // 红包发放失败,请更换单号再重试
		"FATAL_ERROR":       final,                      // openid和原始单参数不一致
		"NOT_FOUND":         unknownRetried,             // on a send: unexpected, so unknown
		"SOME_NEW_CODE":     unknownRetried,             // anything unlisted: unknown
		"notenough":         unknownRetried,             // codes are matched exactly
	}
	for code, w := range table {
		t.Run(code, func(t *testing.T) {
			tr := &answerTransport{body: mustXML(t, errParams(code, "des "+code))}
			clock := newFakeClock()
			c, err := NewClient(Config{Credentials: testCredentials(t), BaseURL: "https://wxpay.test", Transport: tr,
				Now: clock.Now, Sleep: clock.Sleep})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.SendRedpack(context.Background(), validSend())
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("err = %v", err)
			}
			if we.Outcome != w.outcome || we.Retryable != w.retryable || we.Code != code {
				t.Errorf("%s: %s retryable=%v, want %s retryable=%v", we.Code, we.Outcome, we.Retryable, w.outcome, w.retryable)
			}
			if we.Attempts != w.attempts || int(tr.calls.Load()) != w.attempts {
				t.Errorf("attempts %d (transport %d), want %d", we.Attempts, tr.calls.Load(), w.attempts)
			}
			if we.Message != "des "+code {
				t.Errorf("message %q", we.Message)
			}
			if got := IsCredentialError(err); got != (code == "CA_ERROR" || code == "SIGN_ERROR") {
				t.Errorf("IsCredentialError = %v", got)
			}
		})
	}
	// Every code the client lists is in the table above.
	for code := range errCodeVerdicts {
		if _, ok := table[code]; !ok {
			t.Errorf("err_code %s is classified but not tested", code)
		}
	}
	// NOT_FOUND on gethbinfo is its own, final outcome.
	if v := classifyErrCode("NOT_FOUND", true); v.outcome != OutcomeNotFound || v.retry != retryNever {
		t.Errorf("gethbinfo NOT_FOUND: %+v", v)
	}
	if v := classifyErrCode("SYSTEMERROR", true); v.outcome != OutcomeUnknown || v.retry != retrySame {
		t.Errorf("gethbinfo SYSTEMERROR: %+v", v)
	}
}

func mustXML(t testing.TB, p Params) []byte {
	b, err := EncodeXML(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutcomeOf(t *testing.T) {
	callErr := &Error{API: "sendredpack", MchBillno: "B1", Outcome: OutcomeFailed, Code: "NOTENOUGH"}
	tests := []struct {
		err  error
		want Outcome
	}{
		{nil, OutcomeSuccess},
		{callErr, OutcomeFailed},
		{fmt.Errorf("handler: %w", callErr), OutcomeFailed},
		{&Error{Outcome: OutcomeUnknown}, OutcomeUnknown},
		{&Error{Outcome: OutcomeNotFound}, OutcomeNotFound},
		{&ValidationError{Field: "mch_billno", Reason: "is required"}, OutcomeFailed},
		{fmt.Errorf("x: %w", &ValidationError{Field: "x"}), OutcomeFailed},
		{context.DeadlineExceeded, OutcomeUnknown},
		{errors.New("something else"), OutcomeUnknown},
		{&XMLError{Reason: "x"}, OutcomeUnknown},
	}
	for _, tt := range tests {
		if got := OutcomeOf(tt.err); got != tt.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	inner := errors.New("connection reset")
	e := &Error{API: "sendredpack", MchBillno: "B1", Outcome: OutcomeUnknown, Code: CodeNetwork, Message: "no answer", Err: inner}
	if got, want := e.Error(), "wxpay: sendredpack B1: unknown NETWORK_ERROR: no answer: connection reset"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, inner) {
		t.Error("Error does not unwrap")
	}
	if got, want := (&Error{API: "gethbinfo", MchBillno: "B2", Outcome: OutcomeNotFound, Code: "NOT_FOUND"}).Error(), "wxpay: gethbinfo B2: not_found NOT_FOUND"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if IsCredentialError(errors.New("CA_ERROR")) || IsCredentialError(nil) {
		t.Error("IsCredentialError of a plain error")
	}
	if !IsCredentialError(fmt.Errorf("w: %w", &Error{Code: "SIGN_ERROR", Outcome: OutcomeFailed})) {
		t.Error("IsCredentialError does not unwrap")
	}
	if IsCredentialError(&Error{Code: "CA_ERROR", Outcome: OutcomeUnknown}) {
		t.Error("IsCredentialError of an unknown outcome: a refresh and resend could pay twice")
	}
}
