//go:build !linux

package testutil

import (
	"net"
	"testing"
	"time"
)

// CheckReleased fails the test if addr cannot be bound within
// releaseWait: outside Linux it cannot tell this process's sockets from
// another's, so a port another process took since fails it too.
func CheckReleased(tb testing.TB, addr string) {
	tb.Helper()
	deadline := time.Now().Add(releaseWait)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("%s stayed taken for %s: %v", addr, releaseWait, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
