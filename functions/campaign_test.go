package functions_test

// End to end: the campaign functions' real bootstraps (CampaignsFunction,
// CampaignRunFunction) with the ledger table, the campaign table and the
// campaign bucket in moto_server, the merchant's secret in the Secrets
// Manager fake, and the simulator paying.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/ledger/ledgertest"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

// campaignsBuild and campaignRunBuild are the campaign functions'
// bootstraps, built once per test binary (bootstraps builds the others).
var campaignsBuild, campaignRunBuild oneBuild

// runnerDeadline is the runner's deadline in these tests: a run stops
// sending 20 s before its deadline (a tick starts nothing with less than
// 40 s left), so the 15 s of the other functions would leave it no time.
const runnerDeadline = 2 * time.Minute

// campaignStack is a stack with the campaign functions' AWS resources in
// one moto_server: the ledger table, the campaign table and the bucket.
type campaignStack struct {
	*stack
	s3     *s3.Client
	bucket string
	// awsEnv is the bootstraps' environment for the resources.
	awsEnv []string
}

func newCampaignStack(t *testing.T, name string) *campaignStack {
	t.Helper()
	st := newStack(t)
	url := mototest.Start(t)
	ledgerTable, campaignTable := name+"-ledger", name+"-campaigns"
	ledgertest.DynamoDBTable(t, url, ledgerTable)
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if _, err := db.CreateTable(t.Context(), campaign.TableInput(campaignTable)); err != nil {
		t.Fatalf("create table %s: %v", campaignTable, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := waiter.Wait(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(campaignTable)}, time.Minute); err != nil {
		t.Fatalf("create table %s: %v", campaignTable, err)
	}
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		UsePathStyle: true, // moto_server has no per-bucket host names
	})
	bucket := name + "-bucket"
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	return &campaignStack{stack: st, s3: client, bucket: bucket, awsEnv: []string{
		// One endpoint for DynamoDB and S3 (the handler then serves
		// buckets by path); Secrets Manager keeps its own (stack.env).
		"AWS_ENDPOINT_URL=" + url,
		"WXPAY_LEDGER_TABLE=" + ledgerTable,
		"WXPAY_CAMPAIGN_TABLE=" + campaignTable,
		"WXPAY_CAMPAIGN_BUCKET=" + bucket,
		// 50 campaign sends a second: 50 rows in about a second.
		"WXPAY_RATE_LIMIT=60",
		"WXPAY_API_RESERVE=10",
	}}
}

func (s *campaignStack) env() []string { return s.stack.env(s.awsEnv...) }

