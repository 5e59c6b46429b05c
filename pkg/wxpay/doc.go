// Package wxpay is a client for WeChat Pay's APIv2 red packet (现金红包)
// calls: sendgroupredpack, sendminiprogramhb, sendredpack and gethbinfo.
//
// It signs requests with MD5 (HMAC-SHA256 is available for other APIv2
// calls), writes and reads the flat <xml> wire format, authenticates with
// the merchant API certificate over mutual TLS (PEM or PKCS#12), validates
// every request before any I/O, and classifies every answer as success,
// failed (WeChat refused; no money moved) or unknown (money may have moved).
//
// Money rules the client keeps:
//   - mch_billno is the idempotency key. Every retry sends the same billno;
//     the client never makes one up.
//   - Only WeChat's explicit refusals are failures. Timeouts, SYSTEMERROR,
//     PROCESSING and unreadable answers are unknown.
//   - Retries wait at least MinRetryInterval, stay inside the caller's
//     context deadline, and fail over to the backup URL on network errors.
//
// The sibling package wxpaytest is a WeChat Pay simulator for tests and
// local runs, as net/http/httptest is for net/http.
package wxpay
