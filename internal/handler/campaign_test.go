package handler_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// The campaign of the events/campaigns samples: its id (the settings'
// campaign_id) and its file.
const (
	sampleCampaignID = "spring-2026"
	sampleObject     = "incoming/spring.csv"
	sampleSettings   = "incoming/spring.settings.json"
)

// simWeChat is a campaign's WeChat through a client of the simulator.
type simWeChat struct{ client *wxpay.Client }

func (w simWeChat) MchID(context.Context) (string, error) { return w.client.MchID(), nil }

func (w simWeChat) SendFields(ctx context.Context, api string, fields map[string]string) (any, error) {
	return w.client.SendFields(ctx, api, fields)
}

// fakeS3 is one bucket in memory, as campaign.S3API: GetObject answers a
// missing key and a failed If-Match as the SDK does (NoSuchKey with HTTP
// 404, HTTP 412), so that the handler's and the engine's error paths are
// those they take against S3.
type fakeS3 struct {
	bucket string

	mu      sync.Mutex
	objects map[string]fakeObject
}

type fakeObject struct {
	body        []byte
	etag        string // quoted, as S3 gives it
	contentType string
}

func newFakeS3(bucket string) *fakeS3 {
	return &fakeS3{bucket: bucket, objects: make(map[string]fakeObject)}
}

// s3Error is err as the SDK returns an S3 answer of status.
func s3Error(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
		Err:      err,
	}}
}

func (f *fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if aws.ToString(in.Bucket) != f.bucket {
		return nil, s3Error(http.StatusNotFound, &s3types.NoSuchBucket{Message: aws.String("The specified bucket does not exist")})
	}
	f.mu.Lock()
	obj, ok := f.objects[aws.ToString(in.Key)]
	f.mu.Unlock()
	switch {
	case !ok:
		return nil, s3Error(http.StatusNotFound, &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")})
	case in.IfMatch != nil && *in.IfMatch != obj.etag:
		return nil, s3Error(http.StatusPreconditionFailed, errors.New("PreconditionFailed: At least one of the pre-conditions you specified did not hold"))
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(obj.body)), ETag: aws.String(obj.etag),
		ContentLength: aws.Int64(int64(len(obj.body)))}, nil
}

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if aws.ToString(in.Bucket) != f.bucket {
		return nil, s3Error(http.StatusNotFound, &s3types.NoSuchBucket{Message: aws.String("The specified bucket does not exist")})
	}
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.put(aws.ToString(in.Key), aws.ToString(in.ContentType), body)
	return &s3.PutObjectOutput{}, nil
}

// put stores body as key, with S3's ETag of a single-part upload.
func (f *fakeS3) put(key, contentType string, body []byte) {
	sum := md5.Sum(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = fakeObject{body: bytes.Clone(body), etag: `"` + hex.EncodeToString(sum[:]) + `"`, contentType: contentType}
}

// object returns key's content and content type.
func (f *fakeS3) object(key string) ([]byte, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	obj, ok := f.objects[key]
	return obj.body, obj.contentType, ok
}

// keys returns the stored keys under prefix, sorted.
func (f *fakeS3) keys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// campaignWorld is the campaign functions' handlers over one engine: the
// simulator, a memory ledger, memory campaigns and send window, and the
// stack's bucket in memory, named as in the samples.
type campaignWorld struct {
	sim    *wxpaytest.Server
	bucket *fakeS3
	ledger *ledger.Memory
	store  *campaign.Memory
	engine *campaign.Engine
	api    *handler.CampaignsHandler
	runner *handler.CampaignRunHandler
	logs   *syncBuffer
}

func newCampaignWorld(t *testing.T) *campaignWorld {
	t.Helper()
	sim := wxpaytest.NewServer()
	t.Cleanup(sim.Close)
	client, err := sim.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	w := &campaignWorld{sim: sim, bucket: newFakeS3(sampleBucket(t)), ledger: ledger.NewMemory(),
		store: campaign.NewMemory(), logs: &syncBuffer{}}
	logger := handler.NewLogger(w.logs, "DEBUG")
	w.engine = &campaign.Engine{
		Campaigns: w.store, Ledger: w.ledger, Window: campaign.NewMemoryWindow(), WeChat: simWeChat{client},
		Open: func(source string) (campaign.Source, error) {
			b, key, err := campaign.ParseS3URL(source)
			if err != nil {
				return nil, err
			}
			return campaign.S3Object{Client: w.bucket, Bucket: b, Key: key}, nil
		},
		Reports: campaign.Bucket{Client: w.bucket, Name: w.bucket.bucket, Prefix: handler.ReportsPrefix},
		// Far above the few rows of a case: they go out without waiting.
		RateLimit: 1000, APIReserve: -1,
		Logger: logger,
	}
	w.api = handler.NewCampaigns(w.engine, w.bucket, w.bucket.bucket, logger)
	w.runner = handler.NewCampaignRun(w.engine, logger)
	return w
}

// sampleBucket is the bucket of the S3 sample event: the handler's
// bucket in these tests, so that the sample is the stack's.
func sampleBucket(t *testing.T) string {
	t.Helper()
	var ev struct {
		Records []struct {
			S3 struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
			} `json:"s3"`
		} `json:"Records"`
	}
	mustJSON(t, readEvent(t, "campaigns/s3-put.json"), &ev)
	if len(ev.Records) != 1 || ev.Records[0].S3.Bucket.Name == "" {
		t.Fatal("events/campaigns/s3-put.json: want one record naming a bucket")
	}
	return ev.Records[0].S3.Bucket.Name
}

