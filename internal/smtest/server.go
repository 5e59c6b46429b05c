// Package smtest is an in-process fake of AWS Secrets Manager's JSON
// protocol (awsJson1.1: POST / with X-Amz-Target: secretsmanager.<Op>), for
// tests and for the local runner, which points
// AWS_ENDPOINT_URL_SECRETS_MANAGER at it.
//
// It answers GetSecretValue, CreateSecret, PutSecretValue, DescribeSecret
// and DeleteSecret (immediate) as AWS does, closely enough for the real
// aws-sdk-go-v2 client: the same JSON fields, the AWSCURRENT/AWSPREVIOUS
// stages, ResourceNotFoundException for a missing secret. Requests must
// carry a SigV4 Authorization header (any credentials are accepted; the
// signature is not checked). Faults are injected with Fail and SetDown,
// and GetSecretValue calls are counted by Calls.
//
// A secret is found by its name, its full ARN
// (arn:aws:secretsmanager:<region>:<account>:secret:<name>-XXXXXX) or its
// partial ARN (without the -XXXXXX suffix). The region and account of an
// ARN are not compared: the fake serves every region.
package smtest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of the ARNs the server makes up.
const (
	DefaultRegion  = "us-east-1"
	DefaultAccount = "123456789012"
)

// Server is a fake Secrets Manager endpoint on a loopback address. It is
// safe for concurrent use.
type Server struct {
	// Region and Account are put into the ARNs of secrets created after
	// they are set (DefaultRegion and DefaultAccount by default).
	Region, Account string

	ln     net.Listener
	srv    *http.Server
	url    string
	once   sync.Once
	served chan struct{} // closed when Serve returns

	mu      sync.Mutex
	secrets map[string]*secret // by name
	calls   int
	fails   []string
	down    bool
	delay   time.Duration
	log     []Request
}

// Request is one request the server received, for tests that check what
// the client sent. Secret values are not recorded.
type Request struct {
	Op       string // "GetSecretValue", ...
	SecretID string // the SecretId (or Name) as sent
}

type secret struct {
	name, arn string
	created   time.Time
	versions  []*version // oldest first
}

type version struct {
	id      string
	value   string
	created time.Time
	stages  []string
}

// NewServer starts a server on a free port of 127.0.0.1, as
// httptest.NewServer does. It panics if it cannot listen.
func NewServer() *Server {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("smtest: %v", err))
	}
	return s
}

// Start starts a server listening on addr ("127.0.0.1:4566"; port 0 picks
// a free one), for the local runner.
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtest: listen on %s: %w", addr, err)
	}
	s := &Server{
		Region:  DefaultRegion,
		Account: DefaultAccount,
		ln:      ln,
		url:     "http://" + ln.Addr().String(),
		secrets: map[string]*secret{},
		served:  make(chan struct{}),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// URL is the endpoint, "http://127.0.0.1:PORT", for
// AWS_ENDPOINT_URL_SECRETS_MANAGER or secretsmanager.Options.BaseEndpoint.
func (s *Server) URL() string { return s.url }

// Close stops the server and closes its connections; the address is free
// again when it returns.
func (s *Server) Close() {
	s.once.Do(func() {
		_ = s.srv.Close()
		_ = s.ln.Close() // in case Serve had not started yet
		<-s.served
	})
}

// Put sets the secret's current value, creating the secret if needed, as
// CreateSecret or PutSecretValue would. id is a name or one of its ARNs.
func (s *Server) Put(id, secretString string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.lookupLocked(id)
	if sec == nil {
		name, hasSuffix := nameOf(id)
		sec = s.createLocked(name)
		if hasSuffix {
			sec.arn = id // keep the ARN the caller will ask for
		}
	}
	s.putLocked(sec, secretString)
}

// Delete removes a secret at once (as DeleteSecret with
// ForceDeleteWithoutRecovery). It reports whether the secret existed.
func (s *Server) Delete(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.lookupLocked(id)
	if sec != nil {
		delete(s.secrets, sec.name)
	}
	return sec != nil
}

// ARN returns the full ARN of a secret Put or created earlier, "" if
// there is none.
func (s *Server) ARN(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec := s.lookupLocked(id); sec != nil {
		return sec.arn
	}
	return ""
}

// Calls returns the number of GetSecretValue requests received, including
// those answered with an injected fault.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Fail makes the next n GetSecretValue calls fail with the AWS error code,
// such as ResourceNotFoundException, AccessDeniedException,
// ThrottlingException, InternalServiceError or DecryptionFailure. The
// status is the one AWS uses for the code (400 for most, 500 for
// InternalServiceError and InternalFailure, 503 for ServiceUnavailable);
// the body is {"__type": code, "message": ...}. Other operations are not
// affected. Failures queue up behind earlier ones.
func (s *Server) Fail(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fails = append(s.fails, code)
	}
}

