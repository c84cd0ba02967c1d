package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// docMetricName finds `caddy_…` and `sentinel_…` names in the docs.
var docMetricName = regexp.MustCompile("`((?:sentinel|caddy)_[a-z0-9_]+)")

// labelName finds label names in a scrape.
var labelName = regexp.MustCompile(`[{,]([a-z_][a-z0-9_]*)="`)

// notExportedHere are documented metrics this test's proxy cannot produce
// cheaply, with the test that checks them.
var notExportedHere = map[string]string{
	"sentinel_wasm_plugin_": "needs a WASM plugin compiled for wasip1: modules/wasm's integration tests check these names",
	"sentinel_cache_":       "needs a cached route: TestCacheKDL checks these names",
	"sentinel_geo_":         "needs a GeoIP database: modules/geo's TestProxy checks these names",
	"sentinel_discovery_":   "needs a discovered upstream: TestDiscoveryFileEndToEnd checks these names",
	"sentinel_audit_":       "needs an audit sink: modules/audit's TestElasticsearchBulkItems and TestSinkDownAndRestart check these names",
}

// docMetricNames returns the metric names README.md and docs/*.md cite,
// with the pages citing each. Names of Caddy modules (`sentinel_route`,
// `sentinel_weighted`, …) and ABI versions (`sentinel_v1`) are not
// metrics.
func docMetricNames(t *testing.T) map[string][]string {
	t.Helper()
	modules := map[string]bool{}
	for _, id := range caddy.Modules() {
		modules[id[strings.LastIndexByte(id, '.')+1:]] = true
	}
	abi := regexp.MustCompile(`_v[0-9]+$`)
	pages, _ := filepath.Glob("../docs/*.md")
	pages = append(pages, "../README.md")
	names := map[string][]string{}
	for _, page := range pages {
		src, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docMetricName.FindAllStringSubmatch(string(src), -1) {
			name := m[1]
			// `sentinel_route_*` names a family, not a metric.
			if modules[name] || abi.MatchString(name) || strings.HasSuffix(name, "_") {
				continue
			}
			if !contains(names[name], filepath.Base(page)) {
				names[name] = append(names[name], filepath.Base(page))
			}
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestDocumentedMetricsExported scrapes a running proxy (routes, an
// upstream with health checks and a load-balancing policy, an agent
// filter) and checks that every metric name the docs cite is exported, so
// that a dashboard built from the docs finds its series.
func TestDocumentedMetricsExported(t *testing.T) {
	names := docMetricNames(t)
	for _, want := range []string{"sentinel_route_requests_total", "sentinel_upstream_target_healthy", "sentinel_build_info"} {
		if names[want] == nil {
			t.Errorf("the docs do not mention %s", want)
		}
	}
	be := startBackend(t, "be")
	agent := runUDSAgent(t, &testAgent{name: "a"})
	listen, ops := testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`system { }
listeners {
    listener "main" { address "%s"; }
    listener "ops" { address "%s"; }
}
agents { agent "a" { unix-socket "%s"; timeout-ms 2000; } }
filters {
    filter "a" { type "agent"; agent "a"; }
    filter "small" { type "agent"; agent "a"; inspect-body #true; max-body-bytes 16; failure-mode "open"; }
    filter "rl" { type "rate-limit"; max-rps 1; burst 1; backend "redis"; redis-url "redis://127.0.0.1:1"; }
}
routes {
    route "metrics" { matches { path "/metrics"; }; builtin-handler "metrics"; }
    route "api" { matches { path-prefix "/api"; }; upstream "b"; filters "a"; shadow { upstream "down"; }; }
    route "upload" { matches { path-prefix "/upload"; }; upstream "b"; filters "small"; }
    route "missing" { matches { path-prefix "/missing"; }; upstream "down"; }
    route "limited" { matches { path-prefix "/limited"; }; upstream "b"; filters "rl"; }
}
upstreams {
    upstream "b" {
        target "%s"
        load-balancing "p2c"
        health-check { type "http" { path "/health"; }; interval-secs 1; }
    }
    upstream "down" { target "127.0.0.1:1"; }
}
observability { metrics { enabled #true; address "%s"; path "/metrics"; } }
`, listen, ops, agent, be.addr, ops))
	c := client()
	for range 3 {
		get(t, c, "GET", "http://"+listen+"/api/x", nil)
	}
	get(t, c, "GET", "http://"+listen+"/missing", nil)
	// A limit on a Redis that is not there: the local fallback decides.
	for range 2 {
		get(t, c, "GET", "http://"+listen+"/limited", nil)
	}
	// A body over the agent's limit: skipped (fail-open).
	if res, err := c.Post("http://"+listen+"/upload", "text/plain", strings.NewReader(strings.Repeat("x", 100))); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}

	var body string
	var missing []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body, _ = get(t, c, "GET", "http://"+ops+"/metrics", nil)
		missing = missing[:0]
		labels := map[string]bool{}
		for _, m := range labelName.FindAllStringSubmatch(body, -1) {
			labels[m[1]] = true
		}
		for name, pages := range names {
			if skipped(name) || labels[name] { // a label the docs name, like caddy_version
				continue
			}
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(_bucket|_sum|_count)?[{ ]`).MatchString(body) {
				missing = append(missing, fmt.Sprintf("%s (%s)", name, strings.Join(pages, ", ")))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("documented but not exported: %s", m)
	}
	for _, want := range []string{
		`sentinel_route_requests_total{code="200",namespace="",route="api"} 3`,
		`sentinel_route_requests_total{code="502",namespace="",route="missing"} 1`,
		`sentinel_route_request_duration_seconds_count{namespace="",route="api"} 3`,
		fmt.Sprintf(`sentinel_upstream_target_healthy{namespace="",target=%q,upstream="b"} 1`, be.addr),
		`sentinel_upstream_target_healthy{namespace="",target="127.0.0.1:1",upstream="down"} 1`,
		`sentinel_ratelimit_requests_total{result="admitted",zone="route:limited/filter:rl"} 1`,
		`sentinel_ratelimit_requests_total{result="limited",zone="route:limited/filter:rl"} 1`,
		`sentinel_ratelimit_fallback_total{zone="route:limited/filter:rl"} 2`,
		`sentinel_ratelimit_store_up{zone="route:limited/filter:rl"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Attempts to upstream b (routes api, upload, limited) are observed
	// per upstream, never per target.
	if !regexp.MustCompile(`(?m)^sentinel_upstream_request_duration_seconds_count\{namespace="",upstream="b"\} [1-9]`).MatchString(body) ||
		regexp.MustCompile(`(?m)^sentinel_upstream_request_duration_seconds_bucket\{[^}]*target=`).MatchString(body) {
		t.Error("sentinel_upstream_request_duration_seconds missing for upstream b, or labelled by target")
	}
	if !regexp.MustCompile(`(?m)^sentinel_build_info\{caddy_version="[^"]+",go_version="go[^"]+",version="[^"]+"\} 1$`).MatchString(body) {
		t.Error("sentinel_build_info missing or malformed")
	}
}

// skipped reports whether name is one of notExportedHere.
func skipped(name string) bool {
	for prefix := range notExportedHere {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