// campaignFile is a CSV of n rows, one receiver each, 1.88 yuan a row;
// bad rows have no re_openid.
func campaignFile(n int, bad ...int) []byte {
	var b strings.Builder
	b.WriteString("re_openid,total_amount\n")
	for i := 1; i <= n; i++ {
		openid := fmt.Sprintf("oxTWIuCampaign%014d", i)
		if slices.Contains(bad, i) {
			openid = ""
		}
		fmt.Fprintf(&b, "%s,188\n", openid)
	}
	return []byte(b.String())
}

// sampleSettingsJSON is the settings of the start samples, as a
// NAME.settings.json holds them.
func sampleSettingsJSON(t *testing.T) []byte {
	t.Helper()
	body := startBody(t, readEvent(t, "campaigns/apigw-rest-start.json"))
	b, err := json.Marshal(body["settings"])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startBody is the JSON body of a start sample.
func startBody(t *testing.T, ev []byte) map[string]any {
	t.Helper()
	var env struct {
		Body string `json:"body"`
	}
	mustJSON(t, ev, &env)
	var body map[string]any
	mustJSON(t, []byte(env.Body), &body)
	return body
}

// apiEvent is an events/campaigns sample with edits: a path id other
// than the sample's, or another body (raw JSON).
type apiEvent struct {
	sample string
	id     string // "" keeps the sample's
	body   string // "" keeps the sample's
	route  string // "" keeps the sample's; else "METHOD /path/{id}"
}

func (e apiEvent) payload(t *testing.T) []byte {
	t.Helper()
	var ev map[string]any
	mustJSON(t, readEvent(t, "campaigns/"+e.sample), &ev)
	http2 := ev["version"] == "2.0"
	if e.id != "" {
		ev["pathParameters"] = map[string]any{"id": e.id}
		for _, k := range []string{"path", "rawPath"} {
			if p, ok := ev[k].(string); ok {
				ev[k] = strings.Replace(p, sampleCampaignID, e.id, 1)
			}
		}
	}
	if e.body != "" {
		ev["body"] = e.body
	}
	if e.route != "" {
		method, path, _ := strings.Cut(e.route, " ")
		if http2 {
			ev["routeKey"] = e.route
			rc := ev["requestContext"].(map[string]any)
			rc["routeKey"] = e.route
			rc["http"].(map[string]any)["method"] = method
		} else {
			ev["resource"], ev["httpMethod"] = path, method
			ev["requestContext"].(map[string]any)["httpMethod"] = method
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apiReply is an answer of the campaign API: its status and JSON body.
type apiReply struct {
	status int
	body   map[string]any
}

func (r apiReply) str(key string) string { s, _ := r.body[key].(string); return s }
func (r apiReply) num(key string) int    { n, _ := r.body[key].(float64); return int(n) }

func (r apiReply) errorField(key string) any {
	e, _ := r.body["error"].(map[string]any)
	return e[key]
}

// call invokes the campaigns handler with an API Gateway event through
// the production JSON path, and checks the answer has the shape of the
// event's API: REST's proxy response, or HTTP's (which has cookies).
func (w *campaignWorld) call(t *testing.T, payload []byte) apiReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := lambda.NewHandler(w.api).Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var probe struct {
		Version string `json:"version"`
	}
	mustJSON(t, payload, &probe)
	var resp map[string]any
	mustJSON(t, out, &resp)
	// Only the HTTP API's answer (APIGatewayV2HTTPResponse) has cookies.
	if _, cookies := resp["cookies"]; cookies != (probe.Version == "2.0") {
		t.Errorf("answer %s to a version %q event: not the shape of its API", out, probe.Version)
	}
	headers, _ := resp["headers"].(map[string]any)
	if headers["Content-Type"] != "application/json" {
		t.Errorf("answer %s: Content-Type %v", out, headers["Content-Type"])
	}
	status, _ := resp["statusCode"].(float64)
	body, _ := resp["body"].(string)
	r := apiReply{status: int(status)}
	mustJSON(t, []byte(body), &r.body)
	return r
}

// notify invokes the campaigns handler with the S3 sample for key.
func (w *campaignWorld) notify(t *testing.T, key string) error {
	t.Helper()
	var ev map[string]any
	mustJSON(t, readEvent(t, "campaigns/s3-put.json"), &ev)
	rec := ev["Records"].([]any)[0].(map[string]any)
	rec["s3"].(map[string]any)["object"].(map[string]any)["key"] = key
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := lambda.NewHandler(w.api).Invoke(ctx, payload)
	if err == nil && len(out) != 0 {
		t.Errorf("S3 notification answered %s, want nothing", out)
	}
	return err
}

// runSummary is the runner function's answer.
type runSummary struct {
	Campaigns []struct {
		CampaignID string `json:"campaign_id"`
		State      string `json:"state"`
		Done       int    `json:"done"`
		Rows       int    `json:"rows"`
	} `json:"campaigns"`
	Error string `json:"error"`
}

// runnerTimeout is the runner's deadline in these tests: a run stops
// sending 20 s before its deadline, and a tick starts no campaign with
// less than 40 s left.
const runnerTimeout = 5 * time.Minute

// run invokes the runner handler with payload.
func (w *campaignWorld) run(t *testing.T, payload []byte) runSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runnerTimeout)
	defer cancel()
	out, err := lambda.NewHandler(w.runner).Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("runner: %v", err)
	}
	var s runSummary
	mustJSON(t, out, &s)
	if s.Campaigns == nil {
		t.Errorf("runner answered %s: want a campaigns list", out)
	}
	return s
}

