package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/go-json-experiment/json"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
)

// The codes of the campaign API's refusals.
const (
	// CodeInvalidFile: the campaign file has invalid rows; nothing was
	// recorded or sent. The answer lists them (the first 100) and names
	// the refusal report.
	CodeInvalidFile = "INVALID_FILE"
	// CodeNotFound: no campaign has the id, or no object has the key.
	CodeNotFound = "NOT_FOUND"
	// CodeCampaignConflict: the settings' campaign_id names a campaign of
	// another file or other settings.
	CodeCampaignConflict = "CAMPAIGN_CONFLICT"
	// CodeDuplicateCampaign: the file's rows are those of a campaign not
	// over yet, under another id (its settings differ).
	CodeDuplicateCampaign = "DUPLICATE_CAMPAIGN"
	// CodeInvalidState: the campaign's state does not allow the action.
	CodeInvalidState = "INVALID_STATE"
	// CodeUnavailable: the campaign store could not be reached.
	CodeUnavailable = "UNAVAILABLE"
)

// Where merchants drop campaign files and where reports go, in the
// stack's bucket.
const (
	IncomingPrefix = "incoming/"
	ReportsPrefix  = "reports/"
	// settingsSuffix names a file's settings beside it:
	// incoming/NAME.csv and incoming/NAME.settings.json.
	settingsSuffix = ".settings.json"
)

// maxListedErrors bounds the invalid rows an answer lists; the refusal
// report lists them all.
const maxListedErrors = 100

// CampaignsHandler serves CampaignsFunction: the campaign API routes
// (POST /campaigns, GET /campaigns/{id}, POST /campaigns/{id}/pause,
// /resume and /cancel), behind API Gateway REST or HTTP APIs, and the
// bucket's ObjectCreated events for files dropped under incoming/. Build
// it once per execution environment.
type CampaignsHandler struct {
	engine *campaign.Engine
	s3     campaign.S3API
	bucket string
	log    *slog.Logger
	// configErr, when set, is the answer to every invocation.
	configErr error
}

// NewCampaigns returns the campaign API's handler over engine, for files
// in bucket read through client.
func NewCampaigns(engine *campaign.Engine, client campaign.S3API, bucket string, logger *slog.Logger) *CampaignsHandler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &CampaignsHandler{engine: engine, s3: client, bucket: bucket, log: logger}
}

// CampaignsFromEnv builds CampaignsFunction's handler the way a deployed
// function runs; see campaignEngineFromEnv for the environment. It never
// fails: a configuration fault is logged once and every request answers
// CONFIG_ERROR naming it.
func CampaignsFromEnv(ctx context.Context) *CampaignsHandler {
	engine, client, bucket, err := campaignEngineFromEnv(ctx)
	logger := engine.Logger
	h := NewCampaigns(engine, client, bucket, logger)
	if err != nil {
		logger.Error("configuration error", slog.String("function", "campaigns"), slog.String("error", err.Error()))
		h.configErr = err
	}
	return h
}

// Invoke implements lambda.Handler.
func (h *CampaignsHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	src, env := classify(payload)
	if env != nil && len(env.Records) > 0 && env.Records[0].EventSource == "aws:s3" {
		return nil, h.objectsCreated(ctx, payload)
	}
	if src != SourceREST && src != SourceHTTP {
		return nil, fmt.Errorf("campaigns: the event is neither an API Gateway request nor an S3 notification")
	}
	status, body := h.route(ctx, src, env, payload)
	return httpResponse(src, status, body)
}

// route answers one API request.
func (h *CampaignsHandler) route(ctx context.Context, src Source, env *envelope, payload []byte) (int, []byte) {
	if h.configErr != nil {
		return apiError(http.StatusInternalServerError, CodeConfig, h.configErr.Error(), nil)
	}
	r, err := env.request(src)
	if err != nil {
		return apiError(http.StatusBadRequest, CodeInvalidRequest, err.Error(), nil)
	}
	var rt struct {
		Resource string `json:"resource"` // REST: /campaigns/{id}/pause
		RouteKey string `json:"routeKey"` // HTTP: POST /campaigns/{id}/pause
	}
	_ = json.Unmarshal(payload, &rt)
	route := rt.Resource
	if src == SourceHTTP {
		_, route, _ = strings.Cut(rt.RouteKey, " ")
	}
	id := r.path["id"]
	switch {
	case r.method == http.MethodPost && route == "/campaigns":
		return h.start(ctx, r)
	case r.method == http.MethodGet && route == "/campaigns/{id}":
		c, err := h.engine.Get(ctx, id)
		return h.answer(http.StatusOK, c, false, err)
	case r.method == http.MethodPost && route == "/campaigns/{id}/pause":
		c, err := h.engine.Pause(ctx, id)
		return h.answer(http.StatusOK, c, false, err)
	case r.method == http.MethodPost && route == "/campaigns/{id}/resume":
		c, err := h.engine.Resume(ctx, id)
		return h.answer(http.StatusOK, c, false, err)
	case r.method == http.MethodPost && route == "/campaigns/{id}/cancel":
		c, err := h.engine.Cancel(ctx, id)
		return h.answer(http.StatusOK, c, false, err)
	}
	return apiError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route %s %s", r.method, route), nil)
}

