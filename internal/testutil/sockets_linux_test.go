package testutil

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestHeldSockets: a listener of this process is found on its address
// and, bound to the wildcard address, on the loopback one; once closed,
// nothing is; a socket of another process would not count (only this
// process's inodes are looked at, shown by a connection's remote end
// not counting as bound to its port).
func TestHeldSockets(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := heldSockets(addr); err != nil || len(held) != 1 {
		t.Fatalf("a listener on %s: %v %v", addr, held, err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	if held, _ := heldSockets(local); len(held) != 1 {
		t.Errorf("the client end %s: %v", local, held)
	}
	c.Close()
	ln.Close()
	CheckReleased(t, addr)

	_, port, _ := net.SplitHostPort(addr)
	wild, err := net.Listen("tcp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	if held, _ := heldSockets(addr); len(held) != 1 {
		t.Errorf("a wildcard listener on port %s: %v", port, held)
	}
	wild.Close()
	if held, err := heldSockets(addr); err != nil || len(held) != 0 {
		t.Errorf("after close: %v %v", held, err)
	}

	for _, bad := range []string{"nohostport", "127.0.0.1:x"} {
		if _, err := heldSockets(bad); err == nil {
			t.Errorf("heldSockets(%q) gave no error", bad)
		}
	}
}

// TestCheckReleasedWaits: a listener closed a little after the check
// starts (as Caddy's http app closes its own after Stop returns) passes;
// one that stays open fails the test, naming the address and its state.
func TestCheckReleasedWaits(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(100*time.Millisecond, func() { ln.Close() })
	defer timer.Stop()
	start := time.Now()
	CheckReleased(t, addr)
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("released after %s, before the listener closed", waited)
	}

	kept, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	rec := &recordingTB{TB: t}
	checkReleased(rec, addr, 50*time.Millisecond)
	if want := addr + " stayed bound by this process for 50ms: " + addr + " state 0A"; rec.errors != want {
		t.Errorf("a listener kept open: %q, want %q", rec.errors, want)
	}
}

// recordingTB records what a check reports instead of failing the test.
type recordingTB struct {
	testing.TB
	errors string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors += fmt.Sprintf(format, args...)
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:01BB": "127.0.0.1:443",
	} {
		ip, port, err := parseProcAddr(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := net.JoinHostPort(ip.String(), strconv.Itoa(port)); got != want {
			t.Errorf("%s = %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"0100007F", "0100007:0050", "zz00007F:0050", "0100007F:FFFFF"} {
		if _, _, err := parseProcAddr(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

// TestFreePorts: the ports are consecutive, bindable, not given out
// again, and reserved: another open file description cannot lock them.
func TestFreePorts(t *testing.T) {
	base := FreePorts(t, 3)
	for p := base; p < base+3; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
		if f, ok := reserve(p); ok {
			f.Close()
			t.Errorf("port %d could be reserved again", p)
		}
	}
	takenMu.Lock()
	again := take("127.0.0.1", base, 1)
	takenMu.Unlock()
	if again {
		t.Errorf("port %d given out twice", base)
	}
}
