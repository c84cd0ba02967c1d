package ratelimit

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sentinel_rate_limit 5 2 {
		zone api
		key header:X-Api-Key
		on_limit delay
		status_code 503
		message "slow down"
		max_delay 300ms
		max_keys 1000
		fallback_local false
		memcached_ttl 3s
		redis redis://127.0.0.1:6379/1 {
			prefix rl:
			pool_size 4
			timeout 20ms
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxRPS != 5 || h.Burst != 2 || h.Zone != "api" || h.Key != "header:X-Api-Key" || h.OnLimit != "delay" ||
		h.StatusCode != 503 || h.Message != "slow down" || time.Duration(h.MaxDelay) != 300*time.Millisecond ||
		h.MaxKeys != 1000 || h.FallbackLocal == nil || *h.FallbackLocal || time.Duration(h.MemcachedTTL) != 3*time.Second ||
		h.Backend != "redis" || h.Redis.URL != "redis://127.0.0.1:6379/1" || h.Redis.Prefix != "rl:" || h.Redis.PoolSize != 4 ||
		time.Duration(h.Redis.Timeout) != 20*time.Millisecond {
		t.Fatalf("got %+v %+v", h, h.Redis)
	}
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sentinel_rate_limit {
		max_rps 2.5
		burst 7
		backend memcached
		memcached memcache://127.0.0.1:11211 {
			prefix p
			pool_size 2
			timeout 1s
		}
	}`)); err != nil {
		t.Fatal(err)
	}
	if m.MaxRPS != 2.5 || m.Burst != 7 || m.Backend != "memcached" || m.Memcached.URL != "memcache://127.0.0.1:11211" || m.Memcached.PoolSize != 2 {
		t.Fatalf("got %+v %+v", m, m.Memcached)
	}
	for _, tc := range []struct{ in, want string }{
		{`sentinel_rate_limit 1 2 3`, "wrong argument count"},
		{`sentinel_rate_limit x`, `max_rps "x"`},
		{`sentinel_rate_limit 1 y`, `burst "y"`},
		{"sentinel_rate_limit {\n burst\n}", "wrong argument count"},
		{"sentinel_rate_limit {\n burst z\n}", `burst "z"`},
		{"sentinel_rate_limit {\n max_delay soon\n}", `max_delay "soon"`},
		{"sentinel_rate_limit {\n fallback_local maybe\n}", `fallback_local "maybe"`},
		{"sentinel_rate_limit {\n colour red\n}", "unrecognized sentinel_rate_limit subdirective 'colour'"},
		{"sentinel_rate_limit {\n redis a b\n}", "wrong argument count"},
		{"sentinel_rate_limit {\n redis {\n pool_size x\n }\n}", `redis pool_size "x"`},
		{"sentinel_rate_limit {\n redis {\n timeout x\n }\n}", `redis timeout "x"`},
		{"sentinel_rate_limit {\n redis {\n db 1\n }\n}", "unrecognized redis subdirective 'db'"},
	} {
		err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_rate_limit 3`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_rate_limit x`)}); err == nil {
		t.Fatal("want an error")
	}
}

// TestCaddyfileServer: the directive in a Caddyfile site, through a real
// server.
func TestCaddyfileServer(t *testing.T) {
	port := testutil.FreePort(t)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: 2993})
	tester.InitServer(fmt.Sprintf(`
	{
		admin localhost:2993
		persist_config off
		auto_https off
		http_port %d
	}
	http://:%d {
		bind 127.0.0.1
		sentinel_rate_limit 1 2 {
			message "later"
		}
		respond "hello"
	}`, port, port), "caddyfile")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	tester.AssertGetResponse(url, http.StatusOK, "hello")
	tester.AssertGetResponse(url, http.StatusOK, "hello")
	res, body := tester.AssertGetResponse(url, http.StatusTooManyRequests, "later")
	if res.Header.Get("Retry-After") != "1" || res.Header.Get("X-RateLimit-Limit") != "1" {
		t.Errorf("headers %v", res.Header)
	}
	_ = body
}