// startRequest is POST /campaigns's body.
type startRequest struct {
	// Object is the file's key in the stack's bucket, such as
	// incoming/spring.csv.
	Object string `json:"object"`
	// Settings are the campaign's settings; when absent, the object's
	// NAME.settings.json beside it.
	Settings *campaign.Settings `json:"settings"`
}

// start answers POST /campaigns: the file checked, and the campaign
// created for a runner (202), found started before (200), or refused.
func (h *CampaignsHandler) start(ctx context.Context, r httpRequest) (int, []byte) {
	var req startRequest
	if err := json.Unmarshal(r.body, &req, json.RejectUnknownMembers(true)); err != nil {
		return apiError(http.StatusBadRequest, CodeInvalidRequest, "the body must be {\"object\": \"incoming/NAME.csv\", \"settings\": {...}}: "+err.Error(), nil)
	}
	if !strings.HasPrefix(req.Object, IncomingPrefix) || strings.Contains(req.Object, "://") {
		return apiError(http.StatusBadRequest, CodeInvalidRequest, "object: the file's key under incoming/ in the stack's bucket is required, such as incoming/spring.csv", nil)
	}
	settings := req.Settings
	if settings == nil {
		s, found, err := h.settingsBeside(ctx, req.Object)
		switch {
		case err != nil:
			return h.answer(0, nil, false, err)
		case !found:
			return apiError(http.StatusBadRequest, CodeInvalidRequest, "settings: give them in the body or as "+settingsKey(req.Object)+" in the bucket", nil)
		}
		settings = &s
	}
	st, err := h.engine.Start(ctx, h.s3URL(req.Object), *settings)
	if err != nil {
		return h.answer(0, nil, false, err)
	}
	if st.Campaign.State == campaign.Refused {
		errs := st.Errors
		if len(errs) > maxListedErrors {
			errs = errs[:maxListedErrors]
		}
		extra := map[string]any{"campaign_id": st.Campaign.ID, "errors": errs, "error_count": len(st.Errors),
			"report": h.s3URL(ReportsPrefix + st.Campaign.ID + ".json")}
		return apiError(http.StatusBadRequest, CodeInvalidFile, st.Campaign.Reason, extra)
	}
	status := http.StatusAccepted
	if st.Existing {
		status = http.StatusOK
	}
	return h.answer(status, st.Campaign, st.Existing, nil)
}

