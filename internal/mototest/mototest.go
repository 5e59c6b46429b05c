// Package mototest starts moto_server, the AWS emulator of Python's moto,
// for tests that talk to AWS services (Secrets Manager, DynamoDB) through
// the real SDK clients.
//
// Without moto_server on PATH a test calling Start is skipped, unless the
// environment has CI=true: then it fails, so that CI cannot pass without
// having run it.
//
// By default each Start starts a server for its test. A test binary that
// runs its tests through Main shares one server, started by the first
// Start and stopped when the tests end:
//
//	func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }
//
// Tests sharing a server must not share names (tables, secrets).
//
// The URL Start returns is a proxy in the test process that passes moto
// one request at a time. moto_server answers requests on many threads and
// checks a DynamoDB condition and writes the item in two steps, so that
// two concurrent conditional writes of one item can both succeed, a race
// DynamoDB does not have (its conditional writes are atomic). Through the
// proxy, tests of conditional writes see DynamoDB's guarantee.
package mototest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the wait for a new server to answer.
const startTimeout = 30 * time.Second

var shared struct {
	on   bool // set by Main
	once sync.Once
	srv  *server
	err  error
}

// Main runs m's tests with one moto_server shared by all of them (started
// by the first Start, if any) and stops it at the end. It returns m.Run's
// exit code.
func Main(m *testing.M) int {
	shared.on = true
	code := m.Run()
	if shared.srv != nil {
		shared.srv.stop()
	}
	return code
}

// Start returns the base URL (http://127.0.0.1:port) of a running
// moto_server: the binary's shared one under Main, else a new one stopped
// when t ends. It skips t, or fails it when CI=true, if moto_server is not
// on PATH.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("moto_server is not on PATH (CI=true: not skipping): %v", err)
		}
		t.Skipf("moto_server is not on PATH: %v", err)
	}
	if shared.on {
		shared.once.Do(func() { shared.srv, shared.err = startRetrying(bin) })
		if shared.err != nil {
			t.Fatal(shared.err)
		}
		return shared.srv.url
	}
	srv, err := startRetrying(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return srv.url
}

// server is a running moto_server behind its proxy.
type server struct {
	url    string // the proxy's
	proxy  *httptest.Server
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	out    bytes.Buffer  // its output; read only once exited is closed
}

// startAttempts bounds the starts of a server. The free port start picks
// may be taken by another process (a concurrent test binary's listener)
// before moto_server binds it; moto_server then exits, and another port
// is tried.
const startAttempts = 3

// errExited is a moto_server that exited before it answered.
var errExited = errors.New("moto_server exited early")

// startRetrying starts a server, again on another port when one exits
// early.
func startRetrying(bin string) (*server, error) {
	var err error
	for range startAttempts {
		var s *server
		if s, err = start(bin); !errors.Is(err, errExited) {
			return s, err
		}
	}
	return nil, err
}

// start starts moto_server on a free loopback port and waits until it
// answers: 200 from its dashboard, not another listener's refusal on the
// same port.
func start(bin string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	moto := "http://127.0.0.1:" + port
	s := &server{exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	s.cmd.SysProcAttr = ownGroup() // to end it with any children (a pyenv shim runs Python)
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(moto + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.serve(moto)
				return s, nil
			}
			err = fmt.Errorf("GET /moto-api/: %s", resp.Status)
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%w: %s", errExited, s.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.Join(fmt.Errorf("moto_server did not answer within %v: %s", startTimeout, s.out.String()), err)
		}
	}
}

// serve starts the proxy that passes requests to moto one at a time.
func (s *server) serve(moto string) {
	target, _ := url.Parse(moto) // built above: it parses
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	s.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	s.url = s.proxy.URL
}

// stop ends the proxy and the server, and waits for them.
func (s *server) stop() {
	if s.proxy != nil {
		s.proxy.Close()
	}
	kill(s.cmd)
	<-s.exited
}
