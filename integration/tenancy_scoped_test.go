package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// tenancyLimitsConfig: three namespaces on one shared listener (header
// identification) and an ops listener for the metrics. team-a has a body
// limit and an in-flight cap, team-c a total rate, team-b none.
const tenancyLimitsConfig = `
listeners {
    listener "shared" { address "%[1]s"; tenants { header "X-Tenant"; }; }
}
observability { metrics { enabled #true; address "%[5]s"; path "/metrics"; } }
routes { route "health" { priority "critical"; matches { path "/health"; }; builtin-handler "health"; }; }
namespace "team-a" {
    limits { max-body-size "1KB"; max-in-flight-requests 2; }
    upstreams { upstream "api" { target "%[2]s"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
}
namespace "team-b" {
    upstreams { upstream "api" { target "%[3]s"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
}
namespace "team-c" {
    limits { max-requests-per-second-global 0.001; }
    upstreams { upstream "api" { target "%[4]s"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
}
`

// gateBackend answers "name path" after the gate opens for /slow (at
// once for other paths), reading the request's body first.
type gateBackend struct {
	addr    string
	gate    chan struct{}
	entered chan struct{}
}

func startGateBackend(t *testing.T, name string) *gateBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateBackend{addr: l.Addr().String(), gate: make(chan struct{}), entered: make(chan struct{}, 16)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			g.entered <- struct{}{}
			<-g.gate
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return g
}

// TestTenancyLimits: a namespace's limits { } hold for its requests only:
// its body limit, its in-flight cap and its rate do not touch the other
// tenants on the same listener; the route series carry the namespace
// label.
func TestTenancyLimits(t *testing.T) {
	a, b, cb := startGateBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	shared, ops := testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(tenancyLimitsConfig, shared, a.addr, b.addr, cb.addr, ops))
	c := client()
	base := "http://" + shared
	post := func(tenant string, size int) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/upload", strings.NewReader(strings.Repeat("x", size)))
		req.Header.Set("X-Tenant", tenant)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}

	t.Run("body size", func(t *testing.T) {
		if s, body := post("team-a", 2048); s != http.StatusRequestEntityTooLarge {
			t.Errorf("team-a 2 KiB: %d %q, want 413", s, body)
		}
		if s, body := post("team-a", 512); s != 200 || body != "a /upload" {
			t.Errorf("team-a 512 B: %d %q", s, body)
		}
		if s, body := post("team-b", 4096); s != 200 || body != "b /upload" {
			t.Errorf("team-b 4 KiB (no namespace limit): %d %q", s, body)
		}
	})

	t.Run("in-flight cap", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s, body, _ := get(t, c, "GET", base+"/slow", map[string]string{"X-Tenant": "team-a"}); s != 200 {
					t.Errorf("held team-a request: %d %q", s, body)
				}
			}()
		}
		<-a.entered
		<-a.entered
		s, body, hdr := get(t, c, "GET", base+"/fast", map[string]string{"X-Tenant": "team-a"})
		if s != http.StatusServiceUnavailable || !strings.Contains(body, "too many requests in flight for namespace:team-a") || hdr.Get("Retry-After") != "1" {
			t.Errorf("third team-a request: %d %q %v, want 503", s, body, hdr)
		}
		// The other tenants are not held back by team-a's cap.
		for i := range 5 {
			if s, body, _ := get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-b"}); s != 200 || body != "b /x" {
				t.Errorf("team-b request %d while team-a is at its cap: %d %q", i, s, body)
			}
		}
		close(a.gate)
		wg.Wait()
		if s, body, _ := get(t, c, "GET", base+"/fast", map[string]string{"X-Tenant": "team-a"}); s != 200 {
			t.Errorf("team-a after its requests ended: %d %q", s, body)
		}
	})

	t.Run("namespace rate", func(t *testing.T) {
		if s, _, _ := get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-c"}); s != 200 {
			t.Fatalf("team-c first request: %d", s)
		}
		if s, _, _ := get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-c"}); s != http.StatusTooManyRequests {
			t.Errorf("team-c over its namespace rate: %d, want 429", s)
		}
		for i := range 5 {
			if s, _, _ := get(t, c, "GET", base+"/x", map[string]string{"X-Tenant": "team-b"}); s != 200 {
				t.Errorf("team-b request %d after team-c exhausted its rate: %d", i, s)
			}
		}
	})

	t.Run("namespace label", func(t *testing.T) {
		var body string
		eventually(t, "route series with the namespace label", func() bool {
			_, body, _ = get(t, c, "GET", "http://"+ops+"/metrics", nil)
			return strings.Contains(body, `sentinel_route_requests_total{code="413",namespace="team-a",route="team-a:web"} 1`)
		})
		for _, want := range []string{
			`sentinel_route_requests_total{code="503",namespace="team-a",route="team-a:web"} 1`,
			`sentinel_route_requests_total{code="429",namespace="team-c",route="team-c:web"} 1`,
			`sentinel_route_request_duration_seconds_count{namespace="team-b",route="team-b:web"}`,
			`sentinel_upstream_target_healthy{namespace="team-b",target="` + b.addr + `",upstream="team-b:api"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// Every route series has the label, global ones an empty one.
		for _, line := range regexp.MustCompile(`(?m)^sentinel_route_requests_total\{[^}]*\}`).FindAllString(body, -1) {
			if !strings.Contains(line, `namespace="`) {
				t.Errorf("no namespace label: %s", line)
			}
		}
	})
}

