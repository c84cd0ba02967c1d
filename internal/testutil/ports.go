// Package testutil holds helpers shared by the project's tests. It is
// internal: nothing outside this module imports it, and no production code
// does either.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// Port range FreeAddr draws from. It lies below Linux's default ephemeral
// range (32768–60999), so the kernel never hands one of these ports to an
// outgoing connection between FreeAddr closing its probe and the test
// binding the port: the race that made "address already in use" flaky when
// tests asked the kernel for ":0" and closed the listener again.
const (
	portLow  = 20000
	portHigh = 32000
)

// taken remembers the ports this process already gave out, so two callers in
// one test binary never get the same one. It is the package's only mutable
// state and is guarded by takenMu.
var (
	takenMu sync.Mutex
	taken   = map[int]bool{}
)

// FreeAddr returns a loopback "127.0.0.1:port" address whose port was free
// for both TCP and UDP when probed and has not been returned before in this
// process. Unlike a ":0" listener that is closed again, the port is outside
// the ephemeral range, so nothing else on the machine picks it by accident.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	addr, err := freeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}

// FreePort is FreeAddr's port number alone.
func FreePort(tb testing.TB) int {
	tb.Helper()
	addr := FreeAddr(tb)
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

func freeAddr() (string, error) {
	takenMu.Lock()
	defer takenMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if taken[p] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		if !probe(addr) {
			continue
		}
		taken[p] = true
		return addr, nil
	}
	return "", fmt.Errorf("testutil: no free loopback port in %d-%d", portLow, portHigh)
}

// probe reports whether addr can be bound for TCP and UDP right now.
func probe(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}
