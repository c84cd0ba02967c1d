//go:build linux

package reloading

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// reusePortListen listens on addr as Caddy does (SO_REUSEPORT).
func reusePortListen(t *testing.T, network, addr string) any {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	if strings.HasPrefix(network, "udp") {
		pc, err := lc.ListenPacket(context.Background(), network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestCheckFailsOnATakenAddress: a server whose TCP address another
// socket holds (without SO_REUSEPORT) fails the check, and the error
// names the server and the address; an address where this process
// listens with SO_REUSEPORT (as the running config's server does) passes,
// and the probe took none of its connections.
func TestCheckFailsOnATakenAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = checkServer("edge", &caddyhttp.Server{Listen: []string{taken.Addr().String()}}, 80)
	if err == nil || !strings.Contains(err.Error(), `server "edge": listening on `+taken.Addr().String()) ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Errorf("check of a taken address: %v", err)
	}
	ln := reusePortListen(t, "tcp", "127.0.0.1:0").(net.Listener)
	addr := ln.Addr().String()
	for range 20 {
		if err := checkServer("s", &caddyhttp.Server{Listen: []string{addr}}, 80); err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		got, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got.Close()
		conn.Close()
	}
	// The probe keeps nothing: the address is free once the listener
	// closed.
	ln.Close()
	testutil.CheckReleased(t, addr)
}

// TestCheckHTTP3: a TLS server serving HTTP/3 fails the claim when
// its UDP port is taken, not when only its TCP port is free and HTTP/3 is
// off; unparsable addresses fail as they would in Start; Unix sockets,
// file descriptors and port 0 are left to Start.
func TestCheckHTTP3(t *testing.T) {
	// A reserved port (free for TCP and UDP, given to no other test
	// process): the UDP socket takes it, and its TCP port stays free,
	// which a ":0" UDP port does not promise (another process's
	// connection may hold the TCP port of the same number).
	addr := testutil.FreeAddr(t)
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tlsPolicies := caddytls.ConnectionPolicies{{}}
	err = checkServer("h3", &caddyhttp.Server{Listen: []string{addr}, Protocols: []string{"h1", "h2", "h3"}, TLSConnPolicies: tlsPolicies}, 80)
	if err == nil || !strings.Contains(err.Error(), "HTTP/3 QUIC listener on "+addr) {
		t.Errorf("HTTP/3 on a taken UDP port: %v", err)
	}
	if err := checkServer("h1", &caddyhttp.Server{Listen: []string{addr}, Protocols: []string{"h1", "h2"}, TLSConnPolicies: tlsPolicies}, 80); err != nil {
		t.Errorf("without HTTP/3: %v", err)
	}
	// A UDP port bound (SO_REUSEPORT) by this process, as Caddy's
	// QUIC socket is, can be bound again.
	free := reusePortListen(t, "udp", testutil.FreeAddr(t)).(net.PacketConn).LocalAddr().String()
	if err := checkServer("h3", &caddyhttp.Server{Listen: []string{free}, TLSConnPolicies: tlsPolicies}, 80); err != nil {
		t.Errorf("HTTP/3 beside a SO_REUSEPORT socket: %v", err)
	}
	for _, bad := range []string{"tcp/127.0.0.1:x"} {
		if err := checkServer("bad", &caddyhttp.Server{Listen: []string{bad}}, 80); err == nil || !strings.Contains(err.Error(), "parsing listen address") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, skip := range []string{"unix//tmp/sentinel-claim.sock", "127.0.0.1:0", "fd/3"} {
		if err := checkServer("skip", &caddyhttp.Server{Listen: []string{skip}}, 80); err != nil {
			t.Errorf("%s: %v", skip, err)
		}
	}
}

// TestCheckWildcardAndRange: a wildcard address is bound dual-stack as Go
// listens on it, so a port taken on 127.0.0.1 fails it; each port of a
// range is checked.
func TestCheckWildcardAndRange(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	for _, wild := range []string{":" + itoa(port), "0.0.0.0:" + itoa(port)} {
		if err := checkServer("wild", &caddyhttp.Server{Listen: []string{wild}}, 80); err == nil {
			t.Errorf("%s claimed while 127.0.0.1:%d is taken", wild, port)
		}
	}
	base := testutil.FreePorts(t, 3)
	rng := "127.0.0.1:" + itoa(base) + "-" + itoa(base+2)
	if err := checkServer("range", &caddyhttp.Server{Listen: []string{rng}}, 80); err != nil {
		t.Fatal(err)
	}
	last, err := net.Listen("tcp", "127.0.0.1:"+itoa(base+2))
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if err := checkServer("range", &caddyhttp.Server{Listen: []string{rng}}, 80); err == nil || !strings.Contains(err.Error(), itoa(base+2)) {
		t.Errorf("a range whose last port is taken: %v", err)
	}
}

// TestCheckWithoutHTTPApp: a config without an http app checks nothing.
func TestCheckWithoutHTTPApp(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := CheckHTTPListeners(ctx); err != nil {
		t.Error(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestCheckNetworks: the tcp4/tcp6 networks and IPv6 addresses are bound
// in their own family; HTTP/3 maps each TCP network to its UDP one.
func TestCheckNetworks(t *testing.T) {
	for in, want := range map[string]string{"tcp": "udp", "TCP4": "udp4", "tcp6": "udp6", "udp": "udp", "udp4": "udp4", "udp6": "udp6", "unix": ""} {
		if got, _ := h3Network(in); got != want {
			t.Errorf("h3Network(%s) = %q, want %q", in, got, want)
		}
	}
	_ = bindCapabilityPermitted() // root here: permitted; either way no panic
	// A reserved port, so that 127.0.0.1 of the same port is free.
	port := itoa(testutil.FreePort(t))
	taken6, err := net.Listen("tcp6", "[::1]:"+port)
	if err != nil {
		t.Logf("no IPv6 loopback here, the IPv6 cases are not run: %v", err)
		return
	}
	defer taken6.Close()
	if err := checkServer("v6", &caddyhttp.Server{Listen: []string{"tcp6/[::1]:" + port}}, 80); err == nil {
		t.Error("tcp6 [::1] claimed while taken")
	}
	if err := checkServer("v4", &caddyhttp.Server{Listen: []string{"tcp4/127.0.0.1:" + port}}, 80); err != nil {
		t.Errorf("tcp4 127.0.0.1 beside a taken [::1]: %v", err)
	}
}

// TestCheckReplacesPlaceholders: a listen address with a placeholder is
// checked as the http app will listen on it.
func TestCheckReplacesPlaceholders(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	t.Setenv("RELOADING_TEST_PORT", itoa(taken.Addr().(*net.TCPAddr).Port))
	if err := checkServer("env", &caddyhttp.Server{Listen: []string{"127.0.0.1:{env.RELOADING_TEST_PORT}"}}, 80); err == nil ||
		!strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("placeholder of a taken port: %v", err)
	}
}

// TestZoneIndex: an IPv6 zone is an interface name or index.
func TestZoneIndex(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for zone, want := range map[string]uint32{"": 0, "lo": uint32(lo.Index), "7": 7, "no-such-interface": 0} {
		if got := zoneIndex(zone); got != want {
			t.Errorf("zoneIndex(%q) = %d, want %d", zone, got, want)
		}
	}
}
