package functions_test

// End to end: the campaign runner's bootstrap killed mid-campaign, with
// sends WeChat paid and the ledger never told, then a fresh runner and the
// reconciler's bootstrap: every row paid once.

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// crashRunDeadline is the runners' deadline in TestCampaignRunnerKilled:
// a run stops sending 20 s before it, and 200 rows at 50 a second take
// 4 s, so neither run is ever short of time.
const crashRunDeadline = time.Minute

// runCampaignFor invokes the runner bootstrap with {"campaign_id": id}
// under deadline, and returns its answer.
func runCampaignFor(t *testing.T, p *proc, id string, deadline time.Duration) runSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline+invokeWait)
	defer cancel()
	r, err := p.rt.Invoke(ctx, mustJSON(t, map[string]string{"campaign_id": id}), deadline)
	if err == nil && r.Err != nil {
		err = r.Err
	}
	if err != nil {
		t.Fatalf("%s: %v\noutput:\n%s", p.name, err, tail(p.p.Output(), 40))
	}
	p.invs = append(p.invs, invocation{id: r.RequestID})
	var s runSummary
	if err := json.Unmarshal(r.Payload, &s); err != nil {
		t.Fatalf("runner answer %s: %v", r.Payload, err)
	}
	return s
}

// crashTables reads and edits the campaign stack's tables in moto_server
// behind the bootstraps' backs.
type crashTables struct {
	db                *dynamodb.Client
	ledger, campaigns string
	campaignStore     *campaign.DynamoDB
	mchID, campaignID string
}

func newCrashTables(t *testing.T, st *campaignStack, name, campaignID string) *crashTables {
	t.Helper()
	// The S3 client's endpoint is moto_server's, which serves DynamoDB
	// too (campaignStack's awsEnv).
	url := aws.ToString(st.s3.Options().BaseEndpoint)
	if url == "" {
		t.Fatal("the campaign stack's S3 client has no endpoint")
	}
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	return &crashTables{
		db: db, ledger: name + "-ledger", campaigns: name + "-campaigns",
		campaignStore: campaign.NewDynamoDB(db, name+"-campaigns"),
		mchID:         st.merchant.MchID, campaignID: campaignID,
	}
}

// rows reads every item of the ledger table (strongly consistent): the
// campaign's rows, which are all it holds.
func (c *crashTables) rows(t *testing.T) []scanned {
	t.Helper()
	return scanLedger(t, c.db, c.ledger)
}

// midCall reports whether a row was left in the middle of a send: its
// lease taken (attempts counted) and no outcome stored.
func midCall(s scanned) bool {
	return s.State == string(ledger.Recorded) && s.Attempts > 0
}

// update makes one conditional UpdateItem of an item of table, and
// reports whether its condition held.
func (c *crashTables) update(t *testing.T, table string, key map[string]types.AttributeValue, cond expression.ConditionBuilder, upd expression.UpdateBuilder) bool {
	t.Helper()
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       key,
		ConditionExpression:       expr.Condition(),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false
	case err != nil:
		t.Fatalf("update %s: %v", table, err)
	}
	return true
}

func (c *crashTables) ledgerKey(billno string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		ledger.HashKey:  &types.AttributeValueMemberS{Value: c.mchID},
		ledger.RangeKey: &types.AttributeValueMemberS{Value: billno},
	}
}

