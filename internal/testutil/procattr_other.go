//go:build !linux

package testutil

import "syscall"

// childProcAttr puts a program a test starts in its own process group
// (killed as a whole); outside Linux nothing kills it when the test
// process dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
