package l4

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// gwConfig is a config shaped as the Gateway API translator makes them
// (gateway/translate): apps http and sentinel_l4, no sentinel app. Its
// http server "gw-80" on httpAddr answers body; with l4Addr, its
// sentinel_l4 server "gw-l4" there splices to backend, else the
// sentinel_l4 app is empty (as the translator emits it without TLS or
// TCP listeners). extraHTTP and extraL4 add a server on that address to
// the app.
func gwConfig(t *testing.T, httpAddr, body, l4Addr, backend, extraHTTP, extraL4 string) []byte {
	t.Helper()
	httpServer := func(listen, body string) map[string]any {
		return map[string]any{
			"listen":          []string{listen},
			"protocols":       []string{"h1"},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler": "static_response", "status_code": 200, "body": body,
			}}}},
		}
	}
	servers := map[string]any{"gw-80": httpServer(httpAddr, body)}
	if extraHTTP != "" {
		servers["gw-extra"] = httpServer(extraHTTP, body+"-extra")
	}
	l4Servers := map[string]any{}
	if l4Addr != "" {
		l4Servers["gw-l4"] = map[string]any{
			"listen": []string{l4Addr},
			"routes": []any{map[string]any{"upstreams": []any{map[string]any{"dial": backend}}}},
		}
	}
	if extraL4 != "" {
		l4Servers["gw-l4-extra"] = map[string]any{
			"listen": []string{extraL4},
			"routes": []any{map[string]any{"upstreams": []any{map[string]any{"dial": backend}}}},
		}
	}
	l4 := map[string]any{}
	if len(l4Servers) > 0 {
		l4["servers"] = l4Servers
	}
	cfg, err := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps":  map[string]any{"http": map[string]any{"servers": servers}, "sentinel_l4": l4},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tcpGreeting is the first line a connection to addr reads.
func tcpGreeting(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(line)
}

// TestFailedLoadsWithoutSentinelAppNeverTouchTheRunningConfig: while
// clients send HTTP requests and open TCP connections to the running
// config A (shaped as the Gateway API translator makes them: apps http
// and sentinel_l4, no sentinel app), configs B fail to load twenty times
// each because a listener they add, of the http app or of the
// sentinel_l4 app, cannot bind (the test holds the address). Every HTTP
// request is answered by A, and every TCP connection is spliced to A's
// backend. Before the sentinel_l4 app checked the listen addresses at
// provisioning (reloading.CheckListenersUnlessSentinel), nothing checked
// them in a config without a sentinel app: Caddy started B's apps and
// servers in map order, so B's sockets on A's shared SO_REUSEPORT
// addresses took some of A's connections (answered "B" or reset when the
// load rolled back). The same with A's sentinel_l4 app empty, as the
// translator emits it without TLS or TCP listeners.
func TestFailedLoadsWithoutSentinelAppNeverTouchTheRunningConfig(t *testing.T) {
	testutil.Exclusive(t)
	backendA, backendB := tcpBackend(t, "a"), tcpBackend(t, "b")
	httpAddr, l4Addr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	t.Cleanup(func() { _ = caddy.Stop() })

	for _, tc := range []struct {
		name               string
		l4                 bool   // A and B have a sentinel_l4 server
		extraHTTP, extraL4 string // B's server on the taken address
		want               string
	}{
		{name: "http listener taken", l4: true, extraHTTP: taken.Addr().String(), want: `http app: server "gw-extra": listening on ` + taken.Addr().String()},
		{name: "l4 listener taken", l4: true, extraL4: taken.Addr().String(), want: `sentinel_l4 app: server "gw-l4-extra": listening on ` + taken.Addr().String()},
		{name: "empty l4 app, http listener taken", extraHTTP: taken.Addr().String(), want: `http app: server "gw-extra": listening on ` + taken.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l4 := ""
			if tc.l4 {
				l4 = l4Addr
			}
			if err := caddy.Load(gwConfig(t, httpAddr, "A", l4, backendA, "", ""), true); err != nil {
				t.Fatalf("config A: %v", err)
			}
			if got := testutil.HTTPAnswer("http://" + httpAddr + "/"); got != "200 A" {
				t.Fatalf("config A: %s", got)
			}
			cfgB := gwConfig(t, httpAddr, "B", l4, backendB, tc.extraHTTP, tc.extraL4)

			clients := testutil.NewSteadyClients(t)
			for range 3 {
				clients.Add(func() string { return testutil.HTTPAnswer("http://" + httpAddr + "/") }, testutil.Equals("200 A"))
				if tc.l4 {
					clients.Add(func() string { return "tcp " + tcpGreeting(l4Addr) }, testutil.Equals("tcp a"))
				}
			}
			for i := range 20 {
				if err := caddy.Load(cfgB, true); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("load %d of config B: %v, want an error with %q", i, err, tc.want)
				}
				// Let the clients reach the running config between loads.
				time.Sleep(5 * time.Millisecond)
			}
			clients.Check(t, "20 failed loads", 20)
		})
	}

	// A good config adding new listeners to both apps loads and serves
	// them; the checks kept nothing bound once it stops.
	extraHTTP, extraL4 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	if err := caddy.Load(gwConfig(t, httpAddr, "B", l4Addr, backendB, extraHTTP, extraL4), true); err != nil {
		t.Fatalf("config B with free new addresses: %v", err)
	}
	if got := testutil.HTTPAnswer("http://" + extraHTTP + "/"); got != "200 B-extra" {
		t.Errorf("config B's new http listener: %s", got)
	}
	if got := tcpGreeting(extraL4); got != "b" {
		t.Errorf("config B's new sentinel_l4 listener: %q", got)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{extraHTTP, extraL4} {
		testutil.CheckReleased(t, addr)
	}
}
