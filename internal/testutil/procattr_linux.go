package testutil

import "syscall"

// childProcAttr puts a program a test starts in its own process group
// (killed as a whole), and has the kernel kill it if the test process
// dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
