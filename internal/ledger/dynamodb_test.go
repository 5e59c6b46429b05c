package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

// One moto_server for the test binary.
func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// newClient is a DynamoDB client of url, with static credentials and
// nothing read from this machine's AWS configuration.
func newClient(url string, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return dynamodb.NewFromConfig(cfg, append([]func(*dynamodb.Options){func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(url) }}, opts...)...)
}

var tables atomic.Int64

// newTable creates a table of its own for t, on moto_server.
func newTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	name := fmt.Sprintf("ledger-%d-%s", tables.Add(1), regexp.MustCompile(`[^a-zA-Z0-9_.-]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 255 {
		name = name[:255]
	}
	if err := ledger.CreateTable(t.Context(), client, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestDynamoDB runs the contract suite on moto_server's DynamoDB, a table
// for each subtest.
func TestDynamoDB(t *testing.T) {
	client := newClient(mototest.Start(t))
	ledgertest.Run(t, func(t *testing.T) ledger.Store {
		return ledger.NewDynamoDB(client, newTable(t, client))
	})
}

// counting is a DynamoDBAPI that records the requests it passes on.
type counting struct {
	ledger.DynamoDBAPI
	mu   sync.Mutex
	reqs []any
}

func (c *counting) add(in any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, in)
}

func (c *counting) take() []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

func (c *counting) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.add(in)
	return c.DynamoDBAPI.GetItem(ctx, in, o...)
}

func (c *counting) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.add(in)
	return c.DynamoDBAPI.PutItem(ctx, in, o...)
}

func (c *counting) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.add(in)
	return c.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

func (c *counting) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.add(in)
	return c.DynamoDBAPI.Query(ctx, in, o...)
}

// TestDynamoDBRequests: each method is one request, of the documented kind,
// whether its condition holds or not; and items are stored as documented.
func TestDynamoDBRequests(t *testing.T) {
	client := newClient(mototest.Start(t))
	table := newTable(t, client)
	c := &counting{DynamoDBAPI: client}
	s := ledger.NewDynamoDB(c, table)
	ctx := t.Context()
	now := time.Date(2026, 11, 23, 18, 0, 0, 123_456_789, time.FixedZone("CST", 8*60*60))
	k := ledger.Key{MchID: "1900000109", MchBillno: "REQUESTS0001"}
	it := &ledger.Item{MchID: k.MchID, MchBillno: k.MchBillno, API: "sendredpack", Fields: map[string]string{"re_openid": "o1"},
		RecordedAt: now, LeaseOwner: "a", LeaseUntil: now.Add(time.Minute), Source: "direct"}

	one := func(what string, check func(any) bool) {
		t.Helper()
		reqs := c.take()
		if len(reqs) != 1 || !check(reqs[0]) {
			t.Errorf("%s: requests %#v", what, reqs)
		}
	}
	conditionalPut := func(r any) bool {
		in, ok := r.(*dynamodb.PutItemInput)
		return ok && aws.ToString(in.ConditionExpression) != ""
	}
	conditionalUpdate := func(rv types.ReturnValue) func(any) bool {
		return func(r any) bool {
			in, ok := r.(*dynamodb.UpdateItemInput)
			return ok && aws.ToString(in.ConditionExpression) != "" && in.ReturnValues == rv
		}
	}
	consistentGet := func(r any) bool {
		in, ok := r.(*dynamodb.GetItemInput)
		return ok && aws.ToBool(in.ConsistentRead)
	}

	if err := s.Create(ctx, it); err != nil {
		t.Fatal(err)
	}
	one("Create", conditionalPut)
	if err := s.Create(ctx, it); !errors.Is(err, ledger.ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
	one("Create, exists", conditionalPut)

	// The stored attributes: snake_case names, times as fixed-width UTC
	// strings, no empty optional attribute, no TTL attribute.
	raw, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		ledger.HashKey: &types.AttributeValueMemberS{Value: k.MchID}, ledger.RangeKey: &types.AttributeValueMemberS{Value: k.MchBillno},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range raw.Item {
		names = append(names, name)
	}
	// Caller is empty: not stored.
	wantNames := strings.Fields("api attempts due fields first_tried_at hash last_tried_at lease_owner lease_until mch_billno mch_id next_check_at recorded_at settled source state updated_at")
	for _, name := range wantNames {
		if raw.Item[name] == nil {
			t.Errorf("stored item has no %s: %v", name, names)
		}
	}
	if len(raw.Item) != len(wantNames) {
		t.Errorf("stored attributes %v, want %v", names, wantNames)
	}
	if got := raw.Item["recorded_at"].(*types.AttributeValueMemberS).Value; got != "2026-11-23T10:00:00.123Z" {
		t.Errorf("recorded_at stored as %q", got)
	}
	// In the reconciler's index: due is the merchant, next_check_at a time
	// string that sorts as the time.
	if got := raw.Item[ledger.AttrDue].(*types.AttributeValueMemberS).Value; got != k.MchID {
		t.Errorf("due stored as %q, want the mch_id", got)
	}
	if got := raw.Item[ledger.AttrNextCheck].(*types.AttributeValueMemberS).Value; got != "2026-11-23T10:02:00.123Z" {
		t.Errorf("next_check_at stored as %q", got)
	}

	if _, err := s.Get(ctx, k); err != nil {
		t.Fatal(err)
	}
	one("Get", consistentGet)

	if err := s.Settle(ctx, k, ledger.Settlement{Owner: "b", State: ledger.Sent, Now: now}); !errors.Is(err, ledger.ErrPrecondition) {
		t.Fatalf("Settle, wrong owner: %v", err)
	}
	one("Settle, wrong owner", conditionalUpdate(""))
	if err := s.Settle(ctx, k, ledger.Settlement{Owner: "a", State: ledger.Unknown, Now: now}); err != nil {
		t.Fatal(err)
	}
	one("Settle", conditionalUpdate(""))

	l := ledger.Lease{Hash: it.Hash, Owner: "b", Until: now.Add(time.Hour), Now: now.Add(time.Minute)}
	if _, err := s.Acquire(ctx, k, l); err != nil {
		t.Fatal(err)
	}
	one("Acquire", conditionalUpdate(types.ReturnValueAllNew))
	if _, err := s.Acquire(ctx, k, l); !errors.Is(err, ledger.ErrPrecondition) {
		t.Fatalf("Acquire, lease held: %v", err)
	}
	one("Acquire, lease held", conditionalUpdate(types.ReturnValueAllNew))

	if err := s.Observe(ctx, k, ledger.Observation{Status: "SENT", Now: now}); err != nil {
		t.Fatal(err)
	}
	one("Observe", conditionalUpdate(""))

	query := func(r any) bool {
		in, ok := r.(*dynamodb.QueryInput)
		return ok && aws.ToString(in.IndexName) == ledger.DueIndex && aws.ToInt32(in.Limit) == 5 && aws.ToBool(in.ScanIndexForward)
	}
	due, err := s.Due(ctx, k.MchID, now.Add(time.Hour), 5)
	if err != nil || len(due) != 0 {
		t.Fatalf("Due while the lease is held: %v, %v", due, err)
	}
	one("Due", query)
	due, err = s.Due(ctx, k.MchID, now.Add(3*time.Hour), 5)
	if err != nil || len(due) != 1 || due[0].MchBillno != k.MchBillno {
		t.Fatalf("Due after the lease: %v, %v", due, err)
	}
	one("Due", query)

	read := due[0]
	r := ledger.Reconciliation{From: read.State, ReadNextCheckAt: read.NextCheckAt, To: ledger.Received, Status: "RECEIVED", Now: now.Add(3 * time.Hour)}
	if err := s.Reconcile(ctx, k, r); err != nil {
		t.Fatal(err)
	}
	one("Reconcile", conditionalUpdate(""))
	if err := s.Reconcile(ctx, k, r); !errors.Is(err, ledger.ErrPrecondition) {
		t.Fatalf("Reconcile again: %v", err)
	}
	one("Reconcile again", conditionalUpdate(""))

	// Final: out of the sparse index, both attributes gone.
	raw, err = client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		ledger.HashKey: &types.AttributeValueMemberS{Value: k.MchID}, ledger.RangeKey: &types.AttributeValueMemberS{Value: k.MchBillno},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Item[ledger.AttrDue] != nil || raw.Item[ledger.AttrNextCheck] != nil {
		t.Errorf("a final item keeps due %v, next_check_at %v", raw.Item[ledger.AttrDue], raw.Item[ledger.AttrNextCheck])
	}
}

// TestTableInput: the table CreateTable makes has the reconciler's and
// the campaigns' sparse indexes as documented (and as the template
// declares them).
func TestTableInput(t *testing.T) {
	in := ledger.TableInput("ledger")
	want := []struct {
		name        string
		hash, rnge  string
		hashT, rngT types.ScalarAttributeType
	}{
		{ledger.DueIndex, "due", "next_check_at", types.ScalarAttributeTypeS, types.ScalarAttributeTypeS},
		{ledger.CampaignIndex, "campaign_id", "campaign_row", types.ScalarAttributeTypeS, types.ScalarAttributeTypeN},
	}
	if len(in.GlobalSecondaryIndexes) != len(want) {
		t.Fatalf("indexes %v, want %d", in.GlobalSecondaryIndexes, len(want))
	}
	defs := map[string]types.ScalarAttributeType{}
	for _, d := range in.AttributeDefinitions {
		defs[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	for i, w := range want {
		gsi := in.GlobalSecondaryIndexes[i]
		if aws.ToString(gsi.IndexName) != w.name || len(gsi.KeySchema) != 2 ||
			aws.ToString(gsi.KeySchema[0].AttributeName) != w.hash || gsi.KeySchema[0].KeyType != types.KeyTypeHash ||
			aws.ToString(gsi.KeySchema[1].AttributeName) != w.rnge || gsi.KeySchema[1].KeyType != types.KeyTypeRange ||
			gsi.Projection == nil || gsi.Projection.ProjectionType != types.ProjectionTypeAll || gsi.ProvisionedThroughput != nil {
			t.Errorf("index %d: %+v, want %s", i, gsi, w.name)
		}
		if defs[w.hash] != w.hashT || defs[w.rnge] != w.rngT {
			t.Errorf("index %s: attributes %s %q, %s %q; want %q, %q", w.name, w.hash, defs[w.hash], w.rnge, defs[w.rnge], w.hashT, w.rngT)
		}
	}
	for _, name := range []string{"mch_id", "mch_billno"} {
		if defs[name] != types.ScalarAttributeTypeS {
			t.Errorf("attribute %s: type %q, want S", name, defs[name])
		}
	}
	if len(defs) != 6 {
		t.Errorf("attribute definitions %v", defs)
	}
}

// shortPages is a DynamoDBAPI whose Queries read at most two items, as a
// Query that hits DynamoDB's 1 MB limit reads fewer than asked.
type shortPages struct {
	ledger.DynamoDBAPI
	mu      sync.Mutex
	queries []*dynamodb.QueryInput
}

func (p *shortPages) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	p.mu.Lock()
	p.queries = append(p.queries, in)
	p.mu.Unlock()
	short := *in
	short.Limit = aws.Int32(min(aws.ToInt32(in.Limit), 2))
	return p.DynamoDBAPI.Query(ctx, &short, o...)
}

// TestDynamoDBPlanned: a planned item is stored without tries, next check
// or the due index's attribute, with its campaign and row (a number) for
// the campaigns' index; CampaignRows queries that index, in row order,
// and reads on past short pages until it has limit items or the last.
func TestDynamoDBPlanned(t *testing.T) {
	client := newClient(mototest.Start(t))
	table := newTable(t, client)
	p := &shortPages{DynamoDBAPI: client}
	s := ledger.NewDynamoDB(p, table)
	ctx := t.Context()
	now := time.Date(2026, 11, 23, 18, 0, 0, 123_456_789, time.UTC)
	for row := 1; row <= 5; row++ {
		it := &ledger.Item{MchID: "1900000109", MchBillno: fmt.Sprintf("PLANNED%04d", row), API: "sendredpack",
			Fields: map[string]string{"re_openid": "o1"}, RecordedAt: now, Source: "campaign", CampaignID: "spring", CampaignRow: row}
		if err := s.Create(ctx, it); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		ledger.HashKey: &types.AttributeValueMemberS{Value: "1900000109"}, ledger.RangeKey: &types.AttributeValueMemberS{Value: "PLANNED0003"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range raw.Item {
		names = append(names, name)
	}
	wantNames := strings.Fields("api attempts campaign_id campaign_row fields hash mch_billno mch_id recorded_at settled source state updated_at")
	for _, name := range wantNames {
		if raw.Item[name] == nil {
			t.Errorf("stored item has no %s: %v", name, names)
		}
	}
	if len(raw.Item) != len(wantNames) {
		t.Errorf("stored attributes %v, want %v", names, wantNames)
	}
	if n, ok := raw.Item[ledger.AttrCampaignRow].(*types.AttributeValueMemberN); !ok || n.Value != "3" {
		t.Errorf("campaign_row stored as %#v, want the number 3", raw.Item[ledger.AttrCampaignRow])
	}

	for _, tc := range []struct {
		after, limit int
		want         []string
		queries      int
	}{
		{0, 5, []string{"PLANNED0001", "PLANNED0002", "PLANNED0003", "PLANNED0004", "PLANNED0005"}, 3},
		{1, 3, []string{"PLANNED0002", "PLANNED0003", "PLANNED0004"}, 2},
		{2, 10, []string{"PLANNED0003", "PLANNED0004", "PLANNED0005"}, 2}, // the second page is short: the end
		{0, 1, []string{"PLANNED0001"}, 1},
	} {
		p.mu.Lock()
		p.queries = nil
		p.mu.Unlock()
		got, err := s.CampaignRows(ctx, "spring", tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var b []string
		for _, it := range got {
			b = append(b, it.MchBillno)
		}
		if !slices.Equal(b, tc.want) {
			t.Errorf("CampaignRows(after %d, limit %d) = %v, want %v", tc.after, tc.limit, b, tc.want)
		}
		p.mu.Lock()
		qs := p.queries
		p.mu.Unlock()
		if len(qs) != tc.queries {
			t.Errorf("CampaignRows(after %d, limit %d): %d queries, want %d", tc.after, tc.limit, len(qs), tc.queries)
		}
		for _, q := range qs {
			if aws.ToString(q.IndexName) != ledger.CampaignIndex || !aws.ToBool(q.ScanIndexForward) || aws.ToBool(q.ConsistentRead) {
				t.Errorf("query %+v: want the index %s, forward, eventually consistent", q, ledger.CampaignIndex)
			}
		}
	}
}

// TestDynamoDBUnavailable: a ledger that cannot be reached, or has no
// table, answers an error that is none of the sentinels (the caller must
// not read it as "absent" or "condition failed"), promptly, without the
// request's openid.
func TestDynamoDBUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	endpoints := map[string]func(*testing.T) ledger.Store{
		"closed port": func(*testing.T) ledger.Store {
			return ledger.NewDynamoDB(newClient(closed, func(o *dynamodb.Options) {
				o.RetryMaxAttempts = 2
				o.HTTPClient = &http.Client{Timeout: time.Second}
			}), "ledger")
		},
		"no such table": func(t *testing.T) ledger.Store {
			return ledger.NewDynamoDB(newClient(mototest.Start(t)), "no-such-table")
		},
	}
	const openid = "oxTWIuGaIt6gTKsQRLau2M0yL16E"
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	k := ledger.Key{MchID: "1900000109", MchBillno: "DOWN0001"}
	for name, newStore := range endpoints {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			ops := map[string]func() error{
				"Get": func() error { _, err := s.Get(ctx, k); return err },
				"Create": func() error {
					return s.Create(ctx, &ledger.Item{MchID: k.MchID, MchBillno: k.MchBillno, API: "sendredpack",
						Fields: map[string]string{"re_openid": openid}, RecordedAt: now, LeaseOwner: "a", LeaseUntil: now.Add(time.Minute)})
				},
				"Acquire": func() error {
					_, err := s.Acquire(ctx, k, ledger.Lease{Hash: "h", Owner: "a", Until: now.Add(time.Minute), Now: now})
					return err
				},
				"Settle":  func() error { return s.Settle(ctx, k, ledger.Settlement{Owner: "a", State: ledger.Sent, Now: now}) },
				"Observe": func() error { return s.Observe(ctx, k, ledger.Observation{Status: "SENT", Now: now}) },
				"Reconcile": func() error {
					return s.Reconcile(ctx, k, ledger.Reconciliation{From: ledger.Unknown, To: ledger.Sent, NextCheckAt: now.Add(time.Hour), Now: now})
				},
				"Due":          func() error { _, err := s.Due(ctx, k.MchID, now, 10); return err },
				"CampaignRows": func() error { _, err := s.CampaignRows(ctx, "spring-2026", 0, 10); return err },
			}
			for op, f := range ops {
				start := time.Now()
				err := f()
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("%s took %v", op, took)
				}
				if err == nil || errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrExists) || errors.Is(err, ledger.ErrPrecondition) {
					t.Errorf("%s = %v, want an unavailable ledger", op, err)
					continue
				}
				if strings.Contains(err.Error(), openid) {
					t.Errorf("%s: the error names the openid: %v", op, err)
				}
				// Each names what it read or wrote: the billno, for Due the
				// merchant, for CampaignRows the campaign.
				name := k.MchBillno
				switch op {
				case "Due":
					name = k.MchID
				case "CampaignRows":
					name = "spring-2026"
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("%s: the error does not name %s: %v", op, name, err)
				}
			}
		})
	}
}
