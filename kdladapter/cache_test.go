package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/modules/cache"
)

const cacheUpstream = "upstreams { upstream \"b\" { target \"127.0.0.1:9000\"; } }\n"

// routeHandlers returns the handlers of route in the adapted config.
func routeHandlers(t *testing.T, out []byte, route string) []map[string]json.RawMessage {
	t.Helper()
	for _, routes := range serverRoutes[map[string]json.RawMessage](t, out) {
		for _, hs := range routes {
			if len(hs) > 0 && string(hs[0]["route"]) == `"`+route+`"` {
				return hs
			}
		}
	}
	t.Fatalf("route %q not found in %s", route, out)
	return nil
}

// handlerOf finds the handler named name among hs and decodes it into v.
func handlerOf(t *testing.T, hs []map[string]json.RawMessage, name string, v any) int {
	t.Helper()
	for i, h := range hs {
		if string(h["handler"]) == `"`+name+`"` {
			b, _ := json.Marshal(h)
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatal(err)
			}
			return i
		}
	}
	t.Fatalf("no %s handler in %v", name, hs)
	return -1
}

// TestRouteCacheTyped: every key of a route's cache block reaches its
// field of cache.Handler, the original's defaults apply, and the handler
// sits just before reverse_proxy; the storage block fills the storage,
// Cache-Status and the lock timeout.
func TestRouteCacheTyped(t *testing.T) {
	out, warns := mustAdapt(t, minimal+cacheUpstream+`
cache { backend "hybrid"; max-size "64MB"; disk-path "/var/cache/sentinel"; disk-shards 8; disk-max-size "1GB"; lock-timeout 3; status-header #true; status-header-name "edge"; }
routes {
    route "api" {
        upstream "b"
        cache {
            enabled #true
            default-ttl-secs 120
            max-size-bytes "1MB"
            cache-private #true
            stale-while-revalidate-secs 0
            stale-if-error-secs 30
            cacheable-methods "get" "HEAD"
            cacheable-status-codes 200 206 404
            vary-headers "accept-encoding"
            ignore-query-params "utm_source"
            exclude-extensions "php"
            exclude-paths "/admin"
        }
    }
    route "plain" { upstream "b"; cache { enabled #true; } }
    route "off" { upstream "b"; cache { default-ttl-secs 5; } }
}
`)
	if len(warns) != 0 {
		t.Fatalf("warnings: %s", warningsText(warns))
	}
	hs := routeHandlers(t, out, "api")
	var c cache.Handler
	i := handlerOf(t, hs, "sentinel_cache", &c)
	if string(hs[i+1]["handler"]) != `"reverse_proxy"` {
		t.Errorf("the cache is not just before reverse_proxy: %v", hs)
	}
	want := cache.Handler{
		Storage:              cache.Storage{Name: "default", Backend: "hybrid", MaxSize: 64 << 20, DiskPath: "/var/cache/sentinel", DiskShards: 8, DiskMaxSize: 1 << 30},
		DefaultTTL:           caddy.Duration(120 * time.Second),
		MaxEntryBytes:        1 << 20,
		CachePrivate:         true,
		StaleWhileRevalidate: -1,
		StaleIfError:         caddy.Duration(30 * time.Second),
		Methods:              []string{"GET", "HEAD"},
		Statuses:             []int{200, 404},
		VaryHeaders:          []string{"accept-encoding"},
		IgnoreQueryParams:    []string{"utm_source"},
		ExcludeExtensions:    []string{"php"},
		ExcludePaths:         []string{"/admin"},
		StatusHeader:         "edge",
		LockTimeout:          caddy.Duration(3 * time.Second),
		Route:                "api",
	}
	if got, _ := json.Marshal(c); string(got) != string(mustJSON(want)) {
		t.Errorf("handler:\n got %s\nwant %s", got, mustJSON(want))
	}
	var plain cache.Handler
	handlerOf(t, routeHandlers(t, out, "plain"), "sentinel_cache", &plain)
	if plain.DefaultTTL != caddy.Duration(time.Hour) || plain.MaxEntryBytes != 10<<20 ||
		plain.StaleWhileRevalidate != caddy.Duration(time.Minute) || plain.StaleIfError != caddy.Duration(5*time.Minute) {
		t.Errorf("the original's defaults: %+v", plain)
	}
	for _, h := range routeHandlers(t, out, "off") {
		if string(h["handler"]) == `"sentinel_cache"` {
			t.Error("a cache without enabled #true is on")
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCacheBuiltins: cache-stats is open; cache-purge carries the
// admin-api's tokens of scope operate or admin (hashes only), and is an
// error without any.
func TestCacheBuiltins(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`
admin-api { auth { token "op-token" scope="operate"; token "read-token" scope="read"; token "admin-token"; } }
routes {
    route "purge" { matches { method "PURGE"; }; builtin-handler "cache_purge"; }
    route "stats" { matches { path "/_stats"; }; builtin-handler "cache-stats"; }
}
`)
	if strings.Contains(string(out), "op-token") || strings.Contains(string(out), "admin-token") {
		t.Fatal("a token in clear in the JSON")
	}
	var purge cache.Admin
	handlerOf(t, routeHandlers(t, out, "purge"), "sentinel_cache_admin", &purge)
	if purge.Action != "purge" || len(purge.Tokens) != 2 || purge.Storage.Name != "default" {
		t.Errorf("purge handler: %+v", purge)
	}
	var stats cache.Admin
	handlerOf(t, routeHandlers(t, out, "stats"), "sentinel_cache_admin", &stats)
	if stats.Action != "stats" || len(stats.Tokens) != 0 {
		t.Errorf("stats handler: %+v", stats)
	}
}

// TestCacheErrors: bad values are errors at their file:line:col.
func TestCacheErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"unknown key", minimal + cacheUpstream + "routes { route \"a\" { upstream \"b\"; cache { enabled #true; default-ttl 5; } } }",
			"test.kdl:9:59: unknown setting \"default-ttl\" in routes.route.cache"},
		{"ttl type", minimal + cacheUpstream + "routes { route \"a\" { upstream \"b\"; cache { enabled #true; default-ttl-secs \"1h\"; } } }",
			"test.kdl:9:76: default-ttl-secs takes an integer, not string \"1h\""},
		{"status code", minimal + cacheUpstream + "routes { route \"a\" { upstream \"b\"; cache { cacheable-status-codes 200 99; } } }",
			"test.kdl:9:71: cacheable-status-codes takes integers between 100 and 599, not 99"},
		{"method", minimal + cacheUpstream + "routes { route \"a\" { upstream \"b\"; cache { cacheable-methods \"GET HEAD\"; } } }",
			"test.kdl:9:62: cacheable-methods: \"GET HEAD\" is not an HTTP method"},
		{"backend", minimal + "cache { backend \"ram\"; }", "test.kdl:8:17: backend \"ram\" is not one of memory, disk, hybrid, redis"},
		{"disk without path", minimal + "cache { backend \"disk\"; }", "test.kdl:8:1: cache: backend \"disk\" needs disk-path"},
		{"shards", minimal + "cache { disk-shards 0; }", "test.kdl:8:21: disk-shards must be between 1 and 256, not 0"},
		{"status name", minimal + "cache { status-header #true; status-header-name \"a b\"; }", "test.kdl:8:49: status-header-name \"a b\" must be a token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := adaptString(t, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestCacheWarnings: a storage that is off, and the policies.cache block
// the original does not read either, warn.
func TestCacheWarnings(t *testing.T) {
	out, warns := mustAdapt(t, minimal+cacheUpstream+`cache { enabled #false; }
routes {
    route "a" { upstream "b"; cache { enabled #true; }; policies { cache { ttl-secs 5; }; }; }
    route "h" { builtin-handler "health"; cache { enabled #true; }; }
}`)
	text := warningsText(warns)
	for _, want := range []string{"the top-level cache block is `enabled #false`", "policies.cache", "put `cache { enabled #true", "route \"h\": a builtin-handler's answers are not cached"} {
		if !strings.Contains(text, want) {
			t.Errorf("warnings lack %q: %s", want, text)
		}
	}
	if strings.Contains(string(out), "sentinel_cache") {
		t.Error("a cache handler although the storage is off")
	}
}

// TestCachePurgeWithoutToken: without an admin-api token of scope
// operate or admin (the original had no authentication), the purge
// endpoint refuses every request, with a warning at the builtin.
func TestCachePurgeWithoutToken(t *testing.T) {
	for _, src := range []string{
		minimal + "routes { route \"p\" { builtin-handler \"cache-purge\"; } }",
		minimal + "admin-api { auth { token \"r\" scope=\"read\"; } }\nroutes { route \"p\" { builtin-handler \"cache-purge\"; } }",
	} {
		out, warns := mustAdapt(t, src)
		if !strings.Contains(warningsText(warns), `"cache-purge" answers 403 to every request`) {
			t.Errorf("no warning: %s", warningsText(warns))
		}
		hs := routeHandlers(t, out, "p")
		if len(hs) != 2 || string(hs[1]["handler"]) != `"static_response"` || string(hs[1]["status_code"]) != `"403"` {
			t.Errorf("handlers: %v", hs)
		}
	}
}

// TestCacheBackendBlock: the original's examples' `backend "memory" {
// max-size-mb 512 }` is accepted with a warning.
func TestCacheBackendBlock(t *testing.T) {
	_, warns := mustAdapt(t, minimal+"cache { backend \"memory\" { max-size-mb 512; }; }")
	if !strings.Contains(warningsText(warns), "give max-size (bytes)") {
		t.Errorf("warnings: %s", warningsText(warns))
	}
}

// TestCacheRedisBackend: the top-level cache block's redis-* settings
// (an extension) reach the storage of every route's cache and of the
// builtins; the password in the URL is never in an error; redis-*
// settings without backend "redis" warn and are dropped.
func TestCacheRedisBackend(t *testing.T) {
	out, _ := mustAdapt(t, minimal+cacheUpstream+`cache {
    backend "redis"
    redis-url "rediss://:pw@cache.internal:6380/1"
    redis-prefix "shop:cache:"
    redis-pool-size 20
    redis-timeout-ms 80
    redis-max-entry-size "512KB"
    max-size 1048576
}
admin-api { auth { token "op-token" scope="operate"; } }
routes {
    route "a" { upstream "b"; cache { enabled #true; }; }
    route "purge" { matches { method "PURGE"; }; builtin-handler "cache-purge"; }
}`)
	var h cache.Handler
	handlerOf(t, routeHandlers(t, out, "a"), "sentinel_cache", &h)
	s := h.Storage
	if s.Backend != "redis" || s.Redis == nil || s.Redis.URL != "rediss://:pw@cache.internal:6380/1" || s.Redis.Prefix != "shop:cache:" ||
		s.Redis.PoolSize != 20 || time.Duration(s.Redis.Timeout) != 80*time.Millisecond || s.RedisMaxEntryBytes != 512<<10 || s.MaxSize != 1048576 {
		t.Errorf("storage: %+v redis %+v", s, s.Redis)
	}
	var purge cache.Admin
	handlerOf(t, routeHandlers(t, out, "purge"), "sentinel_cache_admin", &purge)
	if purge.Storage.Backend != "redis" || purge.Storage.Redis == nil || purge.Storage.Redis.URL != s.Redis.URL {
		t.Errorf("the purge's storage is not the routes': %+v", purge.Storage)
	}

	_, _, err := adaptString(t, minimal+`cache { backend "redis"; redis-url "http://:hunter2@x:1"; }`)
	if err == nil || !strings.Contains(err.Error(), "test.kdl:8:26: cache: redis url") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad url: %v", err)
	}

	out, warns := mustAdapt(t, minimal+cacheUpstream+`cache { redis-url "redis://x:1"; }
routes { route "a" { upstream "b"; cache { enabled #true; }; } }`)
	if !strings.Contains(warningsText(warns), `redis-* settings have no effect without backend "redis"`) {
		t.Errorf("no warning: %s", warningsText(warns))
	}
	if strings.Contains(string(out), "redis://x:1") {
		t.Error("redis settings kept without the redis backend")
	}
}
