package handler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// ReconcileHandler serves the reconciler function (ReconcileFunction).
// An EventBridge "Scheduled Event" (source aws.events), an EventBridge
// Scheduler invocation (its Input: any JSON object), a direct invoke with
// {} or no payload: one pass over the due items (reconcile.RunOnce). A
// direct invoke with {"mch_billno": "..."}: that item checked now, due or
// not (reconcile.Check). The answer is the pass's JSON summary, or the
// functions' error body. Build it once per execution environment.
type ReconcileHandler struct {
	rec     *reconcile.Reconciler
	log     *slog.Logger
	reserve time.Duration
	now     func() time.Time
	// campaigns, when set, has the reports of campaigns whose rows a pass
	// moved written again (WXPAY_CAMPAIGN_TABLE).
	campaigns *campaign.Engine
	// configErr, when set, is the answer to every invocation.
	configErr error
}

// NewReconcile returns the reconciler function's handler over rec, keeping
// settings.Reserve before each invocation's deadline.
func NewReconcile(rec *reconcile.Reconciler, settings Settings, logger *slog.Logger) *ReconcileHandler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ReconcileHandler{rec: rec, log: logger, reserve: settings.withDefaults().Reserve, now: time.Now}
}

// ReconcileFromEnv builds the reconciler function's handler the way a
// deployed function runs, from the same environment as the others
// (WXPAY_SECRET_ID, WXPAY_LEDGER_TABLE, WXPAY_BASE_URL, ...), plus the
// optional bounds of a pass: WXPAY_RECONCILE_BUDGET (gethbinfo queries,
// default reconcile.DefaultBudget), WXPAY_RECONCILE_BATCH (items read at a
// time, default reconcile.DefaultBatch) and WXPAY_RECONCILE_WORKERS (items
// checked at once, default reconcile.DefaultWorkers). It never fails: a
// configuration fault, a missing WXPAY_LEDGER_TABLE among them, is logged
// once and every invocation answers CONFIG_ERROR naming it.
func ReconcileFromEnv(ctx context.Context) *ReconcileHandler {
	env, cerr := loadEnvironment(ctx)
	logger := env.logger
	broken := func(settings Settings, err *credstore.ConfigError) *ReconcileHandler {
		logger.Error("configuration error", slog.String("function", "reconcile"), slog.String("error", err.Error()))
		h := NewReconcile(nil, settings, logger)
		h.configErr = err
		return h
	}
	if cerr != nil {
		return broken(env.settings, cerr)
	}
	rec := &reconcile.Reconciler{Logger: logger}
	for _, b := range []struct {
		name    string
		hi      int
		setting *int
	}{
		{"WXPAY_RECONCILE_BUDGET", 10000, &rec.Budget},
		{"WXPAY_RECONCILE_BATCH", 100, &rec.Batch},
		{"WXPAY_RECONCILE_WORKERS", 20, &rec.Workers},
	} {
		var err error
		if *b.setting, err = intEnv(os.Getenv, b.name, 1, b.hi); err != nil {
			return broken(env.settings, &credstore.ConfigError{Field: "environment", Reason: err.Error()})
		}
	}
	if env.ledger == nil {
		return broken(env.settings, &credstore.ConfigError{Field: "WXPAY_LEDGER_TABLE", Reason: "is required: the reconciler settles the ledger's red packets"})
	}
	rec.Ledger = env.ledger
	rec.WeChat = reconcile.Merchant{Store: env.creds}
	h := NewReconcile(rec, env.settings, logger)
	if env.campaigns != nil {
		h.campaigns = &campaign.Engine{Campaigns: env.campaigns, Logger: logger}
	}
	return h
}

// reconcileEvent is what the reconciler reads of its event; every other
// member is ignored.
type reconcileEvent struct {
	Source    string         `json:"source"`
	MchBillno jsontext.Value `json:"mch_billno"`
}

// Invoke implements lambda.Handler.
func (h *ReconcileHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	start := h.now()
	ctx, cancel := h.withReserve(ctx)
	defer cancel()
	billno, verr := decodeReconcileEvent(payload)
	var (
		body    []byte
		summary reconcile.Summary
		err     error
	)
	switch {
	case verr != nil:
		err = verr
	case h.configErr != nil:
		err = h.configErr
	case billno == "":
		summary = h.rec.RunOnce(ctx)
	default:
		summary, err = h.check(ctx, billno)
	}
	if err == nil {
		h.reportsDue(ctx, summary.Campaigns)
		body, err = marshal(summary)
	}
	if err != nil {
		body = failure(call{billno: billno}, err).body
	}
	h.logInvocation(ctx, billno, summary, err, start)
	return body, nil
}