// billnos are campaign id's billnos in the ledger, by row.
func (w *campaignWorld) billnos(t *testing.T, id string) []string {
	t.Helper()
	items, err := w.ledger.CampaignRows(context.Background(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, it := range items {
		if it.CampaignRow != i+1 {
			t.Fatalf("ledger row %d is row %d", i+1, it.CampaignRow)
		}
		out = append(out, it.MchBillno)
	}
	return out
}

// TestCampaignsAPI walks the sample campaign through the API routes, one
// step after another, in REST and HTTP events alike: started (202), the
// same start again (200, existing), read, paused, refused a second pause
// (409), resumed, cancelled, and refused what its state no longer allows;
// an unknown id is NOT_FOUND and an unknown route 404. The runner never
// runs here: the campaign is never planned, so resume returns it to
// PLANNING.
func TestCampaignsAPI(t *testing.T) {
	w := newCampaignWorld(t)
	const rows = 5
	w.bucket.put(sampleObject, "text/csv", campaignFile(rows))
	for _, step := range []struct {
		name  string
		event apiEvent
		// status and, for a campaign, its state and existing; for a
		// refusal, its code.
		status   int
		state    string
		existing bool
		code     string
	}{
		{"start", apiEvent{sample: "apigw-rest-start.json"}, 202, "PLANNING", false, ""},
		{"start again", apiEvent{sample: "apigw-http-start.json"}, 200, "PLANNING", true, ""},
		{"start again REST", apiEvent{sample: "apigw-rest-start.json"}, 200, "PLANNING", true, ""},
		{"get", apiEvent{sample: "apigw-rest-get.json"}, 200, "PLANNING", false, ""},
		{"get unknown id", apiEvent{sample: "apigw-http-get.json", id: "autumn-2026"}, 404, "", false, "NOT_FOUND"},
		{"pause", apiEvent{sample: "apigw-rest-pause.json"}, 200, "PAUSED", false, ""},
		{"pause again", apiEvent{sample: "apigw-rest-pause.json"}, 409, "", false, "INVALID_STATE"},
		{"get paused", apiEvent{sample: "apigw-http-get.json"}, 200, "PAUSED", false, ""},
		{"pause unknown id", apiEvent{sample: "apigw-rest-pause.json", id: "autumn-2026"}, 404, "", false, "NOT_FOUND"},
		{"resume", apiEvent{sample: "apigw-http-resume.json"}, 200, "PLANNING", false, ""},
		{"resume again", apiEvent{sample: "apigw-http-resume.json"}, 409, "", false, "INVALID_STATE"},
		{"cancel", apiEvent{sample: "apigw-rest-cancel.json"}, 200, "CANCELLED", false, ""},
		{"cancel again", apiEvent{sample: "apigw-rest-cancel.json"}, 409, "", false, "INVALID_STATE"},
		{"resume cancelled", apiEvent{sample: "apigw-http-resume.json"}, 409, "", false, "INVALID_STATE"},
		{"get cancelled", apiEvent{sample: "apigw-rest-get.json"}, 200, "CANCELLED", false, ""},
		{"unknown route REST", apiEvent{sample: "apigw-rest-get.json", route: "DELETE /campaigns/{id}"}, 404, "", false, "NOT_FOUND"},
		{"unknown route HTTP", apiEvent{sample: "apigw-http-get.json", route: "GET /campaigns"}, 404, "", false, "NOT_FOUND"},
		{"unknown action", apiEvent{sample: "apigw-http-resume.json", route: "POST /campaigns/{id}/restart"}, 404, "", false, "NOT_FOUND"},
	} {
		t.Run(step.name, func(t *testing.T) {
			r := w.call(t, step.event.payload(t))
			if r.status != step.status {
				t.Fatalf("status %d, want %d: %v", r.status, step.status, r.body)
			}
			if step.code != "" {
				if r.errorField("code") != step.code || r.errorField("message") == "" {
					t.Errorf("answer %v, want %s", r.body, step.code)
				}
				if step.code == "INVALID_STATE" && r.errorField("state") == nil {
					t.Errorf("answer %v: the refusal names no state", r.body)
				}
				return
			}
			existing, _ := r.body["existing"].(bool)
			if r.str("campaign_id") != sampleCampaignID || r.str("state") != step.state || existing != step.existing {
				t.Errorf("answer %v, want %s %s, existing %v", r.body, sampleCampaignID, step.state, step.existing)
			}
			if r.num("rows") != rows || r.num("amount") != rows*188 || r.str("source") != "s3://"+w.bucket.bucket+"/"+sampleObject {
				t.Errorf("answer %v, want %d rows of 188 fen from %s", r.body, rows, sampleObject)
			}
		})
	}
	if n := w.sim.Requests(); n != 0 {
		t.Errorf("WeChat saw %d requests, want none", n)
	}
	// A cancelled campaign's report is due: the next tick writes it.
	s := w.run(t, readEvent(t, "campaignrun/scheduled.json"))
	if len(s.Campaigns) != 1 || s.Campaigns[0].State != "CANCELLED" || s.Error != "" {
		t.Errorf("tick after the cancel: %+v, want the cancelled campaign's report", s)
	}
	for _, ext := range []string{"csv", "json", "html"} {
		if _, _, ok := w.bucket.object(handler.ReportsPrefix + sampleCampaignID + "." + ext); !ok {
			t.Errorf("no %s report after the cancel: %v", ext, w.bucket.keys(""))
		}
	}
	r := w.call(t, apiEvent{sample: "apigw-rest-get.json"}.payload(t))
	if reports, _ := r.body["reports"].(map[string]any); reports["json"] != "s3://"+w.bucket.bucket+"/reports/"+sampleCampaignID+".json" {
		t.Errorf("GET after the report: %v, want its reports", r.body)
	}
}

// TestCampaignsStart: what POST /campaigns makes of its body and of the
// files in the bucket, each case on a bucket of its own. A refused file
// records and sends nothing.
func TestCampaignsStart(t *testing.T) {
	settings := func(t *testing.T, edit func(map[string]any)) map[string]any {
		var s map[string]any
		mustJSON(t, sampleSettingsJSON(t), &s)
		if edit != nil {
			edit(s)
		}
		return s
	}
	body := func(t *testing.T, object string, s map[string]any) string {
		m := map[string]any{"object": object}
		if s != nil {
			m["settings"] = s
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		// files are put in the bucket first; body is the start's.
		files  map[string][]byte
		body   func(t *testing.T) string
		status int
		code   string
		// check looks further at the answer.
		check func(t *testing.T, w *campaignWorld, r apiReply)
	}{
		{
			name:   "settings in the body",
			files:  map[string][]byte{sampleObject: campaignFile(3)},
			body:   func(t *testing.T) string { return body(t, sampleObject, settings(t, nil)) },
			status: 202,
		},
		{
			name:   "settings beside the file",
			files:  map[string][]byte{sampleObject: campaignFile(3), sampleSettings: sampleSettingsJSON(t)},
			body:   func(t *testing.T) string { return `{"object": "` + sampleObject + `"}` },
			status: 202,
		},
		{
			name:   "settings beside a JSONL file",
			files:  map[string][]byte{"incoming/spring.jsonl": []byte(`{"re_openid": "oxTWIuCampaign00000000000001", "total_amount": 188}` + "\n"), sampleSettings: sampleSettingsJSON(t)},
			body:   func(t *testing.T) string { return `{"object": "incoming/spring.jsonl"}` },
			status: 202,
		},
		{
			name:   "no settings anywhere",
			files:  map[string][]byte{sampleObject: campaignFile(3)},
			body:   func(t *testing.T) string { return `{"object": "` + sampleObject + `"}` },
			status: 400, code: "INVALID_REQUEST",
			check: func(t *testing.T, w *campaignWorld, r apiReply) {
				if msg, _ := r.errorField("message").(string); !strings.Contains(msg, sampleSettings) {
					t.Errorf("message %q does not name %s", msg, sampleSettings)
				}
			},
		},
		{
			name:   "settings beside the file that do not decode",
			files:  map[string][]byte{sampleObject: campaignFile(3), sampleSettings: []byte(`{"wxappid": "wx8888888888888888", "sendname": "x"}`)},
			body:   func(t *testing.T) string { return `{"object": "` + sampleObject + `"}` },
			status: 400, code: "INVALID_REQUEST",
			check: func(t *testing.T, w *campaignWorld, r apiReply) {
				if msg, _ := r.errorField("message").(string); !strings.Contains(msg, sampleSettings) || !strings.Contains(msg, "sendname") {
					t.Errorf("message %q does not name %s and its unknown member", msg, sampleSettings)
				}
			},
		},
		{
			name:   "unknown member",
			files:  map[string][]byte{sampleObject: campaignFile(3)},
			body:   func(t *testing.T) string { return `{"object": "` + sampleObject + `", "file": "x.csv"}` },
			status: 400, code: "INVALID_REQUEST",
		},
		{
			name:  "unknown member in the settings",
			files: map[string][]byte{sampleObject: campaignFile(3)},
			body: func(t *testing.T) string {
				return body(t, sampleObject, settings(t, func(s map[string]any) { s["sendname"] = "x" }))
			},
			status: 400, code: "INVALID_REQUEST",
		},
		{
			name:   "not JSON",
			body:   func(t *testing.T) string { return `{"object": ` },
			status: 400, code: "INVALID_REQUEST",
		},
		{
			name:   "no object",
			body:   func(t *testing.T) string { return body(t, "", settings(t, nil)) },
			status: 400, code: "INVALID_REQUEST",
		},
		{
			name:   "an URL for object",
			body:   func(t *testing.T) string { return body(t, "s3://other/"+sampleObject, settings(t, nil)) },
			status: 400, code: "INVALID_REQUEST",
		},
		{
			name:   "no such object",
			body:   func(t *testing.T) string { return body(t, "incoming/missing.csv", settings(t, nil)) },
			status: 404, code: "NOT_FOUND",
		},
		{
			name:   "a bad row",
			files:  map[string][]byte{sampleObject: campaignFile(4, 3)},
			body:   func(t *testing.T) string { return body(t, sampleObject, settings(t, nil)) },
			status: 400, code: "INVALID_FILE",
			check: func(t *testing.T, w *campaignWorld, r apiReply) {
				errs, _ := r.errorField("errors").([]any)
				var first map[string]any
				if len(errs) == 1 {
					first, _ = errs[0].(map[string]any)
				}
				if r.errorField("error_count") != 1.0 || first["row"] != 3.0 || first["field"] != "re_openid" ||
					r.errorField("campaign_id") != sampleCampaignID {
					t.Errorf("answer %v, want row 3's re_openid listed", r.body)
				}
				report := "reports/" + sampleCampaignID + ".json"
				if r.errorField("report") != "s3://"+w.bucket.bucket+"/"+report {
					t.Errorf("answer %v, want the refusal report named", r.body)
				}
				if _, _, ok := w.bucket.object(report); !ok {
					t.Errorf("no refusal report: %v", w.bucket.keys(""))
				}
				if items, _ := w.ledger.CampaignRows(context.Background(), sampleCampaignID, 0, 100); len(items) != 0 {
					t.Errorf("%d rows recorded for a refused file", len(items))
				}
				c, err := w.engine.Get(context.Background(), sampleCampaignID)
				if err != nil || c.State != campaign.Refused {
					t.Errorf("campaign %+v, %v: want REFUSED", c, err)
				}
			},
		},
		{
			name:  "a campaign_id of another file",
			files: map[string][]byte{sampleObject: campaignFile(3), "incoming/autumn.csv": campaignFile(4)},
			body: func(t *testing.T) string {
				return body(t, "incoming/autumn.csv", settings(t, nil))
			},
			status: 409, code: "CAMPAIGN_CONFLICT",
		},
		{
			name:  "a campaign_id with other settings",
			files: map[string][]byte{sampleObject: campaignFile(3)},
			body: func(t *testing.T) string {
				return body(t, sampleObject, settings(t, func(s map[string]any) { s["act_name"] = "另一个活动" }))
			},
			status: 409, code: "CAMPAIGN_CONFLICT",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCampaignWorld(t)
			for k, v := range tc.files {
				w.bucket.put(k, "", v)
			}
			if tc.code == "CAMPAIGN_CONFLICT" {
				// The sample campaign started first, from the sample's
				// file and settings.
				if r := w.call(t, apiEvent{sample: "apigw-rest-start.json"}.payload(t)); r.status != 202 {
					t.Fatalf("sample start: %d %v", r.status, r.body)
				}
			}
			r := w.call(t, apiEvent{sample: "apigw-http-start.json", body: tc.body(t)}.payload(t))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %v", r.status, tc.status, r.body)
			}
			if tc.code != "" && r.errorField("code") != tc.code {
				t.Errorf("answer %v, want %s", r.body, tc.code)
			}
			if tc.code == "" && (r.str("campaign_id") != sampleCampaignID || r.str("state") != "PLANNING") {
				t.Errorf("answer %v, want %s PLANNING", r.body, sampleCampaignID)
			}
			if tc.check != nil {
				tc.check(t, w, r)
			}
			if n := w.sim.Requests(); n != 0 {
				t.Errorf("WeChat saw %d requests at the start, want none", n)
			}
		})
	}
}

// TestCampaignsS3Events: a campaign starts from files dropped under
// incoming/ when both the file and its settings are there, whichever
// comes last; the first starts nothing. S3's repeated notifications start
// nothing twice, and objects elsewhere are ignored.
func TestCampaignsS3Events(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  string // key dropped first; the other second
		second string
	}{
		{"settings then file", sampleSettings, sampleObject},
		{"file then settings", sampleObject, sampleSettings},
		{"settings then JSONL file", sampleSettings, "incoming/spring.jsonl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCampaignWorld(t)
			drop := func(key string) {
				t.Helper()
				content := campaignFile(3)
				switch {
				case key == sampleSettings:
					content = sampleSettingsJSON(t)
				case strings.HasSuffix(key, ".jsonl"):
					content = []byte(`{"re_openid": "oxTWIuCampaign00000000000001", "total_amount": 188}` + "\n")
				}
				w.bucket.put(key, "", content)
				if err := w.notify(t, key); err != nil {
					t.Fatalf("notification of %s: %v", key, err)
				}
			}
			drop(tc.first)
			if _, err := w.engine.Get(context.Background(), sampleCampaignID); !errors.Is(err, campaign.ErrNotFound) {
				t.Fatalf("after %s alone: %v, want no campaign", tc.first, err)
			}
			drop(tc.second)
			c, err := w.engine.Get(context.Background(), sampleCampaignID)
			if err != nil || c.State != campaign.Planning {
				t.Fatalf("after both: %+v, %v: want the campaign PLANNING", c, err)
			}
			object := tc.first
			if object == sampleSettings {
				object = tc.second
			}
			if c.Source != "s3://"+w.bucket.bucket+"/"+object {
				t.Errorf("source %s, want %s", c.Source, object)
			}
			// At least once: the same notifications again change nothing.
			for _, key := range []string{tc.first, tc.second} {
				if err := w.notify(t, key); err != nil {
					t.Errorf("repeated notification of %s: %v", key, err)
				}
			}
			if again, err := w.engine.Get(context.Background(), sampleCampaignID); err != nil || again.Version != c.Version {
				t.Errorf("after repeated notifications: %+v, %v; want the campaign untouched", again, err)
			}
			if n := w.sim.Requests(); n != 0 {
				t.Errorf("WeChat saw %d requests, want none", n)
			}
		})
	}

	t.Run("ignored", func(t *testing.T) {
		w := newCampaignWorld(t)
		w.bucket.put(sampleSettings, "", sampleSettingsJSON(t))
		for _, key := range []string{"reports/spring.csv", "incoming/spring.txt", "incoming/spring.settings.json.bak"} {
			w.bucket.put(key, "", campaignFile(3))
			if err := w.notify(t, key); err != nil {
				t.Errorf("%s: %v", key, err)
			}
		}
		if list, _ := w.store.List(context.Background()); len(list) != 0 {
			t.Errorf("%d campaigns started by objects that are not campaign files", len(list))
		}
	})

	t.Run("bad file", func(t *testing.T) {
		// Refused: nothing for Lambda to retry; the refusal report says
		// why.
		w := newCampaignWorld(t)
		w.bucket.put(sampleSettings, "", sampleSettingsJSON(t))
		w.bucket.put(sampleObject, "", campaignFile(3, 2))
		if err := w.notify(t, sampleObject); err != nil {
			t.Fatalf("notification: %v", err)
		}
		if c, err := w.engine.Get(context.Background(), sampleCampaignID); err != nil || c.State != campaign.Refused {
			t.Errorf("campaign %+v, %v: want REFUSED", c, err)
		}
		if _, _, ok := w.bucket.object("reports/" + sampleCampaignID + ".csv"); !ok {
			t.Errorf("no refusal report: %v", w.bucket.keys(""))
		}
	})

	t.Run("refused drops say why", func(t *testing.T) {
		// No campaign starts: nothing for Lambda to retry, and
		// reports/NAME.error.json tells the merchant why.
		for _, tc := range []struct {
			name     string
			settings []byte
			code     string
		}{
			{"settings that do not decode", []byte(`{"wxappid": "wx8888888888888888", "sendname": "x"}`), "INVALID_REQUEST"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := newCampaignWorld(t)
				w.bucket.put(sampleSettings, "", tc.settings)
				w.bucket.put(sampleObject, "", campaignFile(3))
				if err := w.notify(t, sampleObject); err != nil {
					t.Fatalf("notification: %v", err)
				}
				if list, _ := w.store.List(context.Background()); len(list) != 0 {
					t.Errorf("%d campaigns started", len(list))
				}
				body, _, ok := w.bucket.object("reports/spring.error.json")
				if !ok || !strings.Contains(string(body), tc.code) || !strings.Contains(string(body), sampleObject) {
					t.Errorf("reports/spring.error.json: %q (present %v), want the code %s and the object", body, ok, tc.code)
				}
			})
		}
	})
}

