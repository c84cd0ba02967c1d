package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestRateLimitKDL: the rate-limit filter, route policies and the global
// rate-limits block through the real proxy (in process), with the
// X-RateLimit-* headers and Retry-After.
func TestRateLimitKDL(t *testing.T) {
	b := startBackend(t, "b")
	addr := testutil.FreeAddr(t)
	tc := loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "http" { address %q; } }
upstreams { upstream "b" { target %q; } }
rate-limits {
    default-burst 2
    global { max-rps 1000; burst 1000; }
}
filters {
    filter "per-key" {
        type "rate-limit"
        max-rps 1
        burst 3
        key "header:X-Api-Key"
        status-code 429
        message "too many"
    }
}
routes {
    route "api" {
        matches { path-prefix "/api"; }
        upstream "b"
        filters "per-key"
    }
    route "web" {
        matches { path-prefix "/web"; }
        upstream "b"
        policies { rate-limit { requests-per-second 1; key "path"; } }
    }
}
`, addr, b.addr))
	_ = tc
	c := client()
	base := "http://" + addr
	for i := range 3 {
		status, body, hdr := get(t, c, "GET", base+"/api/x", map[string]string{"X-Api-Key": "k1"})
		if status != 200 || !strings.HasPrefix(body, "b ") || hdr.Get("X-RateLimit-Limit") != "1" || hdr.Get("X-RateLimit-Remaining") != fmt.Sprint(2-i) {
			t.Fatalf("request %d: %d %q %v", i, status, body, hdr)
		}
	}
	status, body, hdr := get(t, c, "GET", base+"/api/x", map[string]string{"X-Api-Key": "k1"})
	if status != 429 || body != "too many" || hdr.Get("Retry-After") != "1" || hdr.Get("X-RateLimit-Reset") != "3" {
		t.Fatalf("over the limit: %d %q %v", status, body, hdr)
	}
	// Another key, its own bucket.
	if status, _, _ := get(t, c, "GET", base+"/api/x", map[string]string{"X-Api-Key": "k2"}); status != 200 {
		t.Fatalf("other key: %d", status)
	}
	// The route policy: burst 2 from rate-limits' default-burst, per path.
	for range 2 {
		if status, _, _ := get(t, c, "GET", base+"/web/a", nil); status != 200 {
			t.Fatalf("web: %d", status)
		}
	}
	if status, _, _ := get(t, c, "GET", base+"/web/a", nil); status != 429 {
		t.Fatalf("web over the limit: %d", status)
	}
	if status, _, _ := get(t, c, "GET", base+"/web/b", nil); status != 200 {
		t.Fatalf("web other path: %d", status)
	}
}

// TestRateLimitThreeProxiesOneRedis: three sentinel processes with the
// same config share one limit on one redis-server (admitted rate within
// ±10 % of the limit); then Redis is killed: requests keep flowing under
// each process's local buckets, never a 5xx.
func TestRateLimitThreeProxiesOneRedis(t *testing.T) {
	bin := testutil.Build(t, "./cmd/sentinel")
	testutil.Exclusive(t) // after the build: the rates are timing-sensitive, the build is not
	redisSrv := storetest.Redis(t)
	b := startBackend(t, "b")
	const rps, burst = 40, 4
	var addrs []string
	var procs []*testutil.Process
	for i := range 3 {
		addr := testutil.FreeAddr(t)
		addrs = append(addrs, addr)
		cfg := filepath.Join(t.TempDir(), "sentinel.kdl")
		err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
system { caddy-admin "off"; }
listeners { listener "http" { address %q; } }
upstreams { upstream "b" { target %q; } }
filters {
    filter "shared" {
        type "rate-limit"
        max-rps %d
        burst %d
        key "route"
        backend "redis"
        redis-url %q
        redis-timeout-ms 250
        redis-fallback-local #true
    }
}
routes { route "api" { upstream "b"; filters "shared"; } }
`, addr, b.addr, rps, burst, "redis://"+redisSrv.Addr)), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, startSentinel(t, fmt.Sprintf("sentinel-%d", i), bin, cfg))
	}
	for _, a := range addrs {
		waitUp(t, "http://"+a+"/")
	}
	// Let the waits' requests age out of the bucket.
	time.Sleep(time.Second)

	// Phase 1: the shared limit. A Redis call slower than the timeout
	// (the machine busy with other tests) makes that proxy limit with its
	// own buckets for a moment, as designed, and admits more than the
	// shared limit: such a window is measured again (up to three times).
	const window = 3 * time.Second
	fallbacks := func() (n int) {
		for _, p := range procs {
			n += strings.Count(p.Output(), "rate limit store unavailable")
		}
		return n
	}
	within := float64(rps)*window.Seconds() + burst
	var counts result
	disturbed := true
	for attempt := 1; attempt <= 3 && disturbed; attempt++ {
		before := fallbacks()
		counts = drive(addrs, window)
		if disturbed = fallbacks() > before; disturbed {
			t.Logf("phase 1, attempt %d: the store fell back to local buckets during the window (%d admitted); measuring again", attempt, counts.ok)
			time.Sleep(time.Second)
		}
	}
	if disturbed {
		if os.Getenv("CI") != "" {
			t.Fatal("phase 1: the Redis store fell back to local buckets in every window (Redis calls slower than the timeout)")
		}
		t.Skip("phase 1: the Redis store fell back to local buckets in every window (machine too busy)")
	}
	if counts.other > 0 {
		t.Errorf("phase 1: %d responses neither 200 nor 429 (first: %s)", counts.other, counts.first)
	}
	got := float64(counts.ok)
	t.Logf("3 proxies, one Redis, limit %d rps + burst %d over %s: %d admitted (%.1f%% of %.0f), %d rejected",
		rps, burst, window, counts.ok, 100*got/within, within, counts.limited)
	if got < within*0.9 || got > within*1.1 {
		t.Errorf("admitted %.0f, want %.0f ±10%%", got, within)
	}

	// Phase 2: Redis killed mid-traffic.
	done := make(chan struct{})
	var phase2 result
	go func() { phase2 = drive(addrs, 2*time.Second); close(done) }()
	time.Sleep(300 * time.Millisecond)
	redisSrv.Stop()
	<-done
	if phase2.other > 0 {
		t.Errorf("Redis down: %d responses neither 200 nor 429 (first: %s)", phase2.other, phase2.first)
	}
	if phase2.ok == 0 {
		t.Error("Redis down: nothing admitted")
	}
	t.Logf("Redis killed after 300ms of 2s: %d admitted, %d rejected, %d other", phase2.ok, phase2.limited, phase2.other)
}

type result struct {
	ok, limited, other int64
	first              string
}

// drive sends requests to the proxies, two clients per proxy, for d.
func drive(addrs []string, d time.Duration) result {
	var ok, limited, other atomic.Int64
	var firstMu sync.Mutex
	first := ""
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for _, a := range addrs {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 5 * time.Second}
				for time.Now().Before(stop) {
					res, err := c.Get("http://" + a + "/x")
					if err != nil {
						other.Add(1)
						firstMu.Lock()
						if first == "" {
							first = err.Error()
						}
						firstMu.Unlock()
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					switch res.StatusCode {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
						time.Sleep(5 * time.Millisecond)
					default:
						other.Add(1)
						firstMu.Lock()
						if first == "" {
							first = res.Status
						}
						firstMu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	return result{ok: ok.Load(), limited: limited.Load(), other: other.Load(), first: first}
}

// startSentinel runs the binary on a config until the test ends,
// logging its output when the test fails.
func startSentinel(t *testing.T, name, bin, config string) *testutil.Process {
	t.Helper()
	p := testutil.NewProcess(t, name, append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir()),
		bin, "run", "--config", config)
	p.Start()
	return p
}

// waitUp waits until url answers.
func waitUp(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
