// End-to-end tests of the four functions: each builds the real bootstrap
// (-tags lambda.norpc, as the Makefile does) and drives it through the
// Lambda Runtime API (internal/runtimeapi) with the WeChat Pay simulator
// and the Secrets Manager fake reached through the environment, as
// `sam local invoke` would, without Docker.
package functions_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBuildDir()
	os.Exit(code)
}

// TestEvents invokes every sample event of each function twice through one
// bootstrap: the first answer is checked against the simulator's ledger,
// the second (warm) one must be the same red packet, with no new payment,
// Secrets Manager call or TLS handshake.
func TestEvents(t *testing.T) {
	bins := bootstraps(t)
	openids := openIDs(t)
	for _, fn := range functionNames {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			st := newStack(t)
			if fn == "query" {
				sendQueried(t, st, bins, openids)
			}
			calls0, hs0 := st.sm.Calls(), st.sim.SettledHandshakes()
			p := startProc(t, fn, bins[fn], st.env())
			for i, file := range eventFiles(t, fn) {
				t.Run(file, func(t *testing.T) {
					payload := readEvent(t, fn, file)
					cold := checkEvent(t, st, p, fn, file, payload)
					if i == 0 {
						if got := st.sm.Calls() - calls0; got != 1 {
							t.Errorf("first invocation: %d GetSecretValue calls, want 1", got)
						}
						if got := st.sim.Handshakes() - hs0; got != 1 {
							t.Errorf("first invocation: %d TLS handshakes, want 1", got)
						}
					}
					paid, hs, reqs := st.sim.TotalPayments(), st.sim.Handshakes(), st.sim.Requests()
					warm := checkEvent(t, st, p, fn, file, payload)
					if !maps.Equal(cold, warm) {
						t.Errorf("warm invocation answered %v, the first one %v", warm, cold)
					}
					if got := st.sim.TotalPayments(); got != paid {
						t.Errorf("warm invocation: %d payments, want %d (none new)", got, paid)
					}
					if got, want := st.sim.Requests()-reqs, len(cold); got != want {
						t.Errorf("warm invocation: %d simulator requests, want %d", got, want)
					}
					if got := st.sm.Calls() - calls0; got != 1 {
						t.Errorf("after a warm invocation: %d GetSecretValue calls in all, want 1", got)
					}
					// One request at a time keeps the one connection. The
					// records of an SQS batch run concurrently: each may
					// hold a connection, and net/http keeps the connection
					// a request dialled even when a freed one served it
					// first, so a batch of n may leave up to 2n-1 kept-alive
					// connections (timing decides). That bound, not a
					// handshake per invocation, is what holds.
					total := st.sim.Handshakes() - hs0
					if kindOf(file) == kindSQS {
						if limit := 2*len(cold) - 1; total > limit {
							t.Errorf("%d TLS handshakes since the process started, want at most %d for batches of %d", total, limit, len(cold))
						}
					} else {
						if got := st.sim.Handshakes(); got != hs {
							t.Errorf("warm invocation: %d new TLS handshakes, want 0", got-hs)
						}
						if total != 1 {
							t.Errorf("%d TLS handshakes since the process started, want 1", total)
						}
					}
				})
			}
			checkOutput(t, p, append(st.secrets(), openids...)...)
		})
	}
}

// sendQueried sends the red packets the query samples ask about, through
// the sendmini and send bootstraps, on st.
func sendQueried(t *testing.T, st *stack, bins map[string]string, openids []string) {
	t.Helper()
	for _, src := range []struct {
		fn    string
		files []string
	}{
		{"sendmini", []string{"apigw-rest.json", "sqs.json"}},
		{"send", []string{"direct.json"}},
	} {
		p := startProc(t, src.fn, bins[src.fn], st.env())
		for _, file := range src.files {
			checkEvent(t, st, p, src.fn, file, readEvent(t, src.fn, file))
		}
		checkOutput(t, p, append(st.secrets(), openids...)...)
	}
	for _, file := range eventFiles(t, "query") {
		for _, r := range requestsIn(t, readEvent(t, "query", file)) {
			if _, ok := st.sim.Record(r.billno()); !ok {
				t.Fatalf("%s queries %s, which no send sample sent", file, r.billno())
			}
		}
	}
}