// TestCampaignRun: the runner's scheduled tick runs a started campaign to
// DONE: every row paid once at WeChat, the three reports written under
// reports/, GET showing it done; a tick after finds nothing, and the same
// start again, or a direct run of the campaign, pays nothing more.
func TestCampaignRun(t *testing.T) {
	w := newCampaignWorld(t)
	const rows = 12
	w.bucket.put(sampleObject, "text/csv", campaignFile(rows))
	if r := w.call(t, apiEvent{sample: "apigw-rest-start.json"}.payload(t)); r.status != 202 {
		t.Fatalf("start: %d %v", r.status, r.body)
	}

	s := w.run(t, readEvent(t, "campaignrun/scheduled.json"))
	if len(s.Campaigns) != 1 || s.Error != "" {
		t.Fatalf("tick: %+v, want the campaign run", s)
	}
	if got := s.Campaigns[0]; got.CampaignID != sampleCampaignID || got.State != "DONE" || got.Done != rows || got.Rows != rows {
		t.Errorf("tick: %+v, want %s DONE, %d of %d rows", got, sampleCampaignID, rows, rows)
	}
	billnos := w.billnos(t, sampleCampaignID)
	if len(billnos) != rows {
		t.Fatalf("%d rows in the ledger, want %d", len(billnos), rows)
	}
	paid := func(t *testing.T) {
		t.Helper()
		for _, b := range billnos {
			if n := w.sim.Payments(b); n != 1 {
				t.Errorf("%s paid %d times, want once", b, n)
			}
		}
		if n := w.sim.TotalPayments(); n != rows {
			t.Errorf("%d payments in all, want %d", n, rows)
		}
	}
	paid(t)
	requests := w.sim.Requests()

	for ext, contentType := range map[string]string{"csv": "text/csv; charset=utf-8", "json": "application/json", "html": "text/html; charset=utf-8"} {
		key := handler.ReportsPrefix + sampleCampaignID + "." + ext
		body, ct, ok := w.bucket.object(key)
		if !ok || ct != contentType || len(body) == 0 {
			t.Errorf("%s: found %v, %q, %d bytes; want the report as %s", key, ok, ct, len(body), contentType)
		}
	}
	if body, _, _ := w.bucket.object(handler.ReportsPrefix + sampleCampaignID + ".csv"); bytes.Count(body, []byte("\n")) != rows+1 {
		t.Errorf("CSV report:\n%s\nwant a header and %d rows", body, rows)
	}
	var summary map[string]any
	if body, _, _ := w.bucket.object(handler.ReportsPrefix + sampleCampaignID + ".json"); json.Unmarshal(body, &summary) != nil ||
		summary["campaign_id"] != sampleCampaignID || summary["state"] != "DONE" {
		t.Errorf("JSON report: %v", summary)
	}

	for _, ev := range []string{"apigw-rest-get.json", "apigw-http-get.json"} {
		r := w.call(t, apiEvent{sample: ev}.payload(t))
		outcomes, _ := r.body["outcomes"].(map[string]any)
		if r.status != 200 || r.str("state") != "DONE" || r.num("done") != rows || r.num("planned") != rows ||
			r.num("sent") != rows || outcomes["success"] != float64(rows) || r.str("finished_at") == "" {
			t.Errorf("%s: %d %v, want DONE with %d rows sent, all success", ev, r.status, r.body, rows)
		}
		if reports, _ := r.body["reports"].(map[string]any); reports["html"] != "s3://"+w.bucket.bucket+"/reports/"+sampleCampaignID+".html" {
			t.Errorf("%s: reports %v, want the three written", ev, r.body["reports"])
		}
	}

	// Nothing left: a tick finds nothing, a direct run returns the
	// campaign as it is, a start again finds it.
	if s := w.run(t, readEvent(t, "campaignrun/scheduled.json")); len(s.Campaigns) != 0 || s.Error != "" {
		t.Errorf("tick after: %+v, want nothing worked on", s)
	}
	if s := w.run(t, readEvent(t, "campaignrun/direct.json")); len(s.Campaigns) != 1 || s.Campaigns[0].State != "DONE" || s.Error != "" {
		t.Errorf("direct run after: %+v, want the campaign DONE, untouched", s)
	}
	r := w.call(t, apiEvent{sample: "apigw-http-start.json"}.payload(t))
	if existing, _ := r.body["existing"].(bool); r.status != 200 || !existing || r.str("state") != "DONE" {
		t.Errorf("start again: %d %v, want 200, existing, DONE", r.status, r.body)
	}
	if n := w.sim.Requests(); n != requests {
		t.Errorf("WeChat saw %d more requests after the campaign was done", n-requests)
	}
	paid(t)
}

