package testutil

import (
	"net"
	"strconv"
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
