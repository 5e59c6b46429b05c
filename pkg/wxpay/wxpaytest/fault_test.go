package wxpaytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Each fault as the real client sees it: the outcome class, the retries
// (always with the same billno) and what the ledger holds afterwards.
func TestFaultsThroughClient(t *testing.T) {
	type want struct {
		code     string // "" for success
		outcome  wxpay.Outcome
		attempts int
		payments int
		status   int // HTTPStatus of the error
	}
	for _, tc := range []struct {
		name   string
		faults []Fault
		want   want
	}{
		{"systemerror once", []Fault{{Kind: FaultSystemError}}, want{"", "", 2, 1, 0}},
		{"systemerror every time", []Fault{{Kind: FaultSystemError}, {Kind: FaultSystemError}, {Kind: FaultSystemError}},
			want{"SYSTEMERROR", wxpay.OutcomeUnknown, 3, 0, 200}},
		{"systemerror after pay", []Fault{{Kind: FaultSystemErrorAfterPay}}, want{"", "", 2, 1, 0}},
		{"systemerror after pay, every time", []Fault{{Kind: FaultSystemErrorAfterPay}, {Kind: FaultSystemErrorAfterPay}, {Kind: FaultSystemErrorAfterPay}},
			want{"SYSTEMERROR", wxpay.OutcomeUnknown, 3, 1, 200}},
		{"processing", []Fault{{Kind: FaultProcessing}}, want{"PROCESSING", wxpay.OutcomeUnknown, 1, 0, 200}},
		{"processing after pay", []Fault{{Kind: FaultProcessingAfterPay}}, want{"PROCESSING", wxpay.OutcomeUnknown, 1, 1, 200}},
		{"reset before ledger", []Fault{{Kind: FaultResetBeforeLedger}}, want{"", "", 2, 1, 0}},
		{"reset after ledger", []Fault{{Kind: FaultResetAfterLedger}}, want{"", "", 2, 1, 0}},
		{"reset after ledger, every time", []Fault{{Kind: FaultResetAfterLedger}, {Kind: FaultResetAfterLedger}, {Kind: FaultResetAfterLedger}},
			want{wxpay.CodeNetwork, wxpay.OutcomeUnknown, 3, 1, 0}},
		{"502", []Fault{{Kind: FaultHTTP5xx}}, want{"", "", 2, 1, 0}},
		{"503 every time", []Fault{{Kind: FaultHTTP5xx, Status: 503}, {Kind: FaultHTTP5xx, Status: 503}, {Kind: FaultHTTP5xx, Status: 503}},
			want{wxpay.CodeHTTPStatus, wxpay.OutcomeUnknown, 3, 0, 503}},
		{"html page", []Fault{{Kind: FaultHTMLPage}}, want{"", "", 2, 1, 0}},
		{"html page with 403", []Fault{{Kind: FaultHTMLPage, Status: 403}}, want{wxpay.CodeHTTPStatus, wxpay.OutcomeUnknown, 1, 0, 403}},
		{"garbled", []Fault{{Kind: FaultGarbledXML}}, want{"", "", 2, 1, 0}},
		{"garbled every time", []Fault{{Kind: FaultGarbledXML}, {Kind: FaultGarbledXML}, {Kind: FaultGarbledXML}},
			want{wxpay.CodeBadResponse, wxpay.OutcomeUnknown, 3, 1, 200}},
		{"truncated", []Fault{{Kind: FaultTruncatedXML}}, want{"", "", 2, 1, 0}},
		{"freq limit", []Fault{{Kind: FaultFreqLimit}}, want{"", "", 2, 1, 0}},
		{"notenough", []Fault{{Kind: FaultErrCode, Code: "NOTENOUGH"}}, want{"NOTENOUGH", wxpay.OutcomeFailed, 1, 0, 200}},
		{"unknown err_code", []Fault{{Kind: FaultErrCode, Code: "NEW_CODE_2030", Message: "新错误"}}, want{"", "", 2, 1, 0}},
		{"short delay", []Fault{{Kind: FaultDelay, Delay: 30 * time.Millisecond}}, want{"", "", 1, 1, 0}},
		{"delayed systemerror", []Fault{{Kind: FaultSystemError, Delay: 20 * time.Millisecond}}, want{"", "", 2, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			c, sl := client(t, s)
			for _, f := range tc.faults {
				s.FailNext(1, f)
			}
			res, err := c.SendRedpack(context.Background(), sendReq("FLT1", "openid", 1000))
			w := tc.want
			if w.code == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				rec, _ := s.Record("FLT1")
				if res.Attempts != w.attempts || res.SendListID != rec.SendListID {
					t.Errorf("attempts %d, send_listid %s (ledger %s)", res.Attempts, res.SendListID, rec.SendListID)
				}
			} else {
				e := wxErr(t, err)
				if e.Code != w.code || e.Outcome != w.outcome || e.Attempts != w.attempts || e.HTTPStatus != w.status {
					t.Errorf("error %+v, want %s %s after %d attempts, status %d", e, w.outcome, w.code, w.attempts, w.status)
				}
				if wxpay.OutcomeOf(err) != w.outcome {
					t.Errorf("OutcomeOf = %s", wxpay.OutcomeOf(err))
				}
			}
			if got := s.Payments("FLT1"); got != w.payments {
				t.Errorf("payments %d, want %d", got, w.payments)
			}
			if got := s.RequestsFor("FLT1"); got != w.attempts {
				t.Errorf("requests for the billno %d, want %d (every try reuses it)", got, w.attempts)
			}
			if waits := sl.Waits(); len(waits) != w.attempts-1 {
				t.Errorf("waits %v", waits)
			} else {
				for _, d := range waits {
					if d < wxpay.MinRetryInterval {
						t.Errorf("wait %v below the minimum", d)
					}
				}
			}
		})
	}
}

