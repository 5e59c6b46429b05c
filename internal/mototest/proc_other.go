//go:build !unix

package mototest

import (
	"os/exec"
	"syscall"
)

// ownGroup leaves the server in the test's process group.
func ownGroup() *syscall.SysProcAttr { return nil }

// kill ends the server's process.
func kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
