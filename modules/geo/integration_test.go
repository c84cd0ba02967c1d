package geo_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/geo"
)

// adminPort is this package's own Caddy admin port.
const adminPort = 2977

// backend is a real upstream that records the X-GeoIP-Country headers of
// the requests it gets.
type backend struct {
	addr string
	hits atomic.Int64
	mu   sync.Mutex
	last []string
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: l.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.last = r.Header.Values(geo.CountryHeader)
		b.mu.Unlock()
		_, _ = io.WriteString(w, "backend")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// country is the last request's X-GeoIP-Country values at the backend.
func (b *backend) country() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.last, ",")
}

// send sends GET url with the headers hdr (name, value, …).
func send(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// geoKDL is the proxy's config: two listeners, one trusting the test's
// loopback peer as a proxy (its X-Forwarded-For names the client), one
// trusting nobody; 127.0.0.0/8 is "DE" in the test database.
const geoKDL = `system { caddy-admin "localhost:%[1]d"; }
listeners {
    listener "trusted" { address "%[2]s"; trusted-proxies "127.0.0.1/32"; }
    listener "direct" { address "%[3]s"; }
    listener "ops" { address "%[4]s"; }
}
filters {
    filter "block" { type "geo"; database-path "%[5]s"; countries "CN,se"; }
    filter "allow" { type "geo"; database-path "%[5]s"; action "allow"; countries "GB"; status-code 451; block-message "not in your region"; }
    filter "watch" { type "geo"; database-path "%[5]s"; action "log-only"; countries "CN"; }
    filter "open" { type "geo"; database-path "%[5]s"; countries "CN"; on-failure "open"; }
    filter "closed" { type "geo"; database-path "%[5]s"; countries "CN"; on-failure "closed"; }
    filter "local" { type "geo"; database-path "%[5]s"; countries "DE"; add-country-header #false; }
}
routes {
    route "metrics" { matches { path "/metrics"; }; builtin-handler "metrics"; }
    route "block" { matches { path-prefix "/block"; }; upstream "b"; filters "block"; }
    route "allow" { matches { path-prefix "/allow"; }; upstream "b"; filters "allow"; }
    route "watch" { matches { path-prefix "/watch"; }; upstream "b"; filters "watch"; }
    route "open" { matches { path-prefix "/open"; }; upstream "b"; filters "open"; }
    route "closed" { matches { path-prefix "/closed"; }; upstream "b"; filters "closed"; }
    route "local" { matches { path-prefix "/local"; }; upstream "b"; filters "local"; }
}
upstreams { upstream "b" { target "%[6]s"; } }
observability { metrics { enabled #true; address "%[4]s"; path "/metrics"; } }
`

// TestProxy runs the filters in the real proxy, loaded from KDL, in front
// of a real upstream.
func TestProxy(t *testing.T) {
	dir := t.TempDir()
	db := geo.WriteTestDB(t, dir, "GeoLite2-Country.mmdb", geo.TestNetworks)
	be := startBackend(t)
	trusted, direct, ops := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	tc.InitServer(fmt.Sprintf(geoKDL, adminPort, trusted, direct, ops, db, be.addr), "kdl")

	const xff = "X-Forwarded-For"
	for _, c := range []struct {
		name, url string
		hdr       []string
		status    int
		body      string
		country   string // at the upstream ("-": not reached)
	}{
		{"blocked country", "http://" + trusted + "/block", []string{xff, "175.16.199.7"}, 403, "Forbidden", "-"},
		{"blocked second country", "http://" + trusted + "/block", []string{xff, "89.160.20.1"}, 403, "Forbidden", "-"},
		{"passed country", "http://" + trusted + "/block", []string{xff, "81.2.69.142"}, 200, "backend", "GB"},
		{"spoofed country replaced", "http://" + trusted + "/block", []string{xff, "81.2.69.142", geo.CountryHeader, "CN"}, 200, "backend", "GB"},
		{"proxy chain: the address left of the trusted hops", "http://" + trusted + "/block", []string{xff, "175.16.199.7, 127.0.0.1"}, 403, "Forbidden", "-"},
		{"allow list: listed", "http://" + trusted + "/allow", []string{xff, "81.2.69.142"}, 200, "backend", "GB"},
		{"allow list: other", "http://" + trusted + "/allow", []string{xff, "216.160.83.56"}, 451, "not in your region", "-"},
		{"log-only: listed passes", "http://" + trusted + "/watch", []string{xff, "175.16.199.7"}, 200, "backend", "CN"},
		{"on-failure open: not in the database", "http://" + trusted + "/open", []string{xff, "10.1.2.3", geo.CountryHeader, "GB"}, 200, "backend", ""},
		{"on-failure closed: not in the database", "http://" + trusted + "/closed", []string{xff, "10.1.2.3"}, 403, "Forbidden", "-"},
		{"on-failure closed: in the database", "http://" + trusted + "/closed", []string{xff, "2.125.160.216"}, 200, "backend", "US"},
		// From a peer that is not a trusted proxy, X-Forwarded-For is
		// not read: the client is 127.0.0.1 ("DE").
		{"untrusted X-Forwarded-For ignored", "http://" + direct + "/block", []string{xff, "175.16.199.7"}, 200, "backend", "DE"},
		{"untrusted peer's own country", "http://" + direct + "/local", []string{xff, "81.2.69.142"}, 403, "Forbidden", "-"},
		{"trusted X-Forwarded-For used", "http://" + trusted + "/local", []string{xff, "81.2.69.142", geo.CountryHeader, "DE"}, 200, "backend", ""},
	} {
		before := be.hits.Load()
		status, body := send(t, c.url, c.hdr...)
		if status != c.status || body != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, body, c.status, c.body)
			continue
		}
		reached := be.hits.Load() != before
		switch {
		case c.country == "-" && reached:
			t.Errorf("%s: a blocked request reached the upstream", c.name)
		case c.country != "-" && !reached:
			t.Errorf("%s: the request did not reach the upstream", c.name)
		case c.country != "-" && be.country() != c.country:
			t.Errorf("%s: the upstream got %s %q, want %q", c.name, geo.CountryHeader, be.country(), c.country)
		}
	}

	// The metrics, and every name docs/geoip.md cites.
	_, scrape := send(t, "http://"+ops+"/metrics")
	for _, want := range []string{
		`sentinel_geo_blocked_total{filter="block",reason="country"} 3`,
		`sentinel_geo_allowed_total{filter="block"} 3`,
		`sentinel_geo_blocked_total{filter="allow",reason="country"} 1`,
		`sentinel_geo_allowed_total{filter="watch"} 1`,
		`sentinel_geo_lookup_failures_total{filter="open",reason="not_found"} 1`,
		`sentinel_geo_allowed_total{filter="open"} 1`,
		`sentinel_geo_blocked_total{filter="closed",reason="lookup_failure"} 1`,
		`sentinel_geo_lookup_failures_total{filter="closed",reason="not_found"} 1`,
		`sentinel_geo_blocked_total{filter="local",reason="country"} 1`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	doc, err := os.ReadFile("../../docs/geoip.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(sentinel_geo_[a-z_]+)").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 3 {
		t.Errorf("docs/geoip.md cites %d metric names", len(names))
	}
	for _, m := range names {
		if !regexp.MustCompile(`(?m)^` + m[1] + `\{`).MatchString(scrape) {
			t.Errorf("docs/geoip.md cites %s, which the proxy does not export", m[1])
		}
	}
}