// checkEvent invokes one event that must succeed and checks the answer
// against the simulator's ledger. It returns each billno's send_listid
// (detail_id for a query).
func checkEvent(t *testing.T, st *stack, p *proc, fn, file string, payload []byte) map[string]string {
	t.Helper()
	kind := kindOf(file)
	reqs := requestsIn(t, payload)
	lines := make([]logLine, len(reqs))
	for i, r := range reqs {
		lines[i] = logLine{billno: r.billno(), outcome: "success"}
	}
	res := p.invoke(t, payload, lines...)
	ids := make(map[string]string, len(reqs))
	if kind == kindSQS {
		if failed := decodeBatch(t, res.Payload); len(failed) != 0 {
			t.Errorf("%s: batchItemFailures %v, want none", file, failed)
		}
		for _, r := range reqs {
			rec, ok := st.sim.Record(r.billno())
			if !ok {
				t.Errorf("%s: %s: no red packet in the ledger", file, r.billno())
			}
			ids[r.billno()] = rec.SendListID
		}
	} else {
		status, body := decodeAnswer(t, kind, res.Payload)
		if kind == kindAPIGW && status != 200 {
			t.Errorf("%s: statusCode %d, want 200: %s", file, status, res.Payload)
		}
		if body.Error != nil {
			t.Fatalf("%s: error answer %+v", file, *body.Error)
		}
		r := reqs[0]
		rec, ok := st.sim.Record(r.billno())
		switch {
		case body.MchBillno != r.billno():
			t.Errorf("%s: mch_billno %q, want %q", file, body.MchBillno, r.billno())
		case !ok:
			t.Errorf("%s: %s: no red packet in the ledger", file, r.billno())
		case body.listID() == "" || body.listID() != rec.SendListID:
			t.Errorf("%s: send_listid %q, the ledger's %q", file, body.listID(), rec.SendListID)
		}
		if body.MchID != st.merchant.MchID {
			t.Errorf("%s: mch_id %q, want %q", file, body.MchID, st.merchant.MchID)
		}
		if body.TotalAmount != rec.TotalAmount {
			t.Errorf("%s: total_amount %d, the ledger's %d", file, body.TotalAmount, rec.TotalAmount)
		}
		switch fn {
		case "sendmini":
			verifyJSAPI(t, body, r.str("wxappid"), st.merchant.APIKey)
			if body.Package != rec.Package {
				t.Errorf("%s: package %q, the ledger's %q", file, body.Package, rec.Package)
			}
		case "query":
			if body.Status != rec.Status {
				t.Errorf("%s: status %q, the ledger's %q", file, body.Status, rec.Status)
			}
		default:
			if body.ReOpenID != r.str("re_openid") || body.WxAppID != r.str("wxappid") {
				t.Errorf("%s: re_openid/wxappid %q/%q, want the request's", file, body.ReOpenID, body.WxAppID)
			}
		}
		ids[r.billno()] = body.listID()
	}
	for b := range ids {
		if n := st.sim.Payments(b); n != 1 {
			t.Errorf("%s: %s paid %d times, want 1", file, b, n)
		}
	}
	return ids
}

