package functions_test

// Helpers of the reconciler's end-to-end tests and the soak: a world of
// the real bootstraps, the simulator on a clock the test moves, and the
// ledger in moto_server's DynamoDB, whose items' times the test moves back
// by as much (warp), so that the reconciler, which reads the wall clock,
// sees the same day pass as the simulator.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// reconcileTimeout is the reconciler's configured timeout in these tests:
// the deadline its bootstrap sees for a pass.
const reconcileTimeout = 5 * time.Minute

// recWorld is a stack whose simulator runs on clock, with a ledger table
// the test can read and rewrite.
type recWorld struct {
	*stack
	clock *wxpaytest.Clock
	db    *dynamodb.Client
	table string
	store ledger.Store
	// ledgerEnv is the bootstraps' environment for the table.
	ledgerEnv []string
	mchID     string
	// warped is how far the world was moved forward (warp).
	warped time.Duration
}

// newRecWorld starts the simulator on a clock running in real time from
// now (wxpaytest.NewAcceleratedClock at speed 1), which warp moves on,
// and a ledger table in moto_server's DynamoDB.
func newRecWorld(t testing.TB, table string, opts ...wxpaytest.Option) *recWorld {
	t.Helper()
	clock := wxpaytest.NewAcceleratedClock(time.Now(), 1)
	st := newStack(t, append([]wxpaytest.Option{wxpaytest.WithClock(clock.Now)}, opts...)...)
	url := mototest.Start(t)
	db, store := ledgertest.DynamoDBTable(t, url, table)
	return &recWorld{
		stack: st, clock: clock, db: db, table: table, store: store,
		ledgerEnv: []string{"WXPAY_LEDGER_TABLE=" + table, "AWS_ENDPOINT_URL_DYNAMODB=" + url},
		mchID:     st.merchant.MchID,
	}
}

// env is the bootstraps' environment, ledger included.
func (w *recWorld) env(extra ...string) []string {
	return w.stack.env(append(w.ledgerEnv, extra...)...)
}

// key is billno's ledger key.
func (w *recWorld) key(billno string) ledger.Key {
	return ledger.Key{MchID: w.mchID, MchBillno: billno}
}

// item reads billno's ledger item.
func (w *recWorld) item(t testing.TB, billno string) *ledger.Item {
	t.Helper()
	it, err := w.store.Get(context.Background(), w.key(billno))
	if err != nil {
		t.Fatalf("ledger item %s: %v", billno, err)
	}
	return it
}

// timeAttrs are the ledger attributes that hold times (as
// "2006-01-02T15:04:05.000Z"): warp moves each back.
var timeAttrs = []string{"recorded_at", "first_tried_at", "last_tried_at", "updated_at", "lease_until", ledger.AttrNextCheck, "checked_at"}

const ledgerTimeLayout = "2006-01-02T15:04:05.000Z"

// scanned is what the tests read of an item in a scan, and the item as
// stored.
type scanned struct {
	MchBillno    string            `dynamodbav:"mch_billno"`
	State        string            `dynamodbav:"state"`
	Status       string            `dynamodbav:"status"`
	Attempts     int               `dynamodbav:"attempts"`
	NextCheckAt  string            `dynamodbav:"next_check_at"`
	RefundTime   string            `dynamodbav:"refund_time"`
	RefundAmount int64             `dynamodbav:"refund_amount"`
	ErrCode      string            `dynamodbav:"err_code"`
	Source       string            `dynamodbav:"source"`
	API          string            `dynamodbav:"api"`
	Fields       map[string]string `dynamodbav:"fields"`
	raw          map[string]types.AttributeValue
}

// scan reads every item of the table (strongly consistent).
func (w *recWorld) scan(t testing.TB) []scanned {
	t.Helper()
	return scanLedger(t, w.db, w.table)
}

// scanLedger reads every item of a ledger table (strongly consistent).
func scanLedger(t testing.TB, db *dynamodb.Client, table string) []scanned {
	t.Helper()
	var out []scanned
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, raw := range page.Items {
			out = append(out, decodeScanned(t, raw))
		}
	}
	return out
}

