package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

const (
	// reconcileBillno is the billno of the reconciler's red packet.
	reconcileBillno = "LOCALRECON0001"
	// reconcileSpeed is how many times as fast as the wall clock the
	// simulator's clock runs once the reconciler's section starts: an
	// hour a second.
	reconcileSpeed = 3600
)

// showReconcile shows the reconciler settling an unknown send, after the
// samples. It sends the send function's direct sample with its own billno
// while WeChat accepts it but answers PROCESSING (an injected
// FaultProcessingAfterPay): the answer is unknown, the ledger holds the red
// packet UNKNOWN and WeChat shows it SENDING. Then the simulator's clock
// runs reconcileSpeed times as fast, and once the item's first check is
// due and WeChat's SENDING has ended (ten minutes on that clock, a sixth
// of a second), one pass of the reconciler (the reconcile.Reconciler
// ReconcileFunction runs, over the run's ledger, on the simulator's clock)
// moves it to SENT: paid once. It returns how many steps were not as
// expected.
func showReconcile(ctx context.Context, handlers map[string]*handler.Handler, eventsDir string, env *environment, out io.Writer) (unexpected int) {
	fmt.Fprintf(out, "── reconciler (an unknown send settled by one pass, the simulator's clock %d times as fast) ──\n", reconcileSpeed)
	sample := filepath.Join(eventsDir, "send", "direct.json")
	payload, err := withBillno(sample, reconcileBillno)
	if err != nil {
		fmt.Fprintf(out, "  cannot read %s: %v\n\n", sample, err)
		return 1
	}
	key := ledger.Key{MchID: env.sim.Merchant().MchID, MchBillno: reconcileBillno}

	// The send: WeChat pays, then answers PROCESSING.
	fmt.Fprintf(out, "  send direct.json as %s; WeChat pays it and answers PROCESSING (injected)\n", reconcileBillno)
	env.sim.FailSends(reconcileBillno, wxpaytest.Fault{Kind: wxpaytest.FaultProcessingAfterPay})
	answer, err := invokeFunction(ctx, handlers[handler.Send.Name()], payload)
	var got struct {
		Error *struct {
			Code    string `json:"code"`
			Outcome string `json:"outcome"`
		} `json:"error"`
	}
	var problems []string
	switch {
	case err != nil:
		problems = append(problems, err.Error())
	case json.Unmarshal(answer, &got) != nil:
		problems = append(problems, "unreadable answer")
	case got.Error == nil || got.Error.Code != "PROCESSING" || got.Error.Outcome != "unknown":
		problems = append(problems, "not answered PROCESSING, outcome unknown")
	}
	it, err := env.ledger.Get(ctx, key)
	if err != nil || it.State != ledger.Unknown {
		problems = append(problems, fmt.Sprintf("the ledger holds %s", stateOf(it, err)))
	}
	sent, _ := env.sim.Record(reconcileBillno)
	if sent.Status != wxpay.StatusSending || env.sim.Payments(reconcileBillno) != 1 {
		problems = append(problems, fmt.Sprintf("WeChat shows %q, %d payments", sent.Status, env.sim.Payments(reconcileBillno)))
	}
	unexpected += report(out, "direct.json", "unknown: PROCESSING; the ledger holds it UNKNOWN, WeChat shows it SENDING (paid)", problems, answer)
	if len(problems) > 0 {
		fmt.Fprintln(out)
		return unexpected
	}

	// WeChat's clock runs ahead: the item's first check (a minute after
	// the send) and the end of SENDING (ten minutes) come at once.
	env.clock.SetSpeed(reconcileSpeed)
	due := it.NextCheckAt
	if end := sent.SendTime.Add(wxpaytest.DefaultSending); end.After(due) {
		due = end
	}
	due = due.Add(time.Minute)
	waited := time.Now()
	for env.clock.Now().Before(due) && time.Since(waited) < 10*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintf(out, "  %.0f minutes later on the simulator's clock (%v of wall time): the first check is due, WeChat shows %s\n",
		env.clock.Now().Sub(sent.SendTime).Minutes(), time.Since(waited).Round(time.Millisecond), statusAt(env.sim))

	// One pass of the reconciler, on the simulator's clock.
	rec, err := newReconciler(ctx, env)
	if err != nil {
		fmt.Fprintf(out, "  the reconciler: %v\n\n", err)
		return unexpected + 1
	}
	passCtx, cancel := context.WithTimeout(ctx, functionTimeout)
	s := rec.RunOnce(passCtx)
	cancel()
	problems = nil
	if s.Checked != 1 || s.Settled != 1 || s.Transitions["UNKNOWN->SENT"] != 1 || s.Errors != 0 {
		problems = append(problems, fmt.Sprintf("checked %d, settled %d, transitions %v, errors %d", s.Checked, s.Settled, s.Transitions, s.Errors))
	}
	after, err := env.ledger.Get(ctx, key)
	if err != nil || after.State != ledger.Sent || after.Status != wxpay.StatusSent {
		problems = append(problems, fmt.Sprintf("the ledger holds %s", stateOf(after, err)))
	}
	if n := env.sim.Payments(reconcileBillno); n != 1 {
		problems = append(problems, fmt.Sprintf("WeChat paid it %d times", n))
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // "UNKNOWN->SENT" as written
	_ = enc.Encode(s)
	unexpected += report(out, "one pass", "UNKNOWN -> SENT: checked 1, settled 1; WeChat paid it once", problems, bytes.TrimSpace(body.Bytes()))
	fmt.Fprintln(out)
	return unexpected
}

// newReconciler builds the reconciler as ReconcileFunction does
// (handler.ReconcileFromEnv: credentials from the Secrets Manager secret),
// over the run's ledger and on the simulator's clock.
func newReconciler(ctx context.Context, env *environment) (*reconcile.Reconciler, error) {
	logger := handler.NewLogger(os.Stdout, os.Getenv("AWS_LAMBDA_LOG_LEVEL"))
	settings, err := handler.SettingsFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	creds, err := credstore.FromEnv(ctx, settings.NewClient, logger)
	if err != nil {
		return nil, err
	}
	return &reconcile.Reconciler{Ledger: env.ledger, WeChat: reconcile.Merchant{Store: creds}, Now: env.clock.Now, Logger: logger}, nil
}

// statusAt is the reconciler's red packet's status at WeChat.
func statusAt(sim *wxpaytest.Server) string {
	rec, ok := sim.Record(reconcileBillno)
	if !ok {
		return "no record"
	}
	return rec.Status
}

// stateOf describes a ledger item read, or why it could not be.
func stateOf(it *ledger.Item, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case it.Status != "":
		return fmt.Sprintf("%s (gethbinfo %s)", it.State, it.Status)
	}
	return string(it.State)
}

// withBillno returns the JSON request in file with mch_billno set to
// billno, its other fields as they are.
func withBillno(file, billno string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	payload, err := withField(b, "mch_billno", billno)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return payload, nil
}
