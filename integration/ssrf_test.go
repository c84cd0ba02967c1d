package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// rebindDNS is a real DNS server on a loopback UDP socket that answers
// the A query of every name under .test with the address set last, as a
// DNS-rebinding attacker's name server does.
type rebindDNS struct {
	addr string
	ip   atomic.Pointer[netip.Addr]
}

func startRebindDNS(t *testing.T) *rebindDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rebindDNS{addr: pc.LocalAddr().String()}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return s
}

func (s *rebindDNS) set(ip string) {
	a := netip.MustParseAddr(ip)
	s.ip.Store(&a)
}

func (s *rebindDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	switch {
	case !strings.HasSuffix(q.Name, ".test."):
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		if ip := s.ip.Load(); ip != nil {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0}, A: ip.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}

// useResolver makes the process's resolver (the control-plane API's
// target check and the proxy's dials, which both use the system
// resolver) ask s, until the test ends.
func useResolver(t *testing.T, s *rebindDNS) {
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.addr)
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
}

// TestTargetPolicyHoldsAtDialTime is the DNS-rebinding SSRF: a token
// with target-write rights adds rebind.test:P while the name resolves to
// an address the policy allows (10.77.0.1, where a backend listens), and
// the name then resolves to 127.0.0.1, where another service listens on
// the same port. The proxy must refuse the connection to 127.0.0.1 at
// dial time (502; the loopback service never gets a request), while the
// API's target keeps working as long as it resolves to an allowed
// address, and a target the configuration declares with a host name that
// resolves to loopback stays the operator's choice (unchecked).
func TestTargetPolicyHoldsAtDialTime(t *testing.T) {
	// The allowed backend and the service the attacker wants to reach
	// (loopback) listen on the same port: try ports until one is free on
	// both addresses.
	var good, victimLn net.Listener
	var port string
	for try := 0; victimLn == nil; try++ {
		var err error
		if good, err = net.Listen("tcp", "10.77.0.1:0"); err != nil {
			testutil.Missing(t, "no IPv4 address outside 127.0.0.0/8 on the loopback interface: ip addr add 10.77.0.1/32 dev lo (as .ci/run does): %v", err)
			return
		}
		_, port, _ = net.SplitHostPort(good.Addr().String())
		if victimLn, err = net.Listen("tcp", "127.0.0.1:"+port); err != nil {
			good.Close()
			if try == 20 {
				t.Fatalf("no port free on both 10.77.0.1 and 127.0.0.1 in 20 tries: %v", err)
			}
		}
	}
	var goodHits atomic.Int64
	goodSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		w.Header().Set("Connection", "close") // every request dials anew
		fmt.Fprint(w, "good")
	})}
	go goodSrv.Serve(good)
	t.Cleanup(func() { goodSrv.Close() })
	var victimHits atomic.Int64
	victimSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		victimHits.Add(1)
		fmt.Fprint(w, "victim secrets")
	})}
	go victimSrv.Serve(victimLn)
	t.Cleanup(func() { victimSrv.Close() })
	cfgBackend := startBackend(t, "cfg")
	_, cfgPort, _ := net.SplitHostPort(cfgBackend.addr)

	ns := startRebindDNS(t)
	ns.set("10.77.0.1")
	useResolver(t, ns)

	listen, apiAddr, ops := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
listeners { listener "main" { address "%s"; }; }
routes {
    route "cfg" { matches { path-prefix "/cfg"; }; upstream "cfg"; }
    route "api" { matches { path-prefix "/"; }; upstream "u"; }
}
upstreams {
    upstream "u" { target "%s"; health-check { type "http" { path "/health"; }; interval-secs 1; }; }
    upstream "cfg" { target "operator.test:%s"; }
}
admin-api { address "%s"; auth { token "tok"; }; }
observability { metrics { enabled #true; address "%s"; path "/metrics"; } }
`, listen, cfgBackend.addr, cfgPort, apiAddr, ops))
	api := apiClient{t: t, base: "http://" + apiAddr, token: "tok"}
	c := client()
	base := "http://" + listen

	// The add-time check still refuses a name resolving to loopback.
	ns.set("127.0.0.1")
	if code, body := api.do("PUT", "/api/v1/upstreams/u/targets", map[string]any{"targets": []any{map[string]any{"address": "rebind.test:" + port}}}); code != 403 {
		t.Fatalf("adding a target resolving to loopback: %d %v", code, body)
	}
	// A config target with a host name: the operator's choice, unchecked.
	if code, body, _ := get(t, c, "GET", base+"/cfg/x", nil); code != 200 || body != "cfg /cfg/x" {
		t.Fatalf("config target with a host name resolving to loopback: %d %q", code, body)
	}

	ns.set("10.77.0.1")
	if code, body := api.do("PUT", "/api/v1/upstreams/u/targets", map[string]any{"targets": []any{map[string]any{"address": "rebind.test:" + port}}}); code != 200 {
		t.Fatalf("adding rebind.test:%s: %d %v", port, code, body)
	}
	eventually(t, "the API's target rebind.test answers from 10.77.0.1", func() bool {
		code, body, _ := get(t, c, "GET", base+"/x", nil)
		return code == 200 && body == "good"
	})

	// Rebind: the name now resolves to loopback.
	ns.set("127.0.0.1")
	for range 5 {
		code, body, _ := get(t, c, "GET", base+"/x", nil)
		// 502: the dial was refused (503 once the health checks, which
		// are refused too, marked the target down).
		if code != http.StatusBadGateway && code != http.StatusServiceUnavailable || strings.Contains(body, "victim") {
			t.Errorf("request after the rebind: %d %q, want 502", code, body)
		}
	}
	// The active health checks (every second) apply the policy too.
	time.Sleep(2500 * time.Millisecond)
	if n := victimHits.Load(); n != 0 {
		t.Fatalf("the loopback service got %d requests through the rebound name", n)
	}
	_, metrics, _ := get(t, c, "GET", "http://"+ops+"/metrics", nil)
	if refused := metricValue(metrics, "sentinel_upstream_dials_refused_total"); refused < 5 {
		t.Errorf("sentinel_upstream_dials_refused_total = %v, want at least 5", refused)
	}

	// Bound back to an allowed address: served again.
	ns.set("10.77.0.1")
	before := goodHits.Load()
	eventually(t, "rebind.test answers from 10.77.0.1 again", func() bool {
		code, body, _ := get(t, c, "GET", base+"/x", nil)
		return code == 200 && body == "good"
	})
	if goodHits.Load() <= before {
		t.Error("the allowed address got no request")
	}
	if n := victimHits.Load(); n != 0 {
		t.Fatalf("the loopback service got %d requests", n)
	}
}

// metricValue returns the value of the unlabelled series name in a
// Prometheus scrape (-1 when absent).
func metricValue(scrape, name string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
