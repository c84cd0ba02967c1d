package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestCacheTwoProxiesOneRedis: two sentinel processes whose top-level
// cache block is `backend "redis"` on one redis-server. A response
// cached by one is a hit on the other; a purge on one removes it from
// both; Redis killed: requests are still served (a miss, then hits of
// the process's local store), never a 5xx, and a purge says it was
// incomplete; Redis back: shared again.
func TestCacheTwoProxiesOneRedis(t *testing.T) {
	bin := testutil.Build(t, "./cmd/sentinel")
	redisSrv := storetest.Redis(t)
	b := startBackend(t, "b")
	var bases, metrics []string
	for i := range 2 {
		addr, api, ops := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
		bases = append(bases, "http://"+addr)
		metrics = append(metrics, "http://"+ops+"/metrics")
		cfg := filepath.Join(t.TempDir(), "sentinel.kdl")
		err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
system { caddy-admin "off"; }
listeners { listener "http" { address %q; } }
admin-api { address %q; auth { token "op-tok" scope="operate"; } }
cache {
    backend "redis"
    redis-url %q
    redis-prefix "it:"
    redis-timeout-ms 200
    status-header #true
    status-header-name "p%d"
}
upstreams { upstream "b" { target %q; } }
routes {
    route "purge" { priority "high"; matches { method "PURGE"; }; builtin-handler "cache-purge"; }
    route "stats" { matches { path "/_cache/stats"; }; builtin-handler "cache-stats"; }
    route "api" { upstream "b"; cache { enabled #true; default-ttl-secs 60; }; }
}
observability { metrics { enabled #true; address %q; path "/metrics"; } }
`, addr, api, "redis://"+redisSrv.Addr, i, b.addr, ops)), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		startSentinel(t, fmt.Sprintf("sentinel-%d", i), bin, cfg)
	}
	for _, base := range bases {
		waitUp(t, base+"/_cache/stats")
	}
	c := client()
	// The same site through either replica.
	req := func(method, url string, hdr ...string) (int, string, string) {
		t.Helper()
		r, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Host = "shop.example"
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := c.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Cache-Status"), string(body)
	}
	expect := func(what string, code int, status, body string, wantCode int, wantStatus string) {
		t.Helper()
		if code != wantCode || !strings.HasPrefix(status, wantStatus) {
			t.Fatalf("%s: %d, Cache-Status %q (%s); want %d, %q", what, code, status, body, wantCode, wantStatus)
		}
	}

	code, st, body := req("GET", bases[0]+"/item/1")
	expect("first request on proxy 0", code, st, body, 200, "p0; fwd=uri-miss; stored")
	code, st, body = req("GET", bases[1]+"/item/1")
	expect("same URL on proxy 1", code, st, body, 200, "p1; hit; ttl=")
	req("GET", bases[1]+"/item/2")
	if n := b.hits.Load(); n != 2 {
		t.Fatalf("the backend saw %d requests, want 2 (one per URL)", n)
	}

	// A wildcard purge on proxy 1 removes both URLs for proxy 0 too.
	code, _, body = req("PURGE", bases[1]+"/item/*", "Authorization", "Bearer op-tok", "X-Purge-Wildcard", "true")
	if code != 200 || !strings.Contains(body, `"purged":2`) {
		t.Fatalf("purge: %d %s", code, body)
	}
	code, st, body = req("GET", bases[0]+"/item/1")
	expect("proxy 0 after the purge", code, st, body, 200, "p0; fwd=uri-miss")
	code, st, body = req("GET", bases[0]+"/item/2")
	expect("proxy 0 after the purge", code, st, body, 200, "p0; fwd=uri-miss")
	_, _, body = req("GET", bases[0]+"/_cache/stats")
	if !strings.Contains(body, `"backend":"redis"`) || !strings.Contains(body, `"up":true`) {
		t.Errorf("stats: %s", body)
	}
	scrape := func(want string) {
		t.Helper()
		_, body, _ := get(t, c, "GET", metrics[0], nil)
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	scrape(`sentinel_cache_redis_up{storage="default"} 1`)

	// Redis killed: served, never a 5xx.
	redisSrv.Stop()
	for i := range 5 {
		for p, base := range bases {
			code, st, body = req("GET", base+"/down")
			if code != 200 {
				t.Fatalf("request %d on proxy %d with Redis down: %d %s", i, p, code, body)
			}
			if i > 1 && !strings.Contains(st, "hit") {
				t.Errorf("request %d on proxy %d with Redis down: %q, want a hit of the local store", i, p, st)
			}
		}
	}
	scrape(`sentinel_cache_redis_up{storage="default"} 0`)
	code, _, body = req("PURGE", bases[0]+"/down", "Authorization", "Bearer op-tok")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "local entries") {
		t.Errorf("purge with Redis down: %d %s", code, body)
	}

	// Redis back (empty, as after a crash): shared again.
	redisSrv.Start()
	for p, base := range bases {
		eventually(t, fmt.Sprintf("proxy %d uses Redis again", p), func() bool {
			req("GET", base+"/probe")
			_, _, body := req("GET", base+"/_cache/stats")
			return strings.Contains(body, `"up":true`)
		})
	}
	before := b.hits.Load()
	code, st, body = req("GET", bases[0]+"/item/3")
	expect("proxy 0, Redis back", code, st, body, 200, "p0; fwd=uri-miss; stored")
	code, st, body = req("GET", bases[1]+"/item/3")
	expect("proxy 1, Redis back", code, st, body, 200, "p1; hit; ttl=")
	if n := b.hits.Load() - before; n != 1 {
		t.Errorf("Redis back: the backend saw %d requests for one URL through two proxies, want 1", n)
	}
}
