// Package wxpaytest is a WeChat Pay APIv2 red packet simulator for tests
// and local runs, as net/http/httptest is for net/http. WeChat Pay has no
// sandbox for red packets, so everything that is not production runs
// against it.
//
// A Server serves sendgroupredpack, sendminiprogramhb, sendredpack and
// gethbinfo over HTTPS with mutual TLS on loopback, and behaves as WeChat
// does in everything a client can observe:
//
//   - The gateway asks for the merchant API certificate. None, or one not
//     issued by the merchant CA (or expired on the server's clock), gets
//     nginx's HTML 400 page. A certificate whose subject CN is another
//     mch_id than the request's, or a revoked one, answers CA_ERROR.
//   - Bodies are read with wxpay.DecodeXML: an unreadable or oversized
//     body answers XML_ERROR. A signed field the endpoint does not know,
//     a sign_type other than MD5, or a wrong MD5 signature answers
//     SIGN_ERROR; a missing or malformed field answers PARAM_ERROR with an
//     err_code_des naming it.
//   - Failures that are the request's fault (XML_ERROR, SIGN_ERROR,
//     CA_ERROR, PARAM_ERROR) say return_code FAIL; business refusals say
//     return_code SUCCESS, result_code FAIL. Every failure carries err_code
//     and WeChat's Chinese err_code_des. Answers are not signed, as
//     WeChat's red packet answers are not.
//   - The ledger holds one red packet per mch_billno. Repeating a billno
//     with the same re_openid, total_amount, total_num, wxappid and API
//     answers the original result (same send_listid, same package) and
//     moves no money; other parameters answer FATAL_ERROR. A refused
//     request (NOTENOUGH, a limit, FREQ_LIMIT, ...) records nothing, so a
//     later try of its billno may pay, as WeChat treats those refusals.
//   - The merchant's caller-IP allowlist (Config.CallerIPs, SetCallerIPs;
//     调用IP地址 in the merchant platform): when set, a request from any
//     other remote address answers NO_AUTH, "IP地址非你在商户平台设置的可用IP地址"
//     (NoAuthCallerIP), and moves no money. None is set by default.
//   - Limits: balance (NOTENOUGH), amount per red packet (MONEY_LIMIT),
//     per-user daily count and amount (SENDNUM_LIMIT, RCVDAMOUNT_LIMIT),
//     merchant daily amount (SENDAMOUNT_LIMIT), requests per second
//     (FREQ_LIMIT). Days are China Standard Time days of the injected
//     clock.
//   - WeChat's timeline, on the server's clock (Config.Timeline, SetFate):
//     a red packet answered PROCESSING shows SENDING, then SENT or FAILED
//     (a failure returns the money); SENT becomes RECEIVED when claimed
//     (Receive, or a scripted claim), else RFUND_ING 24 hours after the
//     send and then REFUND, with refund_time and refund_amount, the
//     amount credited to the balance; a billno first tried more than 24
//     hours ago with no record answers SEND_FAILED and cannot pay. A
//     Clock, stopped (NewClock, Advance) or accelerated
//     (NewAcceleratedClock: an hour a second at speed 3600), makes the
//     day pass at once.
//
// Faults (FailNext, FailBillno, FailSends) make it misbehave as WeChat
// and the network do: SYSTEMERROR with or without the payment,
// PROCESSING, slow answers, connection resets before or after the ledger write, gateway
// errors, HTML pages, garbled or truncated XML, any err_code. A backup
// endpoint (api2) shares the ledger, and SetPrimaryDown makes clients fail
// over.
//
// Checks run in this order: gateway certificate, fault queue, XML, mch_id
// and certificate (CA_ERROR), known fields and signature (SIGN_ERROR),
// caller IP (NO_AUTH), request rate (FREQ_LIMIT), parameters
// (PARAM_ERROR), then the ledger: repeat or conflict (a repeat of a
// SENDING billno answers PROCESSING, of a FAILED one SEND_FAILED), the
// billno's window (SEND_FAILED), MONEY_LIMIT, SENDNUM_LIMIT,
// RCVDAMOUNT_LIMIT, SENDAMOUNT_LIMIT, NOTENOUGH.
//
// Keys: the CAs and the server use ECDSA P-256; merchant certificates use
// RSA 2048 like WeChat's, from a small per-process pool so that starting a
// server takes milliseconds. Injected Now and Rand make answers
// repeatable; nothing is logged unless Config.Logf is set.
package wxpaytest
