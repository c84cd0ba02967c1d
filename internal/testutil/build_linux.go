package testutil

import "syscall"

// buildProcAttr puts the build in its own process group (killed as a
// whole), and has the kernel kill the go command if the test process dies.
func buildProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