// reportsDue asks for the reports of the campaigns whose rows the pass
// moved to be written again (by CampaignRunFunction's next tick). A
// failure is logged: the rows are settled in the ledger either way.
func (h *ReconcileHandler) reportsDue(ctx context.Context, ids []string) {
	if h.campaigns == nil {
		return
	}
	for _, id := range ids {
		if err := h.campaigns.MarkReportDue(ctx, id); err != nil {
			h.log.WarnContext(ctx, "reconcile: the campaign's report could not be marked due", slog.String("campaign_id", id), slog.String("error", err.Error()))
		}
	}
}

// check checks one billno of the merchant now.
func (h *ReconcileHandler) check(ctx context.Context, billno string) (reconcile.Summary, error) {
	mchID, err := h.rec.WeChat.MchID(ctx)
	if err != nil {
		return reconcile.Summary{}, err
	}
	s, err := h.rec.Check(ctx, ledger.Key{MchID: mchID, MchBillno: billno})
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return s, &wxpay.Error{API: "reconcile", MchBillno: billno, Outcome: wxpay.OutcomeNotFound, Code: "NOT_FOUND",
			Message: "mch_billno " + billno + " is not recorded in the ledger"}
	case err != nil:
		return s, &payout.Error{Code: payout.CodeLedgerUnavailable, Retryable: true, Err: err,
			Message: "the ledger could not be read for mch_billno " + billno + ": retry later"}
	}
	return s, nil
}

// decodeReconcileEvent says what an invocation asks: one pass (billno
// empty) or the check of billno. No payload, null, or a JSON object
// without mch_billno (a Scheduler's Input, {}) is a pass, and so is an
// EventBridge event (source aws.events) whatever it holds.
func decodeReconcileEvent(payload []byte) (billno string, verr *wxpay.ValidationError) {
	trimmed := bytes.TrimSpace(payload)
	switch {
	case len(trimmed) == 0 || string(trimmed) == "null":
		return "", nil
	case len(trimmed) > maxBodySize:
		return "", &wxpay.ValidationError{Field: "body", Reason: errTooLarge.Error()}
	case trimmed[0] != '{':
		return "", &wxpay.ValidationError{Field: "body", Reason: "must be a JSON object"}
	}
	var ev reconcileEvent
	if err := json.Unmarshal(trimmed, &ev); err != nil {
		return "", decodeError(err, reflect.TypeOf(ev))
	}
	if ev.Source == "aws.events" || len(ev.MchBillno) == 0 {
		return "", nil
	}
	if ev.MchBillno.Kind() != '"' || json.Unmarshal(ev.MchBillno, &billno) != nil {
		return "", &wxpay.ValidationError{Field: "mch_billno", Reason: fmt.Sprintf("must be a string, got %s", kindName(ev.MchBillno.Kind()))}
	}
	if wellFormedBillno(billno) == "" {
		return "", &wxpay.ValidationError{Field: "mch_billno", Reason: "must be 1 to 28 letters and digits"}
	}
	return billno, nil
}

// withReserve shortens the invocation's deadline so the function still has
// time to answer (and to log) before Lambda's own timeout.
func (h *ReconcileHandler) withReserve(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(h.reserve, deadline.Sub(h.now())/10)
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}

// logInvocation writes the one line each invocation gets: what it did,
// and for a pass or a check its CloudWatch metrics (Summary.Metrics) in
// the Embedded Metric Format; then, for each distinct move, a line
// "reconcile: transitions" with its metric Transitions by From and To
// (Summary.TransitionMetrics). An invocation refused (an invalid event, a
// configuration fault) or whose check failed has no metrics. A line below
// the log level carries none.
func (h *ReconcileHandler) logInvocation(ctx context.Context, billno string, s reconcile.Summary, err error, start time.Time) {
	level := slog.LevelInfo
	switch {
	case err != nil || s.StopError != "":
		level = slog.LevelError
	case s.Errors > 0 || s.Stopped != "":
		level = slog.LevelWarn
	}
	now := h.now()
	attrs := []slog.Attr{
		slog.String("function", "reconcile"),
		slog.String("mch_billno", billno),
		slog.Int("checked", s.Checked),
		slog.Int("settled", s.Settled),
		slog.Int("resent", s.Resent),
		slog.Int("needs_attention", s.NeedsAttention),
		slog.Int("lost_races", s.LostRaces),
		slog.Int("errors", s.Errors),
		slog.String("stopped", s.Stopped),
		slog.Float64("latency_ms", float64(now.Sub(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	} else if s.StopError != "" {
		attrs = append(attrs, slog.String("error", s.StopError))
	}
	if err == nil {
		attrs = append(attrs, s.Metrics(now).Attrs()...)
	}
	h.log.LogAttrs(ctx, level, "reconcile", attrs...)
	if err != nil {
		return
	}
	for _, e := range s.TransitionMetrics(now) {
		h.log.LogAttrs(ctx, slog.LevelInfo, "reconcile: transitions", append([]slog.Attr{slog.String("function", "reconcile")}, e.Attrs()...)...)
	}
}
