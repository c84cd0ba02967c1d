package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestDiscoveryFileEndToEnd routes through the real proxy to targets a
// watched file lists: a discovered target gets the requests, a new file
// replaces it, an invalid file keeps it (the pool never empties), a
// reload keeps the discovered set, and the control-plane API shows the
// targets with origin discovery: their weight can change, they cannot be
// removed. The discovery metrics are exported.
func TestDiscoveryFileEndToEnd(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	listen, apiAddr, ops := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	targets := filepath.Join(t.TempDir(), "targets")
	writeTargets := func(s string) {
		t.Helper()
		tmp := targets + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, targets); err != nil {
			t.Fatal(err)
		}
	}
	writeTargets(a.addr + "\n")
	cfg := fmt.Sprintf(`
listeners { listener "main" { address "%s"; }; }
routes {
    route "metrics" { matches { path "/metrics"; }; builtin-handler "metrics"; }
    route "api" { matches { path-prefix "/"; }; upstream "api"; }
}
upstreams {
    upstream "api" {
        discovery "file" { path "%s"; watch-interval 1; }
        health-check { type "http" { path "/health"; }; interval-secs 1; }
    }
}
admin-api { address "%s"; auth { token "tok"; }; allowed-target-networks "127.0.0.0/8"; }
observability { metrics { enabled #true; address "%s"; path "/metrics"; } }
`, listen, targets, apiAddr, ops)
	loadKDL(t, cfg)
	c := client()
	served := func(want string) func() bool {
		return func() bool {
			code, body, _ := get(t, c, "GET", "http://"+listen+"/x", nil)
			return code == 200 && strings.HasPrefix(body, want+" ")
		}
	}
	eventually(t, "the discovered target a is routed to", served("a"))

	writeTargets(b.addr + "\n")
	eventually(t, "the new file's target b replaces a", served("b"))
	hits := a.hits.Load()

	// An invalid file: b stays, a gets nothing.
	writeTargets("not a target\n")
	time.Sleep(2500 * time.Millisecond)
	for range 5 {
		if !served("b")() {
			t.Fatal("an invalid targets file changed the pool")
		}
	}
	if a.hits.Load() != hits {
		t.Error("a removed target got requests")
	}

	// A reload (the same config) keeps the discovered set at once.
	loadKDL(t, cfg)
	if !served("b")() {
		t.Error("the reload emptied the discovered pool")
	}

	// The API: origin discovery; a weight persists, a removal is refused.
	api := apiClient{t: t, base: "http://" + apiAddr, token: "tok"}
	code, up := api.do("GET", "/api/v1/upstreams/api", nil)
	if code != 200 || !strings.Contains(fmt.Sprint(up["targets"]), "origin:discovery") || !strings.Contains(fmt.Sprint(up["targets"]), b.addr) {
		t.Fatalf("GET upstream: %d %v", code, up)
	}
	if code, _ := api.do("PATCH", "/api/v1/upstreams/api/targets/"+b.addr, map[string]any{"weight": 5}); code != 200 {
		t.Errorf("PATCH weight: %d", code)
	}
	if code, body := api.do("DELETE", "/api/v1/upstreams/api/targets/"+b.addr, nil); code != http.StatusConflict {
		t.Errorf("DELETE a discovered target: %d %v", code, body)
	}
	writeTargets(b.addr + "\n" + a.addr + "\n")
	defer func() {
		if t.Failed() {
			_, up := api.do("GET", "/api/v1/upstreams/api", nil)
			t.Logf("upstream: %v", up)
		}
	}()
	eventually(t, "a discovered again, b's weight kept", func() bool {
		_, up := api.do("GET", "/api/v1/upstreams/api", nil)
		ts, _ := up["targets"].([]any)
		weights := map[string]any{}
		for _, x := range ts {
			if m, ok := x.(map[string]any); ok && m["origin"] == "discovery" {
				weights[fmt.Sprint(m["address"])] = m["weight"]
			}
		}
		return len(weights) == 2 && weights[a.addr] == 1.0 && weights[b.addr] == 5.0
	})

	_, metrics, _ := get(t, c, "GET", "http://"+ops+"/metrics", nil)
	for _, want := range []string{
		`sentinel_discovery_refresh_total{kind="file",result="success",upstream="api"}`,
		`sentinel_discovery_refresh_total{kind="file",result="error",upstream="api"}`,
		`sentinel_discovery_last_success_timestamp_seconds{kind="file",upstream="api"}`,
		`sentinel_discovery_targets{kind="file",upstream="api"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// zone is a real DNS server on loopback whose A records the test sets.
type zone struct {
	mu       sync.Mutex
	a        []string
	servfail bool
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	z.mu.Lock()
	defer z.mu.Unlock()
	switch {
	case z.servfail:
		m.Rcode = dns.RcodeServerFailure
	case r.Question[0].Qtype == dns.TypeA:
		for _, ip := range z.a {
			rr, _ := dns.NewRR(r.Question[0].Name + " 1 IN A " + ip)
			m.Answer = append(m.Answer, rr)
		}
	}
	_ = w.WriteMsg(m)
}

func (z *zone) set(servfail bool, ips ...string) {
	z.mu.Lock()
	z.a, z.servfail = ips, servfail
	z.mu.Unlock()
}

// TestDiscoveryDNSEndToEnd: the proxy routes to the address a DNS name
// resolves to, follows a change of the A record (TTL 1s), and keeps the
// last good address through SERVFAILs.
func TestDiscoveryDNSEndToEnd(t *testing.T) {
	// Two backends on one port, at 127.0.0.1 and 127.0.0.2.
	// A reserved port: no other test process binds it on 127.0.0.2.
	port := testutil.FreePort(t)
	l1, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		l1.Close()
		t.Fatalf("listen on 127.0.0.2:%d (the second backend): %v", port, err)
	}
	for i, l := range []net.Listener{l1, l2} {
		name := fmt.Sprintf("host%d", i+1)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s %s", name, r.URL.Path) }), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	z := &zone{}
	z.set(false, "127.0.0.1")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	ds := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go ds.ActivateAndServe()
	<-started
	t.Cleanup(func() { ds.Shutdown() })

	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
listeners { listener "main" { address "%s"; }; }
routes { route "api" { matches { path-prefix "/"; }; upstream "api"; }; }
upstreams {
    upstream "api" {
        discovery "dns" { hostname "api.test"; port %d; refresh-interval 30; resolvers "%s"; }
    }
}
`, listen, port, pc.LocalAddr()))
	c := client()
	served := func(want string) func() bool {
		return func() bool {
			code, body, _ := get(t, c, "GET", "http://"+listen+"/x", nil)
			return code == 200 && strings.HasPrefix(body, want+" ")
		}
	}
	eventually(t, "127.0.0.1 is routed to", served("host1"))
	z.set(false, "127.0.0.2")
	eventually(t, "the changed A record (TTL 1s) is followed", served("host2"))
	z.set(true)
	time.Sleep(2500 * time.Millisecond)
	for range 5 {
		if !served("host2")() {
			t.Fatal("a SERVFAIL changed the pool")
		}
	}
}
