package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestCacheKDL runs the response cache as a KDL config configures it: a
// route with `cache { }` in front of a real backend, the top-level
// storage block with Cache-Status, the cache-purge builtin behind the
// admin-api's operate token (read tokens and no token refused), the
// cache-stats builtin, and the cache metrics.
func TestCacheKDL(t *testing.T) {
	be := startBackend(t, "be")
	listen, ops, api := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`system { }
listeners {
    listener "main" { address "%s"; }
    listener "ops" { address "%s"; }
}
admin-api { address "%s"; auth { token "op-tok" scope="operate"; token "read-tok" scope="read"; } }
cache { backend "memory"; max-size "8MB"; status-header #true; status-header-name "edge"; }
routes {
    route "metrics" { matches { path "/metrics"; }; builtin-handler "metrics"; }
    route "purge" { priority "high"; matches { method "PURGE"; }; builtin-handler "cache-purge"; }
    route "stats" { matches { path "/_cache/stats"; }; builtin-handler "cache-stats"; }
    route "api" {
        matches { path-prefix "/api"; }
        upstream "b"
        cache { enabled #true; default-ttl-secs 60; exclude-paths "/api/live"; ignore-query-params "utm"; }
    }
}
upstreams { upstream "b" { target "%s"; } }
observability { metrics { enabled #true; address "%s"; path "/metrics"; } }
`, listen, ops, api, be.addr, ops))
	c := client()
	base := "http://" + listen

	_, first, h := get(t, c, "GET", base+"/api/x?a=1", nil)
	if got := h.Get("Cache-Status"); got != "edge; fwd=uri-miss; stored" {
		t.Fatalf("first request: Cache-Status %q", got)
	}
	_, second, h := get(t, c, "GET", base+"/api/x?a=1&utm=z", nil)
	if !strings.HasPrefix(h.Get("Cache-Status"), "edge; hit; ttl=") || second != first || be.hits.Load() != 1 {
		t.Fatalf("second request not a hit: %q %q, backend saw %d", h.Get("Cache-Status"), second, be.hits.Load())
	}
	if _, _, h = get(t, c, "GET", base+"/api/x?a=2", nil); !strings.Contains(h.Get("Cache-Status"), "uri-miss") {
		t.Errorf("another query string was a hit: %q", h.Get("Cache-Status"))
	}
	if _, _, h = get(t, c, "GET", base+"/api/live/1", nil); h.Get("Cache-Status") != "edge; fwd=bypass" {
		t.Errorf("excluded path: %q", h.Get("Cache-Status"))
	}

	// Purge: no token, a read token: 401; the operate token purges.
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer read-tok"}} {
		if code, body, _ := get(t, c, "PURGE", base+"/api/x", hdr); code != http.StatusUnauthorized {
			t.Fatalf("purge with %v: %d %s", hdr, code, body)
		}
	}
	if _, _, h = get(t, c, "GET", base+"/api/x?a=1", nil); !strings.Contains(h.Get("Cache-Status"), "hit") {
		t.Fatal("a refused purge removed the entry")
	}
	code, body, _ := get(t, c, "PURGE", base+"/api/*", map[string]string{"Authorization": "Bearer op-tok", "X-Purge-Wildcard": "true"})
	if code != http.StatusOK || jsonBody(t, body)["purged"].(float64) != 2 {
		t.Fatalf("wildcard purge: %d %s", code, body)
	}
	if _, _, h = get(t, c, "GET", base+"/api/x?a=1", nil); !strings.Contains(h.Get("Cache-Status"), "uri-miss") {
		t.Fatalf("after the purge: %q", h.Get("Cache-Status"))
	}

	_, body, _ = get(t, c, "GET", base+"/_cache/stats", nil)
	st := jsonBody(t, body)
	if st["storage"] != "default" || st["backend"] != "memory" || st["hits"].(float64) < 2 || st["purged"].(float64) != 2 {
		t.Fatalf("stats: %s", body)
	}

	_, body, _ = get(t, c, "GET", "http://"+ops+"/metrics", nil)
	for _, want := range []string{
		`sentinel_cache_requests_total{result="hit",storage="default"} 2`,
		`sentinel_cache_requests_total{result="bypass",storage="default"} 1`,
		`sentinel_cache_stores_total{storage="default"}`,
		`sentinel_cache_entries{storage="default"}`,
		`sentinel_cache_bytes{storage="default"}`,
		`sentinel_cache_evictions_total{storage="default"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
