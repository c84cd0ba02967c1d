package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestBasicConfig runs the original's examples/basic.kdl, posted to /load
// as text/kdl, with a real backend.
func TestBasicConfig(t *testing.T) {
	be := startBackend(t, "backend")
	listen, metrics := testutil.FreeAddr(t), testutil.FreeAddr(t)
	kdl := corpusFile(t, "examples/basic.kdl")
	kdl = strings.NewReplacer(`"0.0.0.0:8080"`, `"`+listen+`"`, `"127.0.0.1:8081"`, `"`+be.addr+`"`, `"0.0.0.0:9090"`, `"`+metrics+`"`).Replace(kdl)
	loadKDL(t, kdl)

	c := client()
	status, body, hdr := get(t, c, "GET", "http://"+listen+"/hello?x=1", nil)
	if status != 200 || body != "backend /hello?x=1" || hdr.Get("X-Backend") != "backend" {
		t.Fatalf("proxied request: %d %q", status, body)
	}
	// The metrics server of observability { metrics { } } answers.
	status, body, _ = get(t, c, "GET", "http://"+metrics+"/metrics", nil)
	if status != 200 || !strings.Contains(body, "caddy_http_requests_total") {
		t.Fatalf("metrics: %d %.200s", status, body)
	}
	status, _, _ = get(t, c, "GET", "http://"+metrics+"/other", nil)
	if status != 404 {
		t.Errorf("metrics server, other path: %d", status)
	}
	// max-body-size-bytes (10 MiB) is enforced: 11 MiB is refused.
	req, _ := http.NewRequest("POST", "http://"+listen+"/upload", strings.NewReader(strings.Repeat("x", 11<<20)))
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", res.StatusCode)
	}
}

// TestLoadBalancerConfig runs examples/load-balancer.kdl with its targets
// replaced by local backends: weighted round robin, the health route's
// priority, and a hyphenated algorithm name that is really honoured.
func TestLoadBalancerConfig(t *testing.T) {
	kdl := corpusFile(t, "examples/load-balancer.kdl")
	listen, metrics := testutil.FreeAddr(t), testutil.FreeAddr(t)
	backends := map[string]*backend{}
	kdl = regexp.MustCompile(`"10\.0\.\d+\.\d+:3000"`).ReplaceAllStringFunc(kdl, func(m string) string {
		name := strings.Trim(m, `"`)
		b := backends[name] // the file names some targets twice (in comments)
		if b == nil {
			b = startBackend(t, name)
			backends[name] = b
		}
		return `"` + b.addr + `"`
	})
	kdl = strings.NewReplacer(`"0.0.0.0:8080"`, `"`+listen+`"`, `"0.0.0.0:9090"`, `"`+metrics+`"`).Replace(kdl)
	loadKDL(t, kdl)

	c := client()
	// Caddy's weighted_round_robin, like the original's "weighted", is not
	// smooth: one full cycle is Σweights = 400 requests.
	for i := 0; i < 400; i++ {
		status, body, _ := get(t, c, "GET", fmt.Sprintf("http://%s/item/%d", listen, i), nil)
		if status != 200 {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	want := map[string]int64{"10.0.1.10:3000": 100, "10.0.1.11:3000": 100, "10.0.1.12:3000": 100, "10.0.1.13:3000": 50, "10.0.1.14:3000": 50}
	for name, n := range want {
		if got := backends[name].hits.Load(); got != n {
			t.Errorf("%s got %d requests, want %d", name, got, n)
		}
	}
	status, body, _ := get(t, c, "GET", "http://"+listen+"/health", nil)
	if status != 200 || jsonBody(t, body)["status"] != "healthy" {
		t.Errorf("health route: %d %s", status, body)
	}
}

// TestStaticSiteConfig runs examples/static-site.kdl (less its cache
// blocks, which are not supported yet) over HTTP/1.1 and HTTP/2 with TLS:
// priorities, regex conditions, the SPA rewrite filter.
func TestStaticSiteConfig(t *testing.T) {
	kdl := corpusFile(t, "examples/static-site.kdl")
	// Remove the caching blocks (policies { cache { … } } and the
	// top-level cache { … }): caching is not supported yet.
	kdl = removeBlocks(kdl, "cache")
	if strings.Contains(kdl, "cache {") {
		t.Fatalf("cache blocks left:\n%s", kdl)
	}
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "localhost", "127.0.0.1")
	static, api1, api2 := startBackend(t, "static"), startBackend(t, "api1"), startBackend(t, "api2")
	listen, tlsListen, metrics := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	kdl = strings.NewReplacer(
		`"0.0.0.0:8080"`, `"`+listen+`"`, `"0.0.0.0:8443"`, `"`+tlsListen+`"`, `"0.0.0.0:9090"`, `"`+metrics+`"`,
		`"127.0.0.1:3000"`, `"`+static.addr+`"`, `"127.0.0.1:4000"`, `"`+api1.addr+`"`, `"127.0.0.1:4001"`, `"`+api2.addr+`"`,
		`"/etc/zentinel/certs/site.crt"`, `"`+cert+`"`, `"/etc/zentinel/certs/site.key"`, `"`+key+`"`,
		`"/var/log/zentinel/static-site-access.log"`, `"`+filepath.Join(dir, "access.log")+`"`,
	).Replace(kdl)
	loadKDL(t, kdl)

	for _, proto := range []struct {
		name string
		c    *http.Client
		base string
		want int
	}{{"http1", client(), "http://" + listen, 1}, {"h2", h2Client(), "https://" + tlsListen, 2}} {
		t.Run(proto.name, func(t *testing.T) {
			// /api/ → the api backends, round robin.
			seen := map[string]bool{}
			for i := 0; i < 4; i++ {
				status, body, _ := get(t, proto.c, "GET", proto.base+"/api/users", nil)
				if status != 200 {
					t.Fatalf("api: %d %s", status, body)
				}
				seen[strings.Fields(body)[0]] = true
			}
			if !seen["api1"] || !seen["api2"] {
				t.Errorf("api round robin reached %v", seen)
			}
			// Hashed asset: immutable-assets route, path kept.
			status, body, _ := get(t, proto.c, "GET", proto.base+"/assets/app.1a2b3c4d5e.js", nil)
			if status != 200 || body != "static /assets/app.1a2b3c4d5e.js" {
				t.Errorf("asset: %d %q", status, body)
			}
			// Anything else: SPA fallback, rewritten to /index.html.
			status, body, _ = get(t, proto.c, "GET", proto.base+"/settings/profile?tab=2", nil)
			if status != 200 || body != "static /index.html?tab=2" {
				t.Errorf("spa fallback: %d %q", status, body)
			}
			// Health: builtin, highest priority.
			req, _ := http.NewRequest("GET", proto.base+"/health", nil)
			res, err := proto.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || res.ProtoMajor != proto.want {
				t.Errorf("health: %d over HTTP/%d", res.StatusCode, res.ProtoMajor)
			}
		})
	}
	// The access log is written to the configured file.
	eventually(t, "access log entries", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		// The original's access log fields (sentinel_access encoder).
		return strings.Contains(string(b), `"path":"/settings/profile","query":"tab=2"`) && strings.Contains(string(b), `"route_id":"spa-fallback"`)
	})
}

