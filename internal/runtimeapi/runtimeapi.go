// Package runtimeapi is an in-process stand-in for the AWS Lambda Runtime
// API (the /2018-06-01/runtime endpoints a provided.al2023 bootstrap
// polls). Tests and the local runner use it to drive the real bootstrap
// binaries the way Lambda, or sam local invoke, does, without Docker.
package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the Runtime API on a loopback port.
type Server struct {
	// Addr is host:port, the value of AWS_LAMBDA_RUNTIME_API.
	Addr string

	srv     *http.Server
	ln      net.Listener
	queue   chan *invocation
	mu      sync.Mutex
	pending map[string]*invocation
	seq     atomic.Int64
	initErr chan []byte
	// Polls counts /next requests, so a test knows the runtime is ready.
	polls atomic.Int64
}

// invocation is one event waiting for, or holding, its answer.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan Result
}

// Result is what the function answered to one invocation.
type Result struct {
	// RequestID is the invocation's Lambda-Runtime-Aws-Request-Id, the
	// requestId the function's log lines carry.
	RequestID string
	// Payload is the response body, or the error document when Err is set.
	Payload []byte
	// Err is set when the function reported an invocation error.
	Err *FunctionError
}

// FunctionError is an error the function reported through /error.
type FunctionError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// Error describes the function error.
func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Start listens on 127.0.0.1 on a free port and serves the Runtime API.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtimeapi: listen: %w", err)
	}
	s := &Server{
		Addr:    ln.Addr().String(),
		ln:      ln,
		queue:   make(chan *invocation, 64),
		pending: make(map[string]*invocation),
		initErr: make(chan []byte, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", s.respond)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", s.fail)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server; a bootstrap still polling sees its connection
// closed.
func (s *Server) Close() error { return s.srv.Close() }

// Polls returns how many times the runtime asked for the next event.
func (s *Server) Polls() int64 { return s.polls.Load() }

// Invoke queues payload as an event with the given timeout (the function's
// configured timeout: the deadline the bootstrap sees) and waits for the
// function's answer or ctx.
func (s *Server) Invoke(ctx context.Context, payload []byte, timeout time.Duration) (Result, error) {
	inv := &invocation{
		id:       "req-" + strconv.FormatInt(s.seq.Add(1), 10),
		payload:  payload,
		deadline: time.Now().Add(timeout),
		done:     make(chan Result, 1),
	}
	select {
	case s.queue <- inv:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case r := <-inv.done:
		return r, nil
	case b := <-s.initErr:
		return Result{}, fmt.Errorf("runtimeapi: function failed to initialise: %s", b)
	case <-ctx.Done():
		return Result{}, fmt.Errorf("runtimeapi: no answer to %s: %w", inv.id, ctx.Err())
	}
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.polls.Add(1)
	var inv *invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	s.pending[inv.id] = inv
	s.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:local")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	w.Write(inv.payload)
}

// take removes the request's invocation from the pending ones and returns
// it; nil, having answered 400 as Lambda does, for an unknown request id.
func (s *Server) take(w http.ResponseWriter, r *http.Request) *invocation {
	s.mu.Lock()
	inv := s.pending[r.PathValue("id")]
	delete(s.pending, r.PathValue("id"))
	s.mu.Unlock()
	if inv == nil {
		http.Error(w, `{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
	}
	return inv
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request) {
	inv := s.take(w, r)
	if inv == nil {
		return
	}
	body, _ := io.ReadAll(r.Body)
	inv.done <- Result{RequestID: inv.id, Payload: body}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request) {
	inv := s.take(w, r)
	if inv == nil {
		return
	}
	body, _ := io.ReadAll(r.Body)
	fe := &FunctionError{}
	if json.Unmarshal(body, fe) != nil || fe.Type == "" {
		fe = &FunctionError{Type: "Unknown", Message: strings.TrimSpace(string(body))}
	}
	inv.done <- Result{RequestID: inv.id, Payload: body, Err: fe}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	select {
	case s.initErr <- body:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
}

// ErrNotReady is returned by WaitReady when the runtime never polled.
var ErrNotReady = errors.New("runtimeapi: the function never asked for an event")

// WaitReady waits until the runtime has polled for an event at least n
// times, or ctx ends.
func (s *Server) WaitReady(ctx context.Context, n int64) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for s.polls.Load() < n {
		select {
		case <-ctx.Done():
			return ErrNotReady
		case <-t.C:
		}
	}
	return nil
}
