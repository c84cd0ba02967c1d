// Package testutil holds helpers shared by the project's tests and by the
// load harness (integration/loadharness, a development tool). It is
// internal: nothing outside this module imports it, and no production code
// (the proxy's packages and commands) does either.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
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

// reserved holds the lock file of each port this process gave out: no
// other test process (`go test ./...` runs packages in parallel) and no
// second caller here gives it out again (an flock(2) conflicts with any
// other open file description, this process's too). Guarded by takenMu.
var (
	takenMu  sync.Mutex
	reserved []*os.File
)

// FreeAddr returns a loopback "127.0.0.1:port" address whose port was free
// for both TCP and UDP when probed and has not been returned before on this
// machine by a test process that is still running. Unlike a ":0" listener
// that is closed again, the port is outside the ephemeral range, so nothing
// else on the machine picks it by accident, and it stays reserved to this
// process (an flock(2) on a file per port, released when the process ends)
// so another test binary's FreeAddr does not pick it either.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return FreeAddrOn(tb, "127.0.0.1")
}

// FreeAddrOn is FreeAddr on another local address (host), for tests
// whose listeners must be outside loopback.
func FreeAddrOn(tb testing.TB, host string) string {
	tb.Helper()
	addr, err := LookupFreeAddr(host)
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

// FreePorts returns the first of n consecutive loopback ports that were
// free when probed and are reserved to this process as FreeAddr's are.
func FreePorts(tb testing.TB, n int) int {
	tb.Helper()
	takenMu.Lock()
	defer takenMu.Unlock()
	for range 1000 {
		base := portLow + rand.IntN(portHigh-portLow-n)
		if take("127.0.0.1", base, n) {
			return base
		}
	}
	tb.Fatalf("testutil: no %d free consecutive loopback ports in %d-%d", n, portLow, portHigh)
	return 0
}

// LookupFreeAddr is FreeAddrOn for code that reports an error instead of
// failing a test (a simulator called from a controller's goroutine).
func LookupFreeAddr(host string) (string, error) {
	takenMu.Lock()
	defer takenMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if take(host, p, 1) {
			return net.JoinHostPort(host, strconv.Itoa(p)), nil
		}
	}
	return "", fmt.Errorf("testutil: no free port on %s in %d-%d", host, portLow, portHigh)
}

// take reserves ports base to base+n-1 to this process if none was given
// out before, here or by another running test process (on any host), and
// each is free on host now. The caller holds takenMu.
func take(host string, base, n int) bool {
	var locks []*os.File
	release := func() {
		for _, f := range locks {
			f.Close()
		}
	}
	for p := base; p < base+n; p++ {
		// Reserve before probing: a port another process reserved is
		// never bound here, not even for a moment.
		f, ok := reserve(p)
		if !ok {
			release()
			return false
		}
		locks = append(locks, f)
		if !probe(net.JoinHostPort(host, strconv.Itoa(p))) {
			release()
			return false
		}
	}
	reserved = append(reserved, locks...)
	return true
}

// reserve takes the machine-wide lock of port p without waiting. The
// lock lasts as long as the returned file is open; closing it, or the
// process ending, lets the port go.
func reserve(p int) (*os.File, bool) {
	dir := filepath.Join(os.TempDir(), "sentinel-test-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
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
