package testutil

import (
	"net"
	"strconv"
	"testing"
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
