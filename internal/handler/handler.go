package handler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/go-json-experiment/json"

	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/payout"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Handler serves one function's events. Build it once per execution
// environment; it is safe for concurrent use.
type Handler struct {
	op       Operation
	store    *credstore.Store
	settings Settings
	// payout records each red packet in settings.Ledger around its send.
	payout *payout.Sender
	log    *slog.Logger
	now    func() time.Time
	// configErr, when set, is the answer to every request: the function
	// could not be configured.
	configErr error
}

// New returns the handler of op, taking WeChat Pay clients from store.
func New(op Operation, store *credstore.Store, settings Settings, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	settings = settings.withDefaults()
	return &Handler{op: op, store: store, settings: settings, payout: &payout.Sender{Ledger: settings.Ledger, Logger: logger},
		log: logger, now: time.Now}
}

// Invoke implements lambda.Handler: lambda.Start(h) hands it the raw event,
// whose shape tells the source. It answers an API Gateway event with an
// API Gateway response, an SQS batch with an SQS batch response, and a
// direct invoke with the JSON body an API caller gets. Every outcome, even
// a broken event, is an answer; the error is only ever encoding/json's,
// for a response it cannot write.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	ctx, cancel := h.withReserve(ctx)
	defer cancel()
	src, env := classify(payload)
	switch src {
	case SourceSQS:
		return marshal(h.batch(ctx, env.Records))
	case SourceREST, SourceHTTP:
		a := h.http(ctx, src, env)
		return httpResponse(src, a.status, a.body)
	}
	return h.handle(ctx, SourceDirect, httpRequest{body: payload}).body, nil
}

// withReserve shortens the invocation's deadline so the function still has
// time to answer (and to log) before Lambda's own timeout.
func (h *Handler) withReserve(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(h.settings.Reserve, deadline.Sub(h.now())/10)
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}

// http answers one API Gateway request.
func (h *Handler) http(ctx context.Context, src Source, env *envelope) answer {
	start := h.now()
	r, err := env.request(src)
	var refusal answer
	switch {
	case err != nil:
		refusal = failure(call{}, &wxpay.ValidationError{Field: "body", Reason: err.Error()})
	case r.method != h.op.Method():
		refusal = failure(call{}, &wxpay.ValidationError{Field: "method", Reason: "must be " + h.op.Method()})
		refusal.status = http.StatusMethodNotAllowed
	default:
		return h.handle(ctx, src, r)
	}
	h.logAnswer(ctx, src, refusal, start)
	return refusal
}

// handle decodes, validates and sends one request, and logs its line.
func (h *Handler) handle(ctx context.Context, src Source, r httpRequest) answer {
	start := h.now()
	c, verr := h.op.parse(r, h.settings)
	var a answer
	switch {
	case verr != nil:
		a = failure(c, verr)
	case c.fields == nil:
		a = h.query(ctx, c)
	default:
		a = h.send(ctx, src, c)
		a.send = true
	}
	h.logAnswer(ctx, src, a, start)
	return a
}

// send records the red packet, sends it and settles its outcome, all
// through the one send path (internal/payout). When WeChat refuses the
// credentials (CA_ERROR, SIGN_ERROR) the secret may have been rotated:
// credstore.Do fetches it again and sends the same request, with the same
// billno, once more.
func (h *Handler) send(ctx context.Context, src Source, c call) answer {
	if h.configErr != nil {
		return failure(c, h.configErr)
	}
	// The merchant's mch_id, from the secret, is part of the record's key.
	client, err := h.store.Client(ctx)
	if err != nil {
		return failure(c, err)
	}
	req := payout.Request{API: h.op.API(), Fields: c.fields(client.MchID()), Source: string(src), Caller: c.caller}
	out, err := h.payout.Send(ctx, req, func(ctx context.Context) (any, error) {
		h.countSend(ctx, client.MchID())
		return credstore.Do(ctx, h.store, func(client *wxpay.Client) (any, error) {
			return c.send(ctx, client)
		})
	})
	if err != nil {
		return failure(c, err)
	}
	a := success(c, out.Result, attemptsOf(out.Result))
	a.replayed = out.Replayed
	return a
}

// countSend counts a send in the stack's shared count of sends per second,
// so that running campaigns leave it room. A failure is logged and the
// send goes on: an API send never waits for a campaign.
func (h *Handler) countSend(ctx context.Context, mchID string) {
	if h.settings.Window == nil {
		return
	}
	if err := h.settings.Window.Count(ctx, mchID, time.Now()); err != nil {
		h.log.WarnContext(ctx, "the send could not be counted in the shared send window; campaigns may take its room", slog.String("error", err.Error()))
	}
}