// TestCampaignRunPauseResume: WeChat refusing the merchant (NOTENOUGH)
// pauses the campaign with nothing paid; after a top-up, resume (an HTTP
// API event) makes it RUNNING, the runner run directly ({"campaign_id"})
// completes it, and every row is paid once.
func TestCampaignRunPauseResume(t *testing.T) {
	w := newCampaignWorld(t)
	const rows = 6
	w.bucket.put(sampleObject, "text/csv", campaignFile(rows))
	if r := w.call(t, apiEvent{sample: "apigw-http-start.json"}.payload(t)); r.status != 202 {
		t.Fatalf("start: %d %v", r.status, r.body)
	}
	balance := w.sim.Balance()
	w.sim.SetBalance(0)
	s := w.run(t, readEvent(t, "campaignrun/direct.json"))
	if len(s.Campaigns) != 1 || s.Campaigns[0].State != "PAUSED" || s.Error != "" {
		t.Fatalf("run with no balance: %+v, want PAUSED", s)
	}
	r := w.call(t, apiEvent{sample: "apigw-rest-get.json"}.payload(t))
	if r.str("state") != "PAUSED" || !strings.HasPrefix(r.str("reason"), "NOTENOUGH") || r.num("planned") != rows {
		t.Errorf("GET: %v, want PAUSED by NOTENOUGH with every row planned", r.body)
	}
	if n := w.sim.TotalPayments(); n != 0 {
		t.Errorf("%d payments with no balance", n)
	}
	// Paused: a tick leaves it alone.
	if s := w.run(t, readEvent(t, "campaignrun/scheduled.json")); len(s.Campaigns) != 0 {
		t.Errorf("tick while paused: %+v, want nothing worked on", s)
	}

	w.sim.SetBalance(balance)
	if r := w.call(t, apiEvent{sample: "apigw-http-resume.json"}.payload(t)); r.status != 200 || r.str("state") != "RUNNING" || r.str("reason") != "" {
		t.Fatalf("resume: %d %v, want RUNNING", r.status, r.body)
	}
	s = w.run(t, readEvent(t, "campaignrun/direct.json"))
	if len(s.Campaigns) != 1 || s.Campaigns[0].State != "DONE" || s.Campaigns[0].Done != rows || s.Error != "" {
		t.Fatalf("run after the resume: %+v, want DONE", s)
	}
	for _, b := range w.billnos(t, sampleCampaignID) {
		if n := w.sim.Payments(b); n != 1 {
			t.Errorf("%s paid %d times, want once", b, n)
		}
	}
}

// TestCampaignRunEvents: the runner's answer to what it may be invoked
// with: a schedule's event or {} tick, {"campaign_id"} runs that one (an
// unknown one is an error in the answer, not an invocation error that
// Lambda would retry).
func TestCampaignRunEvents(t *testing.T) {
	w := newCampaignWorld(t)
	for _, tc := range []struct {
		name, payload string
		wantError     bool
	}{
		{"scheduled", string(readEvent(t, "campaignrun/scheduled.json")), false},
		{"empty object", `{}`, false},
		{"unknown campaign", `{"campaign_id": "autumn-2026"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := w.run(t, []byte(tc.payload))
			if len(s.Campaigns) != 0 || (s.Error != "") != tc.wantError {
				t.Errorf("answer %+v, want no campaign and an error: %v", s, tc.wantError)
			}
		})
	}
}