// endHolds does to the tables what the passing of the dead run's holds
// would: see TestCampaignRunnerKilled. It returns the rows it found mid-call.
func (c *crashTables) endHolds(t *testing.T) []string {
	t.Helper()
	past := time.Now().Add(-time.Second).UTC().Format(ledgerTimeLayout)

	cp, err := c.campaignStore.Get(context.Background(), c.campaignID)
	if err != nil {
		t.Fatal(err)
	}
	if cp.RunnerOwner == "" || !cp.RunnerUntil.After(time.Now()) {
		t.Fatalf("campaign after the kill: runner %q until %v; want the dead run's hold, in the future", cp.RunnerOwner, cp.RunnerUntil)
	}
	// version moves on too: a checkpoint the dead process had already
	// written to the socket, landing after this, fails on its version
	// instead of bringing the hold back.
	if !c.update(t, c.campaigns,
		map[string]types.AttributeValue{campaign.HashKey: &types.AttributeValueMemberS{Value: c.campaignID}},
		expression.Name("runner_owner").Equal(expression.Value(cp.RunnerOwner)),
		expression.Set(expression.Name("runner_until"), expression.Value(past)).
			Set(expression.Name("version"), expression.Name("version").Plus(expression.Value(1)))) {
		t.Fatal("the campaign's hold changed under the test")
	}

	var stuck []string
	for _, s := range c.rows(t) {
		if !midCall(s) {
			continue
		}
		owner, _ := s.raw["lease_owner"].(*types.AttributeValueMemberS)
		if owner == nil {
			t.Fatalf("%s: RECORDED after %d attempts without a lease", s.MchBillno, s.Attempts)
		}
		// Only the dead send's lease, only while mid-call: a late Settle
		// that got there first has settled the row, which is then no
		// longer stuck.
		if c.update(t, c.ledger, c.ledgerKey(s.MchBillno),
			expression.Name("state").Equal(expression.Value(ledger.Recorded)).
				And(expression.Name("lease_owner").Equal(expression.Value(owner.Value))),
			expression.Set(expression.Name("lease_until"), expression.Value(past)).
				Set(expression.Name(ledger.AttrNextCheck), expression.Value(past)).
				Set(expression.Name(ledger.AttrDue), expression.Value(c.mchID))) {
			stuck = append(stuck, s.MchBillno)
		}
	}
	return stuck
}