// SetDown makes the server drop every connection without an answer (as a
// network failure looks to the client) until SetDown(false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetDelay makes every GetSecretValue answer wait d first.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// StatusFor returns the HTTP status AWS answers an error code with.
func StatusFor(code string) int {
	switch code {
	case "InternalServiceError", "InternalFailure":
		return http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

var messages = map[string]string{
	"ResourceNotFoundException":   "Secrets Manager can't find the specified secret.",
	"AccessDeniedException":       "User: arn:aws:sts::123456789012:assumed-role/fn/fn is not authorized to perform: secretsmanager:GetSecretValue on resource because no identity-based policy allows the secretsmanager:GetSecretValue action",
	"ThrottlingException":         "Rate exceeded",
	"InternalServiceError":        "An error occurred on the server side.",
	"InternalFailure":             "An internal error occurred.",
	"DecryptionFailure":           "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
	"InvalidRequestException":     "You can't perform this operation on the secret because it was marked for deletion.",
	"InvalidParameterException":   "The parameter is invalid.",
	"ResourceExistsException":     "The operation failed because the secret already exists.",
	"UnrecognizedClientException": "The security token included in the request is invalid.",
	"ExpiredTokenException":       "The security token included in the request is expired",
	"ServiceUnavailable":          "Service is unavailable.",
	"MissingAuthenticationToken":  "Missing Authentication Token",
	"UnknownOperationException":   "Unknown operation",
	"SerializationException":      "Start of structure or map found where not expected.",
}

type apiError struct {
	code, msg string
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one awsJson1.1 request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		dropConnection(w)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, &apiError{code: "UnknownOperationException", msg: messages["UnknownOperationException"]})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, &apiError{code: "MissingAuthenticationTokenException", msg: messages["MissingAuthenticationToken"]})
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	if !ok {
		writeError(w, &apiError{code: "UnknownOperationException", msg: messages["UnknownOperationException"]})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var in struct {
		SecretID     string `json:"SecretId"`
		Name         string `json:"Name"`
		SecretString *string
		VersionID    string `json:"VersionId"`
		VersionStage string
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, &apiError{code: "SerializationException", msg: messages["SerializationException"]})
			return
		}
	}
	id := in.SecretID
	if op == "CreateSecret" {
		id = in.Name
	}

	s.mu.Lock()
	s.log = append(s.log, Request{Op: op, SecretID: id})
	var out any
	var aerr *apiError
	var delay time.Duration
	switch op {
	case "GetSecretValue":
		s.calls++
		delay = s.delay
		if len(s.fails) > 0 {
			code := s.fails[0]
			s.fails = s.fails[1:]
			msg := messages[code]
			if msg == "" {
				msg = "injected fault " + code
			}
			aerr = &apiError{code: code, msg: msg}
			break
		}
		out, aerr = s.getLocked(id, in.VersionID, in.VersionStage)
	case "CreateSecret":
		out, aerr = s.createSecretLocked(in.Name, in.SecretString)
	case "PutSecretValue":
		out, aerr = s.putSecretValueLocked(id, in.SecretString)
	case "DescribeSecret":
		out, aerr = s.describeLocked(id)
	case "DeleteSecret":
		out, aerr = s.deleteLocked(id)
	default:
		aerr = errorf("UnknownOperationException", "Unknown operation %s", op)
	}
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getLocked(id, versionID, stage string) (any, *apiError) {
	sec := s.lookupLocked(id)
	if sec == nil {
		return nil, &apiError{code: "ResourceNotFoundException", msg: messages["ResourceNotFoundException"]}
	}
	if versionID == "" && stage == "" {
		stage = "AWSCURRENT"
	}
	for _, v := range sec.versions {
		if (versionID == "" || v.id == versionID) && (stage == "" || hasStage(v, stage)) {
			return map[string]any{
				"ARN":           sec.arn,
				"Name":          sec.name,
				"SecretString":  v.value,
				"VersionId":     v.id,
				"VersionStages": v.stages,
				"CreatedDate":   epoch(v.created),
			}, nil
		}
	}
	return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
}