// TestMultiFileConfig runs the original's multi-file layout: an entry
// file that includes listeners/, upstreams/ and routes/ by glob. The
// stale routes/api.kdl of the corpus (see its README) is left out.
func TestMultiFileConfig(t *testing.T) {
	src := testutil.Shared(t, "testdata/sentinel-configs/example-multi-file")
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "localhost", "127.0.0.1")
	a1, a2, st := startBackend(t, "api1"), startBackend(t, "api2"), startBackend(t, "static")
	listen, tlsListen := testutil.FreeAddr(t), testutil.FreeAddr(t)
	repl := strings.NewReplacer(`"0.0.0.0:8080"`, `"`+listen+`"`, `"0.0.0.0:8443"`, `"`+tlsListen+`"`,
		`"127.0.0.1:9001"`, `"`+a1.addr+`"`, `"127.0.0.1:9002"`, `"`+a2.addr+`"`, `"127.0.0.1:9003"`, `"`+st.addr+`"`,
		`"/etc/zentinel/certs/example.crt"`, `"`+cert+`"`, `"/etc/zentinel/certs/example.key"`, `"`+key+`"`)
	for _, rel := range []string{"zentinel.kdl", "listeners/http.kdl", "listeners/https.kdl", "upstreams/backends.kdl", "routes/static.kdl"} {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(out), 0o755)
		if err := os.WriteFile(out, []byte(repl.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loadFile(t, filepath.Join(dir, "zentinel.kdl"))
	status, body, _ := get(t, client(), "GET", "http://"+listen+"/anything", nil)
	if status != 200 || body != "static /anything" {
		t.Errorf("http listener: %d %q", status, body)
	}
	status, body, _ = get(t, h2Client(), "GET", "https://"+tlsListen+"/page", nil)
	if status != 200 || body != "static /page" {
		t.Errorf("https listener over h2: %d %q", status, body)
	}
}

// removeBlocks deletes every `name { … }` block (brace-matched) from a
// KDL text; comments in the corpus contain no braces.
func removeBlocks(kdl, name string) string {
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + ` \{`)
	for {
		loc := re.FindStringIndex(kdl)
		if loc == nil {
			return kdl
		}
		depth, end := 0, -1
		for i := loc[1] - 1; i < len(kdl); i++ {
			if kdl[i] == '{' {
				depth++
			} else if kdl[i] == '}' {
				depth--
				if depth == 0 {
					end = i + 1
					break
				}
			}
		}
		if end < 0 {
			return kdl
		}
		kdl = kdl[:loc[0]] + kdl[end:]
	}
}
