//go:build !linux

package testutil

import (
	"net"
	"testing"
)

// CheckReleased fails the test if addr cannot be bound: outside Linux it
// cannot tell this process's sockets from another's, so a port another
// process took since fails it too.
func CheckReleased(tb testing.TB, addr string) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Errorf("%s stayed taken: %v", addr, err)
		return
	}
	ln.Close()
}