// TestTenancyBreakers: each namespace's agents and upstreams have their
// own circuit breaker: team-a's tripped breakers (an agent that never
// answers, an upstream that refuses connections) leave team-b's agent and
// upstream of the same names closed.
func TestTenancyBreakers(t *testing.T) {
	hang, ok := startFaultAgent(t, "hang"), startFaultAgent(t, "ok")
	b := startBackend(t, "b")
	dead := testutil.FreeAddr(t) // nothing listens there
	shared := testutil.FreeAddr(t)
	breaker := `circuit-breaker { failure-threshold 2; success-threshold 1; timeout-seconds 60; half-open-max-requests 1; }`
	loadKDL(t, fmt.Sprintf(`
listeners { listener "shared" { address "%[1]s"; tenants { header "X-Tenant"; }; }; }
namespace "team-a" {
    agents { agent "waf" { unix-socket "%[2]s"; timeout-ms 100; failure-mode "closed"; %[5]s }; }
    filters { filter "waf" { type "agent"; agent "waf"; }; }
    upstreams { upstream "api" { target "%[4]s"; circuit-breaker { failure-threshold 1; timeout-seconds 60; }; }; }
    routes {
        route "guarded" { matches { path-prefix "/guarded"; }; upstream "api"; filters "waf"; }
        route "web" { matches { path-prefix "/"; }; upstream "api"; }
    }
}
namespace "team-b" {
    agents { agent "waf" { unix-socket "%[3]s"; timeout-ms 100; failure-mode "closed"; %[5]s }; }
    filters { filter "waf" { type "agent"; agent "waf"; }; }
    upstreams { upstream "api" { target "%[6]s"; circuit-breaker { failure-threshold 1; timeout-seconds 60; }; }; }
    routes {
        route "guarded" { matches { path-prefix "/guarded"; }; upstream "api"; filters "waf"; }
        route "web" { matches { path-prefix "/"; }; upstream "api"; }
    }
}
`, shared, hang.path, ok.path, dead, breaker, b.addr))
	c := client()
	base := "http://" + shared
	as := func(ns string) map[string]string { return map[string]string{"X-Tenant": ns} }

	t.Run("agent breaker", func(t *testing.T) {
		var last int
		var lastBody string
		for range 4 {
			last, lastBody, _ = get(t, c, "GET", base+"/guarded", as("team-a"))
			if last == 200 {
				t.Fatalf("team-a's hung agent let a request through: %q", lastBody)
			}
		}
		// The breaker is open: an answer without waiting for the agent.
		start := time.Now()
		s, body, _ := get(t, c, "GET", base+"/guarded", as("team-a"))
		if s == 200 || time.Since(start) > 90*time.Millisecond {
			t.Errorf("team-a with its breaker open: %d %q after %v", s, body, time.Since(start))
		}
		for i := range 3 {
			s, body, hdr := get(t, c, "GET", base+"/guarded", as("team-b"))
			if s != 200 || body != "b /guarded" || hdr.Get("X-Fault-Agent") != "ok" {
				t.Errorf("team-b request %d through its own agent \"waf\": %d %q %v", i, s, body, hdr)
			}
		}
	})

	t.Run("upstream breaker", func(t *testing.T) {
		for range 3 {
			if s, _, _ := get(t, c, "GET", base+"/x", as("team-a")); s < 500 {
				t.Fatalf("team-a's dead upstream answered %d", s)
			}
		}
		for i := range 3 {
			if s, body, _ := get(t, c, "GET", base+"/x", as("team-b")); s != 200 || body != "b /x" {
				t.Errorf("team-b request %d after team-a's breaker opened: %d %q", i, s, body)
			}
		}
	})
}

// TestTenancySNI: on a TLS listener identifying tenants by the server
// name, a request whose Host names another tenant than the connection's
// server name (domain fronting) is refused; agreeing ones pass.
func TestTenancySNI(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	shared := testutil.FreeAddr(t)
	cert, key := writeCert(t, t.TempDir(), "team-a.t.test", "team-b.t.test", "shop.test")
	loadKDL(t, fmt.Sprintf(`
listeners {
    listener "shared" {
        address "%[1]s"
        tls { cert-file "%[2]s"; key-file "%[3]s"; }
        tenants { subdomain-of "t.test"; host "shop.test" namespace="team-a"; sni #true; }
    }
}
namespace "team-a" {
    upstreams { upstream "api" { target "%[4]s"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
}
namespace "team-b" {
    upstreams { upstream "api" { target "%[5]s"; }; }
    routes { route "web" { matches { path-prefix "/"; }; upstream "api"; }; }
}
`, shared, cert, key, a.addr, b.addr))
	do := func(sni, host string) (int, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true}} //nolint:gosec // a test certificate
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+shared+"/x", nil)
		req.Host = host
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("sni %q host %q: %v", sni, host, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for _, tc := range []struct {
		sni, host string
		status    int
		body      string
	}{
		{"team-a.t.test", "team-a.t.test", 200, "a /x"},
		{"team-b.t.test", "team-b.t.test", 200, "b /x"},
		{"shop.test", "team-a.t.test", 200, "a /x"},
		// Domain fronting: a connection for team-a, a request for team-b.
		{"team-a.t.test", "team-b.t.test", http.StatusMisdirectedRequest, "TLS server name and the Host"},
		{"team-b.t.test", "shop.test", http.StatusMisdirectedRequest, "TLS server name and the Host"},
		{"team-a.t.test", "elsewhere.test", http.StatusMisdirectedRequest, "TLS server name and the Host"},
	} {
		s, body := do(tc.sni, tc.host)
		if s != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("sni %q host %q: %d %q, want %d %q", tc.sni, tc.host, s, body, tc.status, tc.body)
		}
	}
}