// TestLoadFailures: a config whose database cannot be opened is refused
// when loaded, with an error naming the file and not its content, and the
// running config keeps serving.
func TestLoadFailures(t *testing.T) {
	dir := t.TempDir()
	db := geo.WriteTestDB(t, dir, "geo.mmdb", geo.TestNetworks)
	be := startBackend(t)
	addr := testutil.FreeAddr(t)
	const cfg = `system { caddy-admin "localhost:%d"; }
listeners { listener "a" { address "%s"; } }
filters { filter "g" { type "geo"; database-path "%s"; countries "CN"; } }
routes { route "r" { upstream "b"; filters "g"; } }
upstreams { upstream "b" { target "%s"; } }
`
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	tc.InitServer(fmt.Sprintf(cfg, adminPort, addr, db, be.addr), "kdl")

	secret := filepath.Join(dir, "secret.mmdb")
	if err := os.WriteFile(secret, []byte("api-key=s3cr3t-value-do-not-print\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.mmdb"), "missing.mmdb\\\": no such file"},
		{secret, "secret.mmdb\\\": not a valid MaxMind DB (.mmdb) file"},
	} {
		body := fmt.Sprintf(cfg, adminPort, addr, c.path, be.addr)
		res, err := http.Post(fmt.Sprintf("http://localhost:%d/load", adminPort), "text/kdl", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatalf("%s: loaded", c.path)
		}
		if !strings.Contains(string(msg), "GeoIP database") || !strings.Contains(string(msg), c.want) || strings.Contains(string(msg), "s3cr3t") {
			t.Errorf("%s: load error %s", c.path, msg)
		}
	}
	if status, body := send(t, "http://"+addr+"/", "X-Forwarded-For", "175.16.199.7"); status != 200 || body != "backend" {
		t.Errorf("the running config stopped serving: %d %q", status, body)
	}
}

// TestCaddyfile: the directive in a Caddyfile, in the real server.
func TestCaddyfile(t *testing.T) {
	db := geo.WriteTestDB(t, t.TempDir(), "geo.mmdb", geo.TestNetworks)
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	tc.InitServer(fmt.Sprintf(`{
		admin localhost:%d
		persist_config off
		auto_https off
		servers {
			trusted_proxies static 127.0.0.1/32
		}
	}
	http://:%s {
		bind 127.0.0.1
		sentinel_geo {
			database %s
			countries CN
			message "blocked"
		}
		respond "country={header.X-GeoIP-Country}" 200
	}`, adminPort, port, db), "caddyfile")
	if status, body := send(t, "http://"+addr+"/", "X-Forwarded-For", "175.16.199.7"); status != 403 || body != "blocked" {
		t.Errorf("CN: %d %q", status, body)
	}
	if status, body := send(t, "http://"+addr+"/", "X-Forwarded-For", "81.2.69.142", geo.CountryHeader, "CN"); status != 200 || body != "country=GB" {
		t.Errorf("GB: %d %q", status, body)
	}
}
