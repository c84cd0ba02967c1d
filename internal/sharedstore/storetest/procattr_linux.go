package storetest

import "syscall"

// procAttr puts the server in its own process group, killed when the test
// process dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