// A slow answer past the caller's deadline: unknown TIMEOUT, yet WeChat
// paid; the retry with the billno answers the original red packet.
func TestDelayPastDeadline(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	// Open the connection first: the 300 ms below are for the request to
	// reach the simulator, not for a TLS handshake, which a loaded machine
	// can make last that long.
	if _, err := c.SendMiniProgramHB(context.Background(), miniReq("SLOW0", "openid", 100)); err != nil {
		t.Fatal(err)
	}
	s.FailNext(1, Fault{Kind: FaultDelay, Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := c.SendMiniProgramHB(ctx, miniReq("SLOW1", "openid", 100))
	e := wxErr(t, err)
	if e.Code != wxpay.CodeTimeout || e.Outcome != wxpay.OutcomeUnknown || e.Attempts != 1 {
		t.Errorf("error %+v", e)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("the call took %v", took)
	}
	if s.Payments("SLOW1") != 1 {
		t.Fatalf("payments %d", s.Payments("SLOW1"))
	}
	res, err := c.SendMiniProgramHB(context.Background(), miniReq("SLOW1", "openid", 100))
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Record("SLOW1"); res.SendListID != rec.SendListID || res.Package != rec.Package || s.Payments("SLOW1") != 1 {
		t.Errorf("retry answered %s, ledger %s", res.SendListID, rec.SendListID)
	}
}

// A slow service (FaultNone with a Delay) that the client gives up on
// never processes the request; one within the deadline does.
func TestSlowService(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	// Open the connection first, so that the request below is on its way
	// at once rather than after a TLS handshake.
	if _, err := c.SendRedpack(context.Background(), sendReq("SVC0", "openid", 100)); err != nil {
		t.Fatal(err)
	}
	// A delay no test waits for: the request is processed only if the
	// simulator misses the client giving up. (A short one raced the
	// simulator's noticing it, which a loaded machine can slow down.)
	s.FailNext(1, Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.SendRedpack(ctx, sendReq("SVC1", "openid", 100))
	if e := wxErr(t, err); e.Code != wxpay.CodeTimeout || e.Outcome != wxpay.OutcomeUnknown {
		t.Errorf("error %+v", e)
	}
	// Once the simulator has the request, wait for its handler to end:
	// it drops the request when it sees the client gone, and would
	// process it only after the minute.
	for deadline := time.Now().Add(10 * time.Second); s.RequestsFor("SVC1") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the simulator")
		}
	}
	s.inflight.Wait()
	if s.Payments("SVC1") != 0 {
		t.Error("a request the client gave up on was processed")
	}
	s.FailNext(1, Fault{Delay: 30 * time.Millisecond})
	if res, err := c.SendRedpack(context.Background(), sendReq("SVC2", "openid", 100)); err != nil || res.Attempts != 1 || s.Payments("SVC2") != 1 {
		t.Errorf("%v %v", res, err)
	}
}

// Closing the server ends held answers at once.
func TestCloseEndsDelays(t *testing.T) {
	s := NewServer()
	c, _ := client(t, s)
	s.FailNext(1, Fault{Kind: FaultDelay, Delay: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := c.SendRedpack(context.Background(), sendReq("CLOSE1", "openid", 100))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Payments("CLOSE1") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	begin := time.Now()
	s.Close()
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := <-done; err == nil {
		t.Error("the held call succeeded")
	}
}

func TestFailBillnoScript(t *testing.T) {
	s := start(t)
	c, _ := client(t, s, func(cfg *wxpay.Config) { cfg.MaxAttempts = 5 })
	ctx := context.Background()
	s.FailBillno("SCR1", Fault{Kind: FaultSystemError}, Fault{}, Fault{Kind: FaultResetAfterLedger})
	// The first try fails, the second goes through (Fault{} in the
	// script), the client is done.
	res, err := c.SendRedpack(ctx, sendReq("SCR1", "openid", 100))
	if err != nil || res.Attempts != 2 {
		t.Fatalf("%v %v", res, err)
	}
	// The script's third entry hits the next request for the billno, a
	// repeat, which then succeeds on its retry; other billnos are spared.
	if _, err := c.SendRedpack(ctx, sendReq("OTHER1", "openid2", 100)); err != nil {
		t.Fatal(err)
	}
	res, err = c.SendRedpack(ctx, sendReq("SCR1", "openid", 100))
	if err != nil || res.Attempts != 2 || s.Payments("SCR1") != 1 || s.RequestsFor("SCR1") != 4 {
		t.Errorf("%v %v, payments %d, requests %d", res, err, s.Payments("SCR1"), s.RequestsFor("SCR1"))
	}

	// FailNext comes first and leaves the script alone.
	s.FailBillno("SCR2", Fault{Kind: FaultSystemError})
	s.FailNext(1, Fault{Kind: FaultFreqLimit})
	res, err = c.SendRedpack(ctx, sendReq("SCR2", "openid3", 100))
	if err != nil || res.Attempts != 3 {
		t.Errorf("%v %v", res, err)
	}

	s.FailBillno("SCR3", Fault{Kind: FaultSystemError})
	s.FailNext(2, Fault{Kind: FaultSystemError})
	s.ClearFaults()
	if res, err = c.SendRedpack(ctx, sendReq("SCR3", "openid4", 100)); err != nil || res.Attempts != 1 {
		t.Errorf("after ClearFaults: %v %v", res, err)
	}
}

func TestQueryFaults(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	ctx := context.Background()
	if _, err := c.SendRedpack(ctx, sendReq("QF1", "openid", 100)); err != nil {
		t.Fatal(err)
	}
	s.FailNext(1, Fault{Kind: FaultSystemError})
	s.FailNext(1, Fault{Kind: FaultGarbledXML})
	res, err := c.QueryRedpack(ctx, &wxpay.QueryRequest{MchBillno: "QF1", AppID: "wx8888888888888888"})
	if err != nil || res.Attempts != 3 || res.Status != wxpay.StatusSent {
		t.Errorf("%+v %v", res, err)
	}
}

func TestFailover(t *testing.T) {
	s := start(t, WithBackup())
	if s.BackupURL == "" || s.BackupURL == s.URL {
		t.Fatalf("BackupURL %q", s.BackupURL)
	}
	c, sl := client(t, s)
	ctx := context.Background()

	// Warm a kept-alive connection to the primary, then take it down.
	if _, err := c.SendRedpack(ctx, sendReq("FO1", "u1", 100)); err != nil {
		t.Fatal(err)
	}
	s.SetPrimaryDown(true)
	res, err := c.SendRedpack(ctx, sendReq("FO2", "u2", 100))
	if err != nil {
		t.Fatalf("with the primary down: %v", err)
	}
	if res.Attempts != 2 || s.BackupRequests() != 1 || s.Requests() != 2 || s.Payments("FO2") != 1 || len(sl.Waits()) != 1 {
		t.Errorf("attempts %d, backup requests %d, requests %d, waits %v", res.Attempts, s.BackupRequests(), s.Requests(), sl.Waits())
	}
	// The backup serves the same ledger: a repeat there answers the
	// original.
	first, _ := s.Record("FO1")
	if again, err := c.SendRedpack(ctx, sendReq("FO1", "u1", 100)); err != nil || again.SendListID != first.SendListID {
		t.Errorf("repeat through the backup: %v %v", again, err)
	}

	// Both down: an unknown network error.
	s.SetBackupDown(true)
	_, err = c.SendRedpack(ctx, sendReq("FO3", "u3", 100))
	if e := wxErr(t, err); e.Code != wxpay.CodeNetwork || e.Outcome != wxpay.OutcomeUnknown || e.Attempts != 3 {
		t.Errorf("both down: %+v", e)
	}

	// Back up: the primary answers again.
	s.SetPrimaryDown(false)
	s.SetBackupDown(false)
	before := s.BackupRequests()
	if res, err := c.SendRedpack(ctx, sendReq("FO3", "u3", 100)); err != nil || res.Attempts != 1 || s.BackupRequests() != before {
		t.Errorf("primary back: %v %v", res, err)
	}
}

func TestKeepAlive(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	ctx := context.Background()
	for i := range 50 {
		if _, err := c.SendRedpack(ctx, sendReq(billnoN("KA", i), billnoN("u", i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if h := s.Handshakes(); h != 1 {
		t.Errorf("%d TLS handshakes for 50 sequential calls, want 1", h)
	}
	if h := s.SettledHandshakes(); h != 1 {
		t.Errorf("settled: %d TLS handshakes, want 1", h)
	}
}

func TestConcurrency(t *testing.T) {
	s := start(t)
	c, _ := client(t, s)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)

	// 50 red packets at once, each its own billno.
	for i := range 50 {
		wg.Go(func() {
			if _, err := c.SendRedpack(ctx, sendReq(billnoN("CC", i), billnoN("u", i), 100)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	if s.TotalPayments() != 50 || s.Balance() != DefaultBalance-50*100 {
		t.Errorf("payments %d, balance %d", s.TotalPayments(), s.Balance())
	}

	// 20 at once with one billno, some answers spoiled after the payment:
	// one red packet, every caller told the same send_listid. (Fewer spoiled
	// answers than the client's 3 tries, so that no caller, however the
	// scheduler interleaves them, can draw a spoiled answer on every try.)
	s.FailNext(2, Fault{Kind: FaultSystemErrorAfterPay})
	ids := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			res, err := c.SendMiniProgramHB(ctx, miniReq("SAME1", "openid", 100))
			if err != nil {
				errs <- err
				return
			}
			ids <- res.SendListID
		})
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Error(err)
	}
	rec, _ := s.Record("SAME1")
	n := 0
	for id := range ids {
		n++
		if id != rec.SendListID {
			t.Errorf("send_listid %s, ledger %s", id, rec.SendListID)
		}
	}
	if n != 20 || s.Payments("SAME1") != 1 {
		t.Errorf("%d answers, %d payments", n, s.Payments("SAME1"))
	}
}

func TestFaultKindString(t *testing.T) {
	if FaultResetAfterLedger.String() != "FaultResetAfterLedger" || FaultKind(99).String() != "FaultKind(99)" {
		t.Error(FaultResetAfterLedger.String(), FaultKind(99).String())
	}
	for k := FaultNone; k <= FaultErrCode; k++ {
		if k.String() == "" {
			t.Errorf("FaultKind %d has no name", int(k))
		}
	}
}