func (s *campaignStack) put(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := s.s3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// get returns an object of the bucket, and its content type.
func (s *campaignStack) get(t *testing.T, key string) ([]byte, string) {
	t.Helper()
	out, err := s.s3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b, aws.ToString(out.ContentType)
}

// campaignCSV is a file of n rows, one receiver each, 1.88 yuan a row.
func campaignCSV(n int) []byte {
	var b strings.Builder
	b.WriteString("re_openid,total_amount\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "oxTWIuE2ECampaign%011d,188\n", i)
	}
	return []byte(b.String())
}

// campaignView is what the tests read of the campaign API's answers.
type campaignView struct {
	CampaignID string            `json:"campaign_id"`
	State      string            `json:"state"`
	Reason     string            `json:"reason"`
	Existing   bool              `json:"existing"`
	Rows       int               `json:"rows"`
	Planned    int               `json:"planned"`
	Done       int               `json:"done"`
	Sent       int               `json:"sent"`
	Outcomes   map[string]int    `json:"outcomes"`
	Reports    map[string]string `json:"reports"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// callAPI invokes the campaigns bootstrap with an API Gateway event and
// decodes the answer.
func callAPI(t *testing.T, p *proc, payload []byte) (int, campaignView) {
	t.Helper()
	r := p.invoke(t, payload)
	var resp struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	if err := json.Unmarshal(r.Payload, &resp); err != nil {
		t.Fatalf("API Gateway answer %s: %v", r.Payload, err)
	}
	var v campaignView
	if err := json.Unmarshal([]byte(resp.Body), &v); err != nil {
		t.Fatalf("answer body %q: %v", resp.Body, err)
	}
	return resp.StatusCode, v
}

// runSummary is the runner's answer.
type runSummary struct {
	Campaigns []struct {
		CampaignID string `json:"campaign_id"`
		State      string `json:"state"`
		Done       int    `json:"done"`
		Rows       int    `json:"rows"`
	} `json:"campaigns"`
	Error string `json:"error"`
}

// runCampaigns invokes the runner bootstrap with payload, under
// runnerDeadline.
func runCampaigns(t *testing.T, p *proc, payload []byte) runSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runnerDeadline+invokeWait)
	defer cancel()
	r, err := p.rt.Invoke(ctx, payload, runnerDeadline)
	if err != nil {
		t.Fatalf("%s: %v\noutput:\n%s", p.name, err, p.p.Output())
	}
	if r.Err != nil {
		t.Fatalf("%s: invocation error %v\noutput:\n%s", p.name, r.Err, p.p.Output())
	}
	p.invs = append(p.invs, invocation{id: r.RequestID})
	var s runSummary
	if err := json.Unmarshal(r.Payload, &s); err != nil {
		t.Fatalf("runner answer %s: %v", r.Payload, err)
	}
	return s
}

// checkCampaignOutput stops p and checks what it wrote: JSON lines only,
// each request id one the Runtime API issued, no secret and no full
// openid of the file.
func checkCampaignOutput(t *testing.T, p *proc, secrets []string, rows int) {
	t.Helper()
	out := p.stop()
	ids := map[string]bool{}
	for _, inv := range p.invs {
		ids[inv.id] = true
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("%s: output line is not JSON: %s", p.name, sc.Text())
			continue
		}
		if id, ok := rec["requestId"].(string); ok && !ids[id] {
			t.Errorf("%s: log line of request %q, which was never issued: %s", p.name, id, sc.Text())
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("%s: output contains %q", p.name, redact(s))
		}
	}
	for i := 1; i <= rows; i++ {
		if openid := fmt.Sprintf("oxTWIuE2ECampaign%011d", i); strings.Contains(out, openid) {
			t.Errorf("%s: output contains row %d's full openid", p.name, i)
			break
		}
	}
}

// TestCampaignEndToEnd: the sample start (a REST event) creates the
// campaign of a 50-row file in the bucket (202); the runner bootstrap run
// on it ({"campaign_id"}) plans and sends every row: DONE, each row paid
// once at WeChat under its derived billno; the three reports are in the
// bucket under reports/; GET shows it done; the same start again is 200,
// existing, and WeChat sees nothing more; a scheduled tick then finds
// nothing to do.
func TestCampaignEndToEnd(t *testing.T) {
	skipShort(t)
	apiBin := campaignsBuild.get(t, "./functions/campaigns")
	runBin := campaignRunBuild.get(t, "./functions/campaignrun")
	st := newCampaignStack(t, "campaign-e2e")
	const (
		rows = 50
		id   = "spring-2026" // the start sample's campaign_id
	)
	var start map[string]any
	if err := json.Unmarshal(readEvent(t, "campaigns", "apigw-rest-start.json"), &start); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Object string `json:"object"`
	}
	if err := json.Unmarshal([]byte(start["body"].(string)), &body); err != nil {
		t.Fatal(err)
	}
	st.put(t, body.Object, campaignCSV(rows))

	api := startProc(t, "campaigns", apiBin, st.env())
	runner := startProc(t, "campaignrun", runBin, st.env())

	status, v := callAPI(t, api, readEvent(t, "campaigns", "apigw-rest-start.json"))
	if status != 202 || v.CampaignID != id || v.State != "PLANNING" || v.Rows != rows || v.Existing {
		t.Fatalf("start: %d %+v, want 202, %s PLANNING with %d rows", status, v, id, rows)
	}

	// One run plans and sends; a second would only be needed had the
	// first run out of time, which 50 rows at 50 a second never do.
	s := runCampaigns(t, runner, readEvent(t, "campaignrun", "direct.json"))
	if len(s.Campaigns) != 1 || s.Error != "" {
		t.Fatalf("run: %+v\noutput:\n%s", s, runner.p.Output())
	}
	if got := s.Campaigns[0]; got.CampaignID != id || got.State != "DONE" || got.Done != rows || got.Rows != rows {
		t.Fatalf("run: %+v, want %s DONE with %d of %d rows\noutput:\n%s", got, id, rows, rows, runner.p.Output())
	}

	paid := func() {
		t.Helper()
		for i := 1; i <= rows; i++ {
			if b := campaign.Billno(st.merchant.MchID, id, i); st.sim.Payments(b) != 1 {
				t.Errorf("row %d (%s) paid %d times, want once", i, b, st.sim.Payments(b))
			}
		}
		if n := st.sim.TotalPayments(); n != rows {
			t.Errorf("%d payments in all, want %d", n, rows)
		}
	}
	paid()
	requests := st.sim.Requests()

	for ext, contentType := range map[string]string{"csv": "text/csv; charset=utf-8", "json": "application/json", "html": "text/html; charset=utf-8"} {
		b, ct := st.get(t, "reports/"+id+"."+ext)
		if ct != contentType || len(b) == 0 {
			t.Errorf("reports/%s.%s: %d bytes as %q, want a report as %s", id, ext, len(b), ct, contentType)
		}
	}
	csvReport, _ := st.get(t, "reports/"+id+".csv")
	if n := bytes.Count(csvReport, []byte("\n")); n != rows+1 {
		t.Errorf("CSV report has %d lines, want a header and %d rows", n, rows)
	}

	for _, ev := range []string{"apigw-rest-get.json", "apigw-http-get.json"} {
		status, v := callAPI(t, api, readEvent(t, "campaigns", ev))
		if status != 200 || v.State != "DONE" || v.Done != rows || v.Planned != rows || v.Sent != rows || v.Outcomes["success"] != rows {
			t.Errorf("%s: %d %+v, want DONE, %d rows done, all success", ev, status, v, rows)
		}
		if v.Reports["json"] != "s3://"+st.bucket+"/reports/"+id+".json" {
			t.Errorf("%s: reports %v", ev, v.Reports)
		}
	}

	status, v = callAPI(t, api, readEvent(t, "campaigns", "apigw-rest-start.json"))
	if status != 200 || !v.Existing || v.State != "DONE" {
		t.Errorf("start again: %d %+v, want 200, existing, DONE", status, v)
	}
	if s := runCampaigns(t, runner, readEvent(t, "campaignrun", "scheduled.json")); len(s.Campaigns) != 0 || s.Error != "" {
		t.Errorf("tick after: %+v, want nothing to do", s)
	}
	if n := st.sim.Requests(); n != requests {
		t.Errorf("WeChat saw %d requests after the campaign was done, want none", n-requests)
	}
	paid()
	checkCampaignOutput(t, api, st.secrets(), rows)
	checkCampaignOutput(t, runner, st.secrets(), rows)
}
