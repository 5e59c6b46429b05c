package runtimeapi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// Build compiles a function package (such as "./functions/sendmini") the
// way the Makefile does for Lambda, for this machine's OS and
// architecture, into dir/bootstrap-<name>, and returns the binary's path.
// moduleRoot is the directory holding go.mod.
func Build(ctx context.Context, moduleRoot, pkg, dir string) (string, error) {
	out := filepath.Join(dir, "bootstrap-"+filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = moduleRoot
	// This machine's OS and architecture even when the environment (or go
	// env -w) says otherwise, such as GOARCH=arm64 left from a Lambda build:
	// the binary must run here.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("runtimeapi: go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// Process is a running bootstrap.
type Process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	output bytes.Buffer
	done   chan error
}

// StartProcess runs the bootstrap at path with env (added to a minimal
// environment: PATH and HOME only, so nothing of the caller's leaks in)
// and AWS_LAMBDA_RUNTIME_API pointing at s.
func (s *Server) StartProcess(path string, env []string) (*Process, error) {
	p := &Process{done: make(chan error, 1)}
	p.cmd = exec.Command(path)
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"AWS_LAMBDA_RUNTIME_API=" + s.Addr,
		"AWS_LAMBDA_FUNCTION_NAME=" + filepath.Base(path),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
	}, env...)
	p.cmd.Stdout = (*lockedWriter)(p)
	p.cmd.Stderr = (*lockedWriter)(p)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("runtimeapi: start %s: %w", path, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p, nil
}

// Output returns what the process has written to stdout and stderr.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop kills the process and waits for it.
func (p *Process) Stop() {
	p.cmd.Process.Kill()
	<-p.done
	p.done <- nil
}

type lockedWriter Process

// Write appends b to the process output under its lock.
func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.output.Write(b)
}
