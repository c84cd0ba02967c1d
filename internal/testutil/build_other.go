//go:build !linux

package testutil

import "syscall"

// buildProcAttr puts the build in its own process group (killed as a
// whole); outside Linux nothing kills it when the test process dies.
func buildProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