func (s *Server) createSecretLocked(name string, value *string) (any, *apiError) {
	if name == "" || strings.HasPrefix(name, "arn:") {
		return nil, errorf("InvalidParameterException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if s.secrets[name] != nil {
		return nil, errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", name)
	}
	sec := s.createLocked(name)
	out := map[string]any{"ARN": sec.arn, "Name": sec.name}
	if value != nil {
		v := s.putLocked(sec, *value)
		out["VersionId"] = v.id
	}
	return out, nil
}

func (s *Server) putSecretValueLocked(id string, value *string) (any, *apiError) {
	sec := s.lookupLocked(id)
	if sec == nil {
		return nil, &apiError{code: "ResourceNotFoundException", msg: messages["ResourceNotFoundException"]}
	}
	if value == nil {
		return nil, errorf("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
	}
	v := s.putLocked(sec, *value)
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "VersionStages": v.stages}, nil
}

func (s *Server) describeLocked(id string) (any, *apiError) {
	sec := s.lookupLocked(id)
	if sec == nil {
		return nil, &apiError{code: "ResourceNotFoundException", msg: messages["ResourceNotFoundException"]}
	}
	stages := map[string][]string{}
	last := sec.created
	for _, v := range sec.versions {
		if len(v.stages) > 0 {
			stages[v.id] = v.stages
		}
		last = v.created
	}
	return map[string]any{
		"ARN":                sec.arn,
		"Name":               sec.name,
		"CreatedDate":        epoch(sec.created),
		"LastChangedDate":    epoch(last),
		"VersionIdsToStages": stages,
	}, nil
}

func (s *Server) deleteLocked(id string) (any, *apiError) {
	sec := s.lookupLocked(id)
	if sec == nil {
		return nil, &apiError{code: "ResourceNotFoundException", msg: messages["ResourceNotFoundException"]}
	}
	delete(s.secrets, sec.name)
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "DeletionDate": epoch(time.Now())}, nil
}

func (s *Server) createLocked(name string) *secret {
	sec := &secret{
		name:    name,
		arn:     fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.Region, s.Account, name, randomSuffix()),
		created: time.Now(),
	}
	s.secrets[name] = sec
	return sec
}

// putLocked adds a version that becomes AWSCURRENT; the previous current
// one becomes AWSPREVIOUS.
func (s *Server) putLocked(sec *secret, value string) *version {
	for _, v := range sec.versions {
		switch {
		case hasStage(v, "AWSCURRENT"):
			v.stages = []string{"AWSPREVIOUS"}
		case hasStage(v, "AWSPREVIOUS"):
			v.stages = nil
		}
	}
	v := &version{id: uuid(), value: value, created: time.Now(), stages: []string{"AWSCURRENT"}}
	sec.versions = append(sec.versions, v)
	return v
}

func (s *Server) lookupLocked(id string) *secret {
	if sec := s.secrets[id]; sec != nil {
		return sec
	}
	if !strings.HasPrefix(id, "arn:") {
		return nil
	}
	// arn:aws:secretsmanager:<region>:<account>:secret:<name>[-XXXXXX]
	parts := strings.SplitN(id, ":", 7)
	if len(parts) != 7 || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return nil
	}
	rest := parts[6]
	for _, sec := range s.secrets {
		if sec.name == rest || strings.HasSuffix(sec.arn, ":secret:"+rest) {
			return sec
		}
	}
	return nil
}

// nameOf returns the secret name an id stands for: the id itself, or the
// name inside an ARN, without the -XXXXXX suffix of a full ARN (reported
// by full).
func nameOf(id string) (name string, full bool) {
	parts := strings.SplitN(id, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" {
		return id, false
	}
	name = parts[6]
	if i := strings.LastIndexByte(name, '-'); i > 0 && len(name)-i == 7 {
		return name[:i], true
	}
	return name, false
}

func hasStage(v *version, stage string) bool {
	for _, s := range v.stages {
		if s == stage {
			return true
		}
	}
	return false
}

// epoch renders t as AWS does: seconds since 1970 with milliseconds.
func epoch(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64))
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:])
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"__type":"InternalFailure","message":"encoding"}`)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", uuid())
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, StatusFor(e.code), map[string]string{"__type": e.code, "message": e.msg})
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not an orderly close
	}
	_ = conn.Close()
}

// ErrNotFound is what Lookup returns for a missing secret.
var ErrNotFound = errors.New("smtest: secret not found")

// Lookup returns a secret's current value, as a test's check that a
// CreateSecret or PutSecretValue through the SDK arrived.
func (s *Server) Lookup(id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.lookupLocked(id)
	if sec == nil {
		return "", ErrNotFound
	}
	for _, v := range sec.versions {
		if hasStage(v, "AWSCURRENT") {
			return v.value, nil
		}
	}
	return "", ErrNotFound
}
