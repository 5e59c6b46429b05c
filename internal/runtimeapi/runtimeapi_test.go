package runtimeapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// fakeRuntime plays the bootstrap's side of the Runtime API for n events:
// it answers each with answer(payload), or reports an error when answer
// returns nil.
func fakeRuntime(t *testing.T, s *Server, n int, answer func([]byte) []byte) {
	t.Helper()
	base := "http://" + s.Addr + "/2018-06-01/runtime/invocation/"
	go func() {
		for range n {
			resp, err := http.Get(base + "next")
			if err != nil {
				return
			}
			payload, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
			ms, _ := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
			if id == "" || time.UnixMilli(ms).Before(time.Now()) {
				t.Errorf("next: request id %q, deadline %v", id, time.UnixMilli(ms))
			}
			if out := answer(payload); out != nil {
				http.Post(base+id+"/response", "application/json", bytes.NewReader(out))
			} else {
				http.Post(base+id+"/error", "application/json", bytes.NewReader([]byte(`{"errorMessage":"boom","errorType":"Test"}`)))
			}
		}
	}()
}

func TestInvoke(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fakeRuntime(t, s, 2, func(p []byte) []byte {
		if string(p) == `"fail"` {
			return nil
		}
		return append([]byte("echo:"), p...)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.Invoke(ctx, []byte(`{"a":1}`), 3*time.Second)
	if err != nil || string(r.Payload) != `echo:{"a":1}` || r.Err != nil || r.RequestID == "" {
		t.Fatalf("Invoke = %+v, %v", r, err)
	}
	r, err = s.Invoke(ctx, []byte(`"fail"`), 3*time.Second)
	if err != nil || r.Err == nil || r.Err.Type != "Test" || r.Err.Message != "boom" {
		t.Fatalf("Invoke of a failing event = %+v, %v", r, err)
	}
	if err := s.WaitReady(ctx, 2); err != nil {
		t.Error(err)
	}
}

func TestInvokeWithoutRuntime(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Invoke(ctx, []byte(`{}`), time.Second); err == nil {
		t.Error("Invoke with no runtime polling returned no error")
	}
}