// age moves each time of the items d into the past, as if d had passed
// for them, on the condition that each is as read. Only between
// invocations: nothing else writes the table meanwhile.
func (c *crashTables) age(t *testing.T, items []scanned, d time.Duration) {
	t.Helper()
	for _, it := range items {
		updated, _ := it.raw["updated_at"].(*types.AttributeValueMemberS)
		if updated == nil {
			t.Fatalf("%s: no updated_at", it.MchBillno)
		}
		cond := expression.Name("updated_at").Equal(expression.Value(updated.Value))
		var upd expression.UpdateBuilder
		for _, name := range timeAttrs {
			v, ok := it.raw[name].(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			at, err := time.Parse(ledgerTimeLayout, v.Value)
			if err != nil {
				t.Fatalf("%s: %s %q: %v", it.MchBillno, name, v.Value, err)
			}
			upd = upd.Set(expression.Name(name), expression.Value(at.Add(-d).UTC().Format(ledgerTimeLayout)))
		}
		if !c.update(t, c.ledger, c.ledgerKey(it.MchBillno), cond, upd) {
			t.Fatalf("%s changed under the test", it.MchBillno)
		}
	}
}

// TestCampaignRunnerKilled: a crash of the runner mid-campaign, then a
// restart, pays nothing twice. The runner bootstrap is SIGKILLed while
// WeChat holds the answers of rows it paid (their sends mid-call, never
// settled in the ledger), after it paid some 80 rows of 200; once its
// holds have ended, a fresh runner finishes the campaign (DONE) without
// touching the rows left mid-call, and the reconciler's bootstrap settles
// those: every row paid exactly once at WeChat, every row SENT.
func TestCampaignRunnerKilled(t *testing.T) {
	skipShort(t)
	apiBin := campaignsBuild.get(t, "./functions/campaigns")
	runBin := campaignRunBuild.get(t, "./functions/campaignrun")
	recBin := bootstraps(t)["reconcile"]
	const (
		name = "campaign-crash"
		id   = "spring-2026" // the start sample's campaign_id
		rows = 200
		// killAfter is how many payments WeChat has made when the runner
		// is killed: well into the campaign, far from its end.
		killAfter = 80
	)
	// held are the rows whose answers WeChat holds: paid at once, the
	// answer never given before the kill, so that their sends are surely
	// mid-call when it comes, however the machine schedules things.
	// Three holds each: a try the client gives up on (10 s) is tried
	// again, and held again.
	held := []int{61, 62, 63, 64, 65, 66}

	st := newCampaignStack(t, name)
	tables := newCrashTables(t, st, name, id)
	var body struct {
		Object string `json:"object"`
	}
	var start map[string]any
	if err := json.Unmarshal(readEvent(t, "campaigns", "apigw-rest-start.json"), &start); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(start["body"].(string)), &body); err != nil {
		t.Fatal(err)
	}
	st.put(t, body.Object, campaignCSV(rows))
	billno := func(row int) string { return campaign.Billno(st.merchant.MchID, id, row) }
	hold := wxpaytest.Fault{Kind: wxpaytest.FaultDelay, Delay: time.Minute}
	for _, row := range held {
		st.sim.FailSends(billno(row), hold, hold, hold)
	}

	api := startProc(t, "campaigns", apiBin, st.env())
	status, v := callAPI(t, api, readEvent(t, "campaigns", "apigw-rest-start.json"))
	if status != 202 || v.CampaignID != id || v.State != "PLANNING" || v.Rows != rows {
		t.Fatalf("start: %d %+v, want 202, %s PLANNING with %d rows", status, v, id, rows)
	}

	// The run to kill: it plans the rows, then sends them at 50 a second.
	killed := startProc(t, "campaignrun", runBin, st.env())
	payload := mustJSON(t, map[string]string{"campaign_id": id})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answered := make(chan string, 1) // never answered, unless the run ends before the kill
	go func() {
		r, err := killed.rt.Invoke(ctx, payload, crashRunDeadline)
		switch {
		case err != nil:
			answered <- err.Error()
		case r.Err != nil:
			answered <- r.Err.Error()
		default:
			answered <- string(r.Payload)
		}
	}()
	heldPaid := func() bool {
		return !slices.ContainsFunc(held, func(row int) bool { return st.sim.Payments(billno(row)) == 0 })
	}
	for deadline := time.Now().Add(crashRunDeadline); !heldPaid() || st.sim.TotalPayments() < killAfter; time.Sleep(10 * time.Millisecond) {
		select {
		case a := <-answered:
			t.Fatalf("the runner answered before the kill: %s\noutput:\n%s", a, tail(killed.p.Output(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payments, held rows paid: %v; want %d and all\noutput:\n%s", st.sim.TotalPayments(), heldPaid(), killAfter, tail(killed.p.Output(), 40))
		}
	}
	killedOut := killed.stop() // SIGKILL, and waits for the process
	cancel()
	<-answered
	// The holds' remaining tries were for the dead run's client.
	st.sim.ClearFaults()
	paidAtKill := st.sim.TotalPayments()
	if paidAtKill >= rows {
		t.Fatalf("%d of %d rows paid before the kill: it came too late to prove anything", paidAtKill, rows)
	}
	if containsAny(killedOut, st.secrets()) {
		t.Error("the killed runner's output holds a secret")
	}

	// The dead run still holds the campaign (until its deadline + 5 s)
	// and its rows mid-call hold their leases (deadline + 2 s), whose
	// first check by the reconciler is due a minute after that. Waiting
	// over a minute for those times to pass is all a real restart would
	// do differently: the runner and the reconciler read them only to
	// compare with the clock, and nothing else changes meanwhile (the
	// process is dead; a write it had sent that lands at moto late is fenced
	// off by endHolds' conditions). So endHolds sets them a second in the
	// past: the campaign's runner_until, and each mid-call row's
	// lease_until and next_check_at (with due, the index's partition),
	// which is what the items would look like to a runner or reconciler
	// starting after those times.
	stuck := tables.endHolds(t)
	if len(stuck) == 0 {
		t.Fatal("no row was left RECORDED mid-call by the kill: the test proves nothing")
	}
	for _, row := range held {
		if !slices.Contains(stuck, billno(row)) {
			t.Errorf("held row %d (%s) is not among the rows left mid-call %v", row, billno(row), stuck)
		}
	}
	t.Logf("killed after %d payments; %d rows left mid-call", paidAtKill, len(stuck))

	// A fresh runner: it goes on from the dead run's last checkpoint,
	// skips the rows left mid-call (the reconciler's) and sends the rest.
	requests := make(map[string]int, len(stuck))
	for _, b := range stuck {
		requests[b] = st.sim.RequestsFor(b)
	}
	runner := startProc(t, "campaignrun", runBin, st.env())
	s := runCampaignFor(t, runner, id, crashRunDeadline)
	if len(s.Campaigns) != 1 || s.Error != "" {
		t.Fatalf("restart: %+v\noutput:\n%s", s, tail(runner.p.Output(), 40))
	}
	if got := s.Campaigns[0]; got.CampaignID != id || got.State != "DONE" || got.Done != rows || got.Rows != rows {
		t.Fatalf("restart: %+v, want %s DONE with %d of %d rows\noutput:\n%s", got, id, rows, rows, tail(runner.p.Output(), 40))
	}
	for _, b := range stuck {
		if n := st.sim.RequestsFor(b) - requests[b]; n != 0 {
			t.Errorf("%s: the restarted runner sent a row left mid-call (%d requests): it is the reconciler's", b, n)
		}
	}

	// The reconciler settles the rows left mid-call: a pass finds each
	// due. One that WeChat never saw (the kill came between its lease and
	// its request) is NOT_FOUND, and is sent again only when a second
	// check, minutes later, finds it so too: the items still open are aged
	// (age) by more than that between passes, as warp does in the
	// reconciler's own tests.
	rec := startProc(t, "reconcile", recBin, st.stack.env(slices.Concat(st.awsEnv, reconcileEnv)...))
	const passes = 5
	for pass := 1; ; pass++ {
		sum := reconcile(t, rec, `{}`)
		t.Logf("pass %d: %+v", pass, sum)
		var open []scanned
		for _, it := range tables.rows(t) {
			if it.State == string(ledger.Recorded) || it.State == string(ledger.Unknown) {
				open = append(open, it)
			}
		}
		if len(open) == 0 {
			t.Logf("the reconciler settled them in %d passes", pass)
			break
		}
		if pass == passes {
			t.Fatalf("after %d passes (the last %+v), %d rows still open, such as %s %s", passes, sum, len(open), open[0].MchBillno, open[0].State)
		}
		tables.age(t, open, 10*time.Minute)
	}

	for row := 1; row <= rows; row++ {
		if b := billno(row); st.sim.Payments(b) != 1 {
			t.Errorf("row %d (%s) paid %d times, want once", row, b, st.sim.Payments(b))
		}
	}
	if n := st.sim.TotalPayments(); n != rows {
		t.Errorf("%d payments in all, want %d", n, rows)
	}
	items := tables.rows(t)
	if len(items) != rows {
		t.Errorf("%d ledger items, want %d", len(items), rows)
	}
	for _, it := range items {
		if it.State != string(ledger.Sent) && it.State != string(ledger.Received) {
			t.Errorf("%s: %s (%s) after %d attempts, want SENT", it.MchBillno, it.State, it.Status, it.Attempts)
		}
	}
	status, v = callAPI(t, api, readEvent(t, "campaigns", "apigw-rest-get.json"))
	if status != 200 || v.State != "DONE" || v.Done != rows {
		t.Errorf("GET after: %d %+v, want DONE with %d rows done", status, v, rows)
	}
	checkCampaignOutput(t, api, st.secrets(), rows)
	checkCampaignOutput(t, runner, st.secrets(), rows)
	if out := rec.stop(); containsAny(out, st.secrets()) {
		t.Error("the reconciler's output holds a secret")
	}
}