// get reads the items of billnos (strongly consistent), a hundred a
// request.
func (w *recWorld) get(t testing.TB, billnos []string) []scanned {
	t.Helper()
	var out []scanned
	for len(billnos) > 0 {
		n := min(len(billnos), 100)
		keys := make([]map[string]types.AttributeValue, n)
		for i, b := range billnos[:n] {
			keys[i] = map[string]types.AttributeValue{
				ledger.HashKey:  &types.AttributeValueMemberS{Value: w.mchID},
				ledger.RangeKey: &types.AttributeValueMemberS{Value: b},
			}
		}
		billnos = billnos[n:]
		req := map[string]types.KeysAndAttributes{w.table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
		for len(req) > 0 {
			res, err := w.db.BatchGetItem(context.Background(), &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				t.Fatalf("get from %s: %v", w.table, err)
			}
			for _, raw := range res.Responses[w.table] {
				out = append(out, decodeScanned(t, raw))
			}
			req = res.UnprocessedKeys
		}
	}
	return out
}

func decodeScanned(t testing.TB, raw map[string]types.AttributeValue) scanned {
	t.Helper()
	var s scanned
	if err := attributevalue.UnmarshalMap(raw, &s); err != nil {
		t.Fatalf("ledger item: %v", err)
	}
	s.raw = raw
	return s
}

// final reports whether the scanned item's state is final.
func (s scanned) final() bool { return ledger.State(s.State).Final() }

// nextCheck is the item's next check, zero for none.
func (s scanned) nextCheck(t testing.TB) time.Time {
	t.Helper()
	if s.NextCheckAt == "" {
		return time.Time{}
	}
	at, err := time.Parse(ledgerTimeLayout, s.NextCheckAt)
	if err != nil {
		t.Fatalf("%s: next_check_at %q: %v", s.MchBillno, s.NextCheckAt, err)
	}
	return at
}

// warp moves the world d forward at once: the simulator's clock by d, and
// every item of the ledger not final (items holds them as read, none
// changed since) d into the past, each of its times, as if d had passed
// for the reconciler too. Only between invocations: nothing else may write
// the table meanwhile. Final items are left: nothing reads their times.
// It returns the items it moved, as they are now.
func (w *recWorld) warp(t testing.TB, items []scanned, d time.Duration) []scanned {
	t.Helper()
	var out []scanned
	var batch []types.WriteRequest
	flush := func() {
		for len(batch) > 0 {
			out, err := w.db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{w.table: batch},
			})
			if err != nil {
				t.Fatalf("warp: %v", err)
			}
			batch = out.UnprocessedItems[w.table]
		}
	}
	for _, it := range items {
		if it.final() {
			continue
		}
		moved := make(map[string]types.AttributeValue, len(it.raw))
		for k, v := range it.raw {
			moved[k] = v
		}
		for _, name := range timeAttrs {
			v, ok := it.raw[name].(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			at, err := time.Parse(ledgerTimeLayout, v.Value)
			if err != nil {
				t.Fatalf("warp: %s %s %q: %v", it.MchBillno, name, v.Value, err)
			}
			moved[name] = &types.AttributeValueMemberS{Value: at.Add(-d).UTC().Format(ledgerTimeLayout)}
		}
		batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: moved}})
		out = append(out, decodeScanned(t, moved))
		if len(batch) == 25 {
			flush()
		}
	}
	flush()
	w.clock.Advance(d)
	w.warped += d
	return out
}

// summary is the reconciler's answer.
type summary struct {
	Checked        int            `json:"checked"`
	Settled        int            `json:"settled"`
	Resent         int            `json:"resent"`
	NeedsAttention int            `json:"needs_attention"`
	Transitions    map[string]int `json:"transitions"`
	LostRaces      int            `json:"lost_races"`
	Errors         int            `json:"errors"`
	Stopped        string         `json:"stopped"`
	StopError      string         `json:"stop_error"`
	Item           *struct {
		MchBillno string `json:"mch_billno"`
		State     string `json:"state"`
		Status    string `json:"status"`
		Reason    string `json:"reason"`
		Attempts  int    `json:"attempts"`
	} `json:"item"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// reconcile invokes the reconciler's bootstrap with payload ({} for a
// pass, {"mch_billno": ...} for one check) and returns its summary.
func reconcile(t testing.TB, p *proc, payload string) summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout+invokeWait)
	defer cancel()
	r, err := p.rt.Invoke(ctx, []byte(payload), reconcileTimeout)
	if err != nil || r.Err != nil {
		t.Fatalf("reconcile %s: %v %v\noutput:\n%s", payload, err, r.Err, tail(p.p.Output(), 40))
	}
	var s summary
	if err := json.Unmarshal(r.Payload, &s); err != nil {
		t.Fatalf("reconcile %s: answer %s: %v", payload, r.Payload, err)
	}
	if s.Error != nil {
		t.Fatalf("reconcile %s: error %+v", payload, *s.Error)
	}
	return s
}

// check is reconcile with {"mch_billno": billno}.
func check(t testing.TB, p *proc, billno string) summary {
	t.Helper()
	return reconcile(t, p, fmt.Sprintf(`{"mch_billno": %q}`, billno))
}

// send invokes a send function's bootstrap directly with req under the
// given deadline and decodes its answer. One goroutine at a time per
// proc.
func send(t testing.TB, p *proc, req map[string]any, deadline time.Duration) ledgerAnswerAny {
	t.Helper()
	a, err := trySend(p, req, deadline)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// trySend is send for a goroutine other than the test's: it returns what
// went wrong.
func trySend(p *proc, req map[string]any, deadline time.Duration) (ledgerAnswerAny, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline+invokeWait)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return ledgerAnswerAny{}, err
	}
	r, err := p.rt.Invoke(ctx, body, deadline)
	if err == nil && r.Err != nil {
		err = r.Err
	}
	if err != nil {
		return ledgerAnswerAny{}, fmt.Errorf("%s %v: %w\noutput:\n%s", p.name, req["mch_billno"], err, tail(p.p.Output(), 40))
	}
	var a ledgerAnswerAny
	if err := json.Unmarshal(r.Payload, &a); err != nil {
		return a, fmt.Errorf("%s: answer %s: %w", p.name, r.Payload, err)
	}
	// For checkOutput: the invocation writes one request line, with the
	// outcome it answered.
	billno, _ := req["mch_billno"].(string)
	p.invs = append(p.invs, invocation{id: r.RequestID, lines: []logLine{{billno, a.outcome()}}})
	return a, nil
}

// ledgerAnswerAny is a send function's direct answer.
type ledgerAnswerAny struct {
	answerBody
	Replayed bool `json:"replayed"`
}

// outcome is the answer's outcome: success, or the error's.
func (a ledgerAnswerAny) outcome() string {
	if a.Error == nil {
		return "success"
	}
	return a.Error.Outcome
}

// tail is the last n lines of out.
func tail(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// reconcileEnv are the reconciler's bounds in these tests: a pass takes
// every due item.
var reconcileEnv = []string{"WXPAY_RECONCILE_BUDGET=10000", "WXPAY_RECONCILE_BATCH=100", "WXPAY_RECONCILE_WORKERS=8"}