// campaignView is a campaign as the API shows it.
type campaignView struct {
	CampaignID string            `json:"campaign_id"`
	State      campaign.State    `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	Existing   bool              `json:"existing,omitempty"`
	Source     string            `json:"source"`
	Rows       int               `json:"rows"`
	Amount     int64             `json:"amount"`
	Planned    int               `json:"planned"`
	Done       int               `json:"done"`
	Sent       int               `json:"sent"`
	Outcomes   map[string]int    `json:"outcomes,omitempty"`
	Rate       float64           `json:"rate"`
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Reports    map[string]string `json:"reports,omitempty"`
}

func (h *CampaignsHandler) view(c *campaign.Campaign, existing bool) campaignView {
	v := campaignView{CampaignID: c.ID, State: c.State, Reason: c.Reason, Existing: existing, Source: c.Source,
		Rows: c.Rows, Amount: c.Amount, Planned: c.Planned, Done: c.Cursor, Sent: c.Sent, Outcomes: c.Outcomes,
		Rate: c.Rate, CreatedAt: c.CreatedAt}
	if !c.StartedAt.IsZero() {
		v.StartedAt = &c.StartedAt
	}
	if !c.FinishedAt.IsZero() {
		v.FinishedAt = &c.FinishedAt
	}
	if !c.ReportedAt.IsZero() || c.State == campaign.Refused {
		v.Reports = map[string]string{}
		for _, ext := range []string{"csv", "json", "html"} {
			v.Reports[ext] = h.s3URL(ReportsPrefix + c.ID + "." + ext)
		}
	}
	return v
}

// answer maps a campaign, or the error of getting it, to the API's answer.
func (h *CampaignsHandler) answer(status int, c *campaign.Campaign, existing bool, err error) (int, []byte) {
	var (
		serr *campaign.StateError
		cerr *campaign.ConflictError
		ferr *credstore.ConfigError
		nf   *s3types.NoSuchKey
		berr *settingsError
		derr *campaign.DuplicateError
	)
	switch {
	case err == nil:
		b, _ := marshal(h.view(c, existing))
		return status, b
	case errors.Is(err, campaign.ErrNotFound):
		return apiError(http.StatusNotFound, CodeNotFound, "no such campaign", nil)
	case errors.As(err, &nf):
		return apiError(http.StatusNotFound, CodeNotFound, "no such object in the stack's bucket", nil)
	case errors.As(err, &serr):
		return apiError(http.StatusConflict, CodeInvalidState, serr.Error(), map[string]any{"state": serr.State})
	case errors.As(err, &cerr):
		return apiError(http.StatusConflict, CodeCampaignConflict, cerr.Error(), nil)
	case errors.As(err, &derr):
		return apiError(http.StatusConflict, CodeDuplicateCampaign, derr.Error(), map[string]any{"campaign_id": derr.Other, "state": derr.State})
	case errors.As(err, &ferr):
		return apiError(http.StatusInternalServerError, CodeConfig, ferr.Error(), nil)
	case errors.As(err, &berr):
		return apiError(http.StatusBadRequest, CodeInvalidRequest, berr.Error(), nil)
	}
	h.log.Error("campaign request failed", slog.String("error", err.Error()))
	return apiError(http.StatusServiceUnavailable, CodeUnavailable, "the campaign could not be read or written; retry later", nil)
}

// apiError is the campaign API's error body: {"error": {"code",
// "message", ...extra}}.
func apiError(status int, code, message string, extra map[string]any) (int, []byte) {
	e := map[string]any{"code": code, "message": message}
	for k, v := range extra {
		e[k] = v
	}
	b, _ := marshal(map[string]any{"error": e})
	return status, b
}

func (h *CampaignsHandler) s3URL(key string) string { return "s3://" + h.bucket + "/" + key }

// settingsKey is where a file's settings are: incoming/NAME.settings.json
// beside incoming/NAME.csv or NAME.jsonl.
func settingsKey(object string) string { return dropBase(object) + settingsSuffix }

// dropBase is a dropped object's key without its suffix: incoming/NAME
// of incoming/NAME.csv, NAME.jsonl and NAME.settings.json.
func dropBase(key string) string {
	for _, suffix := range []string{settingsSuffix, ".csv", ".jsonl"} {
		if base, ok := strings.CutSuffix(key, suffix); ok {
			return base
		}
	}
	return key
}

// settingsBeside reads a file's settings from the bucket; found is false
// when there are none.
func (h *CampaignsHandler) settingsBeside(ctx context.Context, object string) (campaign.Settings, bool, error) {
	b, found, err := h.read(ctx, settingsKey(object))
	if err != nil || !found {
		return campaign.Settings{}, found, err
	}
	s, err := campaign.ParseSettings(b)
	if err != nil {
		return s, true, &settingsError{key: settingsKey(object), err: err}
	}
	return s, true, nil
}

// settingsError is a settings file in the bucket that does not decode.
type settingsError struct {
	key string
	err error
}

func (e *settingsError) Error() string { return e.key + ": " + e.err.Error() }

func (e *settingsError) Unwrap() error { return e.err }

// read returns an object of the bucket; found is false when there is none.
func (h *CampaignsHandler) read(ctx context.Context, key string) ([]byte, bool, error) {
	rc, _, err := campaign.S3Object{Client: h.s3, Bucket: h.bucket, Key: key}.Open(ctx, "")
	var nf *s3types.NoSuchKey
	if errors.As(err, &nf) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxBodySize))
	return b, true, err
}

// objectsCreated starts the campaigns of files dropped under incoming/:
// a file starts when both it (NAME.csv or NAME.jsonl) and its settings
// (NAME.settings.json) are there, on whichever arrives last. Starting is
// idempotent, so S3's repeated notifications start nothing twice. An
// error makes Lambda retry the event.
func (h *CampaignsHandler) objectsCreated(ctx context.Context, payload []byte) error {
	if h.configErr != nil {
		return h.configErr
	}
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return fmt.Errorf("campaigns: the S3 event: %w", err)
	}
	var errs []error
	for _, rec := range ev.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil || rec.S3.Bucket.Name != h.bucket || !strings.HasPrefix(key, IncomingPrefix) {
			h.log.Warn("campaigns: an object outside incoming/ of the stack's bucket is ignored", slog.String("key", rec.S3.Object.Key))
			continue
		}
		if err := h.dropped(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dropped starts the campaign of a file dropped as key, if the file and
// its settings are both there.
func (h *CampaignsHandler) dropped(ctx context.Context, key string) error {
	object := key
	if strings.HasSuffix(key, settingsSuffix) {
		base := dropBase(key)
		object = ""
		for _, ext := range []string{".csv", ".jsonl"} {
			_, found, err := h.read(ctx, base+ext)
			if err != nil {
				return err
			}
			if found {
				object = base + ext
				break
			}
		}
		if object == "" {
			h.log.Info("campaigns: settings dropped; the campaign starts when its file arrives", slog.String("key", key))
			return nil
		}
	} else if !strings.HasSuffix(key, ".csv") && !strings.HasSuffix(key, ".jsonl") {
		h.log.Warn("campaigns: only NAME.csv, NAME.jsonl and NAME.settings.json start campaigns", slog.String("key", key))
		return nil
	}
	s, found, err := h.settingsBeside(ctx, object)
	if err != nil {
		h.log.Error("campaigns: the settings beside a dropped file cannot be read", slog.String("key", settingsKey(object)), slog.String("error", err.Error()))
		return h.refusedDrop(ctx, object, CodeInvalidRequest, err) // a new settings file starts it
	}
	if !found {
		h.log.Info("campaigns: file dropped; the campaign starts when its settings arrive", slog.String("key", object), slog.String("settings", settingsKey(object)))
		return nil
	}
	st, err := h.engine.Start(ctx, h.s3URL(object), s)
	var cerr *campaign.ConflictError
	switch {
	case errors.As(err, &cerr):
		h.log.Error("campaigns: a dropped file was refused", slog.String("key", object), slog.String("error", err.Error()))
		return h.refusedDrop(ctx, object, CodeCampaignConflict, err)
	case errors.As(err, new(*campaign.DuplicateError)):
		h.log.Error("campaigns: a dropped file was refused", slog.String("key", object), slog.String("error", err.Error()))
		return h.refusedDrop(ctx, object, CodeDuplicateCampaign, err)
	case err != nil:
		return err
	}
	h.log.Info("campaigns: a dropped file started a campaign", slog.String("key", object), slog.String("campaign_id", st.Campaign.ID),
		slog.String("state", string(st.Campaign.State)), slog.Bool("existing", st.Existing), slog.Int("errors", len(st.Errors)))
	return nil
}

// refusedDrop tells the merchant who dropped a file why it started no
// campaign: reports/NAME.error.json beside where its reports would be,
// with the code and message the API would have answered.
func (h *CampaignsHandler) refusedDrop(ctx context.Context, object, code string, cause error) error {
	name := strings.TrimPrefix(dropBase(object), IncomingPrefix)
	b, _ := marshal(map[string]any{"object": object, "error": map[string]string{"code": code, "message": cause.Error()}})
	if h.engine.Reports == nil {
		return nil
	}
	if err := h.engine.Reports.Put(ctx, strings.ReplaceAll(name, "/", "_")+".error.json", "application/json", b); err != nil {
		return fmt.Errorf("campaigns: write the refusal of %s: %w", object, err)
	}
	return nil
}

// CampaignRunHandler serves CampaignRunFunction: on its schedule (any
// EventBridge or Scheduler event, or {}), one Engine.Tick: every campaign
// with rows to plan or send and no runner is run, and due reports are
// written; on a direct invoke with {"campaign_id": "..."}, that campaign
// is run. The answer lists the campaigns worked on.
type CampaignRunHandler struct {
	engine    *campaign.Engine
	log       *slog.Logger
	configErr error
}

// NewCampaignRun returns the runner function's handler over engine.
func NewCampaignRun(engine *campaign.Engine, logger *slog.Logger) *CampaignRunHandler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &CampaignRunHandler{engine: engine, log: logger}
}

// CampaignRunFromEnv builds CampaignRunFunction's handler the way a
// deployed function runs; see campaignEngineFromEnv.
func CampaignRunFromEnv(ctx context.Context) *CampaignRunHandler {
	engine, _, _, err := campaignEngineFromEnv(ctx)
	logger := engine.Logger
	h := NewCampaignRun(engine, logger)
	if err != nil {
		logger.Error("configuration error", slog.String("function", "campaignrun"), slog.String("error", err.Error()))
		h.configErr = err
	}
	return h
}

// runSummary is the runner function's answer.
type runSummary struct {
	Campaigns []runCampaign `json:"campaigns"`
	Error     string        `json:"error,omitempty"`
}

type runCampaign struct {
	CampaignID string         `json:"campaign_id"`
	State      campaign.State `json:"state"`
	Done       int            `json:"done"`
	Rows       int            `json:"rows"`
}

// Invoke implements lambda.Handler.
func (h *CampaignRunHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if h.configErr != nil {
		return nil, h.configErr
	}
	var ev struct {
		CampaignID string `json:"campaign_id"`
	}
	_ = json.Unmarshal(payload, &ev) // a scheduled event has none
	var (
		worked []*campaign.Campaign
		err    error
	)
	if ev.CampaignID != "" {
		var c *campaign.Campaign
		if c, err = h.engine.Run(ctx, ev.CampaignID); c != nil {
			worked = append(worked, c)
		}
	} else {
		worked, err = h.engine.Tick(ctx)
	}
	sum := runSummary{Campaigns: []runCampaign{}}
	for _, c := range worked {
		sum.Campaigns = append(sum.Campaigns, runCampaign{CampaignID: c.ID, State: c.State, Done: c.Cursor, Rows: c.Rows})
	}
	if err != nil {
		// Logged, not returned: the next tick goes on, and an error
		// would only make Lambda run the schedule's event again.
		h.log.Error("campaign run", slog.String("error", err.Error()))
		sum.Error = err.Error()
	}
	return marshal(sum)
}

// campaignEngineFromEnv builds the campaign engine the way the deployed
// campaign functions run: the merchant's client from WXPAY_SECRET_ID (and
// WXPAY_BASE_URL, ...), the ledger in WXPAY_LEDGER_TABLE, the campaigns
// and the shared send window in WXPAY_CAMPAIGN_TABLE, files and reports
// in the bucket WXPAY_CAMPAIGN_BUCKET, and the rate from
// WXPAY_RATE_LIMIT and WXPAY_API_RESERVE (campaign.DefaultRateLimit and
// campaign.DefaultAPIReserve when unset). The engine is returned even with
// an error, so that the error can be answered.
func campaignEngineFromEnv(ctx context.Context) (*campaign.Engine, campaign.S3API, string, error) {
	env, cerr := loadEnvironment(ctx)
	engine := &campaign.Engine{Logger: env.logger}
	if cerr != nil {
		return engine, nil, "", cerr
	}
	bucket := strings.TrimSpace(os.Getenv("WXPAY_CAMPAIGN_BUCKET"))
	for _, v := range []struct {
		name    string
		missing bool
	}{
		{"WXPAY_LEDGER_TABLE", env.ledger == nil},
		{"WXPAY_CAMPAIGN_TABLE", env.campaigns == nil},
		{"WXPAY_CAMPAIGN_BUCKET", bucket == ""},
	} {
		if v.missing {
			return engine, nil, "", &credstore.ConfigError{Field: v.name, Reason: "is required by the campaign functions"}
		}
	}
	var err error
	if engine.RateLimit, err = intEnv(os.Getenv, "WXPAY_RATE_LIMIT", 1, 10000); err == nil {
		engine.APIReserve, err = intEnv(os.Getenv, "WXPAY_API_RESERVE", 0, 10000)
		if err == nil && engine.APIReserve == 0 && os.Getenv("WXPAY_API_RESERVE") != "" {
			engine.APIReserve = -1 // 0 given: no reserve
		}
	}
	if err != nil {
		return engine, nil, "", &credstore.ConfigError{Field: "environment", Reason: err.Error()}
	}
	client := s3.NewFromConfig(env.aws, func(o *s3.Options) {
		// Endpoints that are not AWS's (moto in tests) serve buckets by
		// path.
		o.UsePathStyle = os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
		// The SDK would print a plain-text line among the JSON logs for
		// every object stored without a checksum (uploads by older
		// tools): TLS already guards the bytes.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	engine.Campaigns, engine.Window = env.campaigns, env.campaigns
	engine.Ledger = env.ledger
	engine.Reports = campaign.Bucket{Client: client, Name: bucket, Prefix: ReportsPrefix}
	engine.Open = func(source string) (campaign.Source, error) {
		b, key, err := campaign.ParseS3URL(source)
		if err != nil {
			return nil, err
		}
		return campaign.S3Object{Client: client, Bucket: b, Key: key}, nil
	}
	engine.WeChat = reconcile.Merchant{Store: env.creds}
	return engine, client, bucket, nil
}