// TestFailures drives the failure paths through one bootstrap per
// function (WXPAY_MAX_ATTEMPTS=1, so no retry waits): an invalid request,
// a refusal, an unknown outcome and its retry, and an SQS batch with one
// bad record.
func TestFailures(t *testing.T) {
	bins := bootstraps(t)
	openids := openIDs(t)
	for _, fn := range functionNames {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			st := newStack(t)
			p := startProc(t, fn, bins[fn], st.env("WXPAY_MAX_ATTEMPTS=1"))
			billno := func(n int) string { return fmt.Sprintf("E2E%s%04d", strings.ToUpper(fn), n) }
			// call invokes billno's request as the API route does and
			// returns the status and body.
			call := func(t *testing.T, b string, want logLine) (int, answerBody) {
				t.Helper()
				ev := queryEvent(t, b)
				if fn != "query" {
					ev = restEvent(t, fn, directRequest(t, fn, b, nil))
				}
				return decodeAnswer(t, kindAPIGW, p.invoke(t, ev, want).Payload)
			}

			t.Run("invalid", func(t *testing.T) {
				b := billno(1)
				req := directRequest(t, fn, b, map[string]any{"mch_id": st.merchant.MchID})
				var status int
				var body answerBody
				if fn == "query" {
					// The route takes the billno from the path: a body
					// is a direct invoke's.
					_, body = decodeAnswer(t, kindDirect, p.invoke(t, mustJSON(t, req), logLine{anyBillno, "failed"}).Payload)
					status = 400
				} else {
					status, body = decodeAnswer(t, kindAPIGW, p.invoke(t, restEvent(t, fn, req), logLine{anyBillno, "failed"}).Payload)
				}
				wantError(t, status, body, 400, "INVALID_REQUEST", "failed", false)
				if body.Error != nil && body.Error.Field != "mch_id" {
					t.Errorf("error field %q, want mch_id", body.Error.Field)
				}
				if n := st.sim.Requests(); n != 0 {
					t.Errorf("the simulator saw %d requests, want none", n)
				}
				if n := st.sm.Calls(); n != 0 {
					t.Errorf("%d GetSecretValue calls before any valid request, want none", n)
				}
			})

			t.Run("refused", func(t *testing.T) {
				b := billno(2)
				st.sim.FailBillno(b, wxpaytest.Fault{Kind: wxpaytest.FaultErrCode, Code: "NOTENOUGH"})
				status, body := call(t, b, logLine{b, "failed"})
				wantError(t, status, body, 422, "NOTENOUGH", "failed", false)
				if body.MchBillno != b {
					t.Errorf("mch_billno %q, want %q", body.MchBillno, b)
				}
				if n := st.sim.Payments(b); n != 0 {
					t.Errorf("%s paid %d times after a refusal", b, n)
				}
				if n := st.sim.RequestsFor(b); n != 1 {
					t.Errorf("%d requests for %s, want 1 (a refusal is not retried)", n, b)
				}
			})

			t.Run("unknown", func(t *testing.T) {
				b := billno(3)
				if fn == "query" {
					seedRecord(t, st, b)
				}
				reqs := st.sim.RequestsFor(b)
				st.sim.FailBillno(b, wxpaytest.Fault{Kind: wxpaytest.FaultSystemError})
				status, body := call(t, b, logLine{b, "unknown"})
				wantError(t, status, body, 503, "SYSTEMERROR", "unknown", true)
				if n := st.sim.RequestsFor(b) - reqs; n != 1 {
					t.Errorf("%d requests for %s, want 1 (WXPAY_MAX_ATTEMPTS=1)", n, b)
				}
				if fn != "query" {
					if n := st.sim.Payments(b); n != 0 {
						t.Errorf("%s paid %d times after SYSTEMERROR without payment", b, n)
					}
				}
				// The caller retries with the same billno.
				status, body = call(t, b, logLine{b, "success"})
				rec, _ := st.sim.Record(b)
				if status != 200 || body.Error != nil || body.listID() != rec.SendListID {
					t.Errorf("retry: status %d, body %+v; want 200 with send_listid %q", status, body, rec.SendListID)
				}
				if n := st.sim.Payments(b); n != 1 {
					t.Errorf("%s paid %d times after the retry, want 1", b, n)
				}
			})

			if fn == "query" {
				t.Run("not found", func(t *testing.T) {
					b := billno(4)
					status, body := call(t, b, logLine{b, "not_found"})
					wantError(t, status, body, 404, "NOT_FOUND", "not_found", false)
				})
			}

			t.Run("sqs one bad record", func(t *testing.T) {
				good, bad := billno(5), billno(6)
				if fn == "query" {
					seedRecord(t, st, good)
				}
				ids := []string{"e2e-good-0001", "e2e-bad-0002"}
				ev := sqsEvent(t, fn, ids, []map[string]any{
					directRequest(t, fn, good, nil),
					directRequest(t, fn, bad, map[string]any{"mch_id": st.merchant.MchID}),
				})
				res := p.invoke(t, ev, logLine{good, "success"}, logLine{anyBillno, "failed"})
				if failed := decodeBatch(t, res.Payload); len(failed) != 1 || failed[0] != ids[1] {
					t.Errorf("batchItemFailures %v, want exactly [%s]", failed, ids[1])
				}
				if n := st.sim.Payments(good); n != 1 {
					t.Errorf("%s paid %d times, want 1", good, n)
				}
				if n := st.sim.RequestsFor(bad); n != 0 {
					t.Errorf("the invalid record reached the simulator %d times", n)
				}
			})

			if n := st.sm.Calls(); n != 1 {
				t.Errorf("%d GetSecretValue calls in all, want 1", n)
			}
			checkOutput(t, p, append(st.secrets(), openids...)...)
		})
	}
}