// query reads the red packet's record at WeChat and, when the ledger has
// the billno, stores the status read and adds the ledger's record to the
// answer, success or not.
func (h *Handler) query(ctx context.Context, c call) answer {
	if h.configErr != nil {
		return failure(c, h.configErr)
	}
	result, err := credstore.Do(ctx, h.store, func(client *wxpay.Client) (any, error) {
		return c.send(ctx, client)
	})
	var status string
	if q, ok := result.(*wxpay.QueryResult); ok && err == nil {
		status = q.Status
	}
	c.record = h.observe(ctx, c.billno, status)
	if err != nil {
		return failure(c, err)
	}
	if c.record != nil {
		result = &recordedQuery{QueryResult: result.(*wxpay.QueryResult), Ledger: c.record}
	}
	return success(c, result, attemptsOf(result))
}

// observe stores a gethbinfo status in the billno's record and returns the
// record as the answer shows it; nil without a ledger, without a record,
// or when the ledger cannot be read (logged: the answer is WeChat's).
func (h *Handler) observe(ctx context.Context, billno, status string) *ledgerRecord {
	if h.settings.Ledger == nil {
		return nil
	}
	client, err := h.store.Client(ctx)
	if err != nil {
		return nil
	}
	it, err := h.payout.Observe(ctx, ledger.Key{MchID: client.MchID(), MchBillno: billno}, status)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		h.log.WarnContext(ctx, "ledger: the record could not be read or updated", slog.String("mch_billno", billno), slog.String("error", err.Error()))
		if it == nil {
			return nil
		}
	}
	return &ledgerRecord{State: string(it.State), Attempts: it.Attempts, RecordedAt: it.RecordedAt.UTC(), UpdatedAt: it.UpdatedAt.UTC()}
}

// batch handles an SQS batch: records run concurrently up to the
// configured bound, records with the same billno one after another, and
// every record that did not succeed is reported for retry (and, after the
// queue's maxReceiveCount, the dead-letter queue).
func (h *Handler) batch(ctx context.Context, records []sqsRecord) events.SQSEventResponse {
	// Group by billno so two messages for one red packet never race.
	type group struct{ idx []int }
	groups := make(map[string]*group)
	var order []*group
	for i, rec := range records {
		key := billnoOf(rec.Body)
		if key == "" {
			key = "\x00" + rec.MessageID
		}
		g := groups[key]
		if g == nil {
			g = &group{}
			groups[key] = g
			order = append(order, g)
		}
		g.idx = append(g.idx, i)
	}
	ok := make([]bool, len(records))
	sem := make(chan struct{}, h.settings.SQSConcurrency)
	var wg sync.WaitGroup
	for _, g := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, i := range g.idx {
				acquired := false
				select {
				case sem <- struct{}{}:
					acquired = true
				case <-ctx.Done():
				}
				if ctx.Err() != nil || !timeForRecord(ctx) {
					if acquired {
						<-sem
					}
					// Not sent: SQS delivers it again later.
					h.log.WarnContext(ctx, "record not attempted before the deadline",
						slog.String("api", h.op.API()), slog.String("message_id", records[i].MessageID), slog.String("err_code", wxpay.CodeNotAttempted))
					continue
				}
				a := h.handle(ctx, SourceSQS, httpRequest{body: []byte(records[i].Body)})
				<-sem
				ok[i] = a.outcome == wxpay.OutcomeSuccess
				if !ok[i] {
					h.log.WarnContext(ctx, "record reported for retry",
						slog.String("api", h.op.API()), slog.String("message_id", records[i].MessageID),
						slog.String("mch_billno", a.billno), slog.String("outcome", string(a.outcome)), slog.String("err_code", a.code))
				}
			}
		}()
	}
	wg.Wait()
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for i, rec := range records {
		if !ok[i] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageID})
		}
	}
	return resp
}

// minRecordTime is the least time left in which a batch starts a record: a
// record started later would likely end unknown, while one not started is
// simply delivered again.
const minRecordTime = time.Second

func timeForRecord(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) >= minRecordTime
}

// billnoOf reads the member mch_billno, spelled exactly, from a request
// body without validating the rest; "" when there is none.
func billnoOf(body string) string {
	var r struct {
		MchBillno string `json:"mch_billno"`
	}
	if json.Unmarshal([]byte(body), &r) != nil {
		return ""
	}
	return r.MchBillno
}

func attemptsOf(result any) int {
	switch r := result.(type) {
	case *recordedQuery:
		return r.Attempts
	case *wxpay.SendResult:
		return r.Attempts
	case *wxpay.SendMiniResult:
		return r.Attempts
	case *wxpay.QueryResult:
		return r.Attempts
	}
	return 0
}
