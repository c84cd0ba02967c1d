package testutil

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestFreeAddrDistinctAndBindable(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s returned twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		if n < portLow || n >= portHigh {
			t.Fatalf("port %d outside %d-%d", n, portLow, portHigh)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which does not bind: %v", a, err)
		}
		l.Close()
	}
	if p := FreePort(t); p < portLow || p >= portHigh {
		t.Fatalf("FreePort = %d", p)
	}
}

func TestProbeRefusesBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if probe(l.Addr().String()) {
		t.Fatal("probe accepted a port in use")
	}
}

// TestExclusive: while a test holds the lock, another holder (another
// open file description, as another process has) cannot take it; a
// nested holder does not wait for itself; when the test ends this
// process lets it go.
func TestExclusive(t *testing.T) {
	path := filepath.Join(os.TempDir(), "sentinel-exclusive-tests.lock")
	try := func() error {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	t.Run("holder", func(t *testing.T) {
		Exclusive(t)
		t.Run("nested", func(t *testing.T) {
			Exclusive(t) // re-entrant: must not wait for itself
		})
		if err := try(); err == nil {
			t.Fatal("a second holder took the lock (or the nested release freed it)")
		}
	})
	// Released: this process holds nothing (another test process may take
	// the lock at once, so trying it here would race with them).
	exclusive.Lock()
	held := exclusive.holders != 0 || exclusive.f != nil
	exclusive.Unlock()
	if held {
		t.Fatal("the lock was not released")
	}
}