// TestConfigErrors: a function whose secret is missing, unset or unusable
// answers 500 CONFIG_ERROR naming what to fix, sends nothing, and recovers
// without a restart once the secret is fixed.
func TestConfigErrors(t *testing.T) {
	bins := bootstraps(t)
	openids := openIDs(t)
	for _, fn := range functionNames {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			st := newStack(t)
			event := readEvent(t, fn, "apigw-rest.json")
			billno := requestsIn(t, event)[0].billno()

			t.Run("WXPAY_SECRET_ID unset", func(t *testing.T) {
				calls := st.sm.Calls()
				p := startProc(t, fn, bins[fn], st.env("WXPAY_SECRET_ID="))
				status, body := decodeAnswer(t, kindAPIGW, p.invoke(t, event, logLine{billno, "failed"}).Payload)
				wantError(t, status, body, 500, "CONFIG_ERROR", "failed", false)
				if body.Error != nil && !strings.Contains(body.Error.Message, "WXPAY_SECRET_ID") {
					t.Errorf("message %q does not name WXPAY_SECRET_ID", body.Error.Message)
				}
				if n := st.sm.Calls() - calls; n != 0 {
					t.Errorf("%d GetSecretValue calls without a secret id", n)
				}
				checkOutput(t, p, append(st.secrets(), openids...)...)
			})

			t.Run("bad secret", func(t *testing.T) {
				const id = "wxpay/e2e-broken"
				const badJSON = "this is not JSON {"
				const shortKey = "e2e-short-apiv2-key"
				var secret map[string]any
				if err := json.Unmarshal(st.merchant.SecretJSON(), &secret); err != nil {
					t.Fatal(err)
				}
				secret["apiv2_key"] = shortKey
				calls := st.sm.Calls()
				p := startProc(t, fn, bins[fn], st.env("WXPAY_SECRET_ID="+id))
				for i, step := range []struct {
					name   string
					secret string // "" leaves the secret missing
					want   []string
				}{
					{"missing", "", []string{"secret", "ResourceNotFoundException"}},
					{"not JSON", badJSON, []string{"configuration error: secret:", "JSON"}},
					{"short apiv2_key", string(mustJSON(t, secret)), []string{"secret.apiv2_key"}},
				} {
					if step.secret != "" {
						st.sm.Put(id, step.secret)
					}
					status, body := decodeAnswer(t, kindAPIGW, p.invoke(t, event, logLine{billno, "failed"}).Payload)
					wantError(t, status, body, 500, "CONFIG_ERROR", "failed", false)
					for _, w := range step.want {
						if body.Error != nil && !strings.Contains(body.Error.Message, w) {
							t.Errorf("%s: message %q does not say %q", step.name, body.Error.Message, w)
						}
					}
					if n := st.sm.Calls() - calls; n != i+1 {
						t.Errorf("%s: %d GetSecretValue calls, want %d (each call tries again until a good fetch)", step.name, n, i+1)
					}
					if n := st.sim.Requests(); n != 0 {
						t.Errorf("%s: the simulator saw %d requests, want none", step.name, n)
					}
				}
				// Fixed: the next invocation fetches again and goes through.
				st.sm.Put(id, string(st.merchant.SecretJSON()))
				want := logLine{billno, "success"}
				if fn == "query" {
					want.outcome = "not_found" // nothing was sent in this stack
				}
				status, body := decodeAnswer(t, kindAPIGW, p.invoke(t, event, want).Payload)
				switch {
				case fn == "query":
					wantError(t, status, body, 404, "NOT_FOUND", "not_found", false)
				case status != 200 || body.Error != nil:
					t.Errorf("after fixing the secret: status %d, body %+v; want 200", status, body)
				}
				checkOutput(t, p, append(st.secrets(), append(openids, badJSON, shortKey)...)...)
			})
		})
	}
}

// wantError checks a failure answer's status and error fields.
func wantError(t *testing.T, status int, body answerBody, wantStatus int, code, outcome string, retryable bool) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status %d, want %d (body %+v)", status, wantStatus, body)
	}
	if body.Error == nil {
		t.Errorf("no error in the answer: %+v", body)
		return
	}
	e := body.Error
	if e.Code != code || e.Outcome != outcome || e.Retryable != retryable || e.Message == "" {
		t.Errorf("error %+v, want code %s, outcome %s, retryable %v and a message", *e, code, outcome, retryable)
	}
}
