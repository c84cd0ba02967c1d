package ratelimit

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// processes returns n zones of h that share nothing but the store, as n
// proxy processes with the same config would.
func processes(t *testing.T, h *Handler, n int) []*zone {
	t.Helper()
	out := []*zone{h.zone}
	for len(out) < n {
		z, err := newZone(h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = z.Destruct() })
		out = append(out, z)
	}
	return out
}

// hammer sends requests of one key through the zones, concurrently,
// for d, and returns how many were admitted and how many failed.
func hammer(zs []*zone, k key, d time.Duration) (admitted, failed int64) {
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for _, z := range zs {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					d, err := z.take(context.Background(), k, time.Now())
					switch {
					case err != nil:
						bad.Add(1)
					case d.allowed:
						ok.Add(1)
					default:
						time.Sleep(time.Millisecond)
					}
				}
			}()
		}
	}
	wg.Wait()
	return ok.Load(), bad.Load()
}

func within(t *testing.T, what string, got, want float64, tol float64) {
	t.Helper()
	if got < want*(1-tol) || got > want*(1+tol) {
		t.Errorf("%s: %.0f admitted, want %.0f ±%.0f%%", what, got, want, tol*100)
	} else {
		t.Logf("%s: %.0f admitted, limit %.0f", what, got, want)
	}
}

// TestRedisSharedLimit: three processes on one Redis enforce one limit
// (GCRA in one script on the server's clock).
func TestRedisSharedLimit(t *testing.T) {
	testutil.Exclusive(t)
	srv := storetest.Redis(t)
	h := provision(t, &Handler{Zone: "shared-" + t.Name(), MaxRPS: 100, Burst: 10, Backend: "redis", Redis: &sharedstore.RedisConfig{URL: srv.URL(), Timeout: 500 * 1e6}})
	zs := processes(t, h, 3)
	admitted, failed := hammer(zs, key{a: "203.0.113.9"}, 2*time.Second)
	if failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
	within(t, "3 processes, 100 rps + burst 10, 2s", float64(admitted), 210, 0.10)
}

// TestRedisOneRoundTrip: a request is one EVALSHA (the script is loaded
// once), on one connection.
func TestRedisOneRoundTrip(t *testing.T) {
	srv := storetest.Redis(t)
	h := provision(t, &Handler{Zone: "rt", MaxRPS: 1000, Burst: 1000, Backend: "redis", Redis: &sharedstore.RedisConfig{URL: srv.URL(), Timeout: 500 * 1e6}})
	for i := range 50 {
		if w := do(t, h, "192.0.2."+strconv.Itoa(i%3), "/", nil); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	stats := redisInfo(t, srv.Addr, "commandstats")
	calls := func(cmd string) int {
		m := regexp.MustCompile(`cmdstat_` + cmd + `:calls=(\d+)`).FindStringSubmatch(stats)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// One EVALSHA per request; the first also EVALs the script, which
	// the server did not know yet.
	if e, es := calls("eval"), calls("evalsha"); es != 50 || e > 1 {
		t.Errorf("50 requests: %d EVAL + %d EVALSHA, want 50 EVALSHA and at most one EVAL\n%s", e, es, stats)
	}
}

func redisInfo(t *testing.T, addr, section string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisDownFallsBackAndRecovers: Redis killed mid-traffic, requests
// keep flowing under the local buckets (no errors, no waits for the
// timeout on every request); Redis back, it is used again.
func TestRedisDownFallsBackAndRecovers(t *testing.T) {
	srv := storetest.Redis(t)
	h := provision(t, &Handler{Zone: "fb", MaxRPS: 1000, Burst: 5, Backend: "redis", Redis: &sharedstore.RedisConfig{URL: srv.URL(), Timeout: 200 * 1e6}})
	k := key{a: "198.51.100.1"}
	take := func() (decision, error) { return h.zone.take(context.Background(), k, time.Now()) }
	if _, err := take(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	for range 200 {
		if _, err := take(); err != nil {
			t.Fatalf("with Redis down and fallback on: %v", err)
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("200 requests took %s with Redis down: each waited for the store", el)
	}
	// The fallback limits too: the local bucket of 5 is soon empty.
	rejected := 0
	for range 20 {
		if d, _ := take(); !d.allowed {
			rejected++
		}
	}
	if rejected == 0 {
		t.Error("the local fallback did not limit")
	}
	srv.Start()
	testutilEventually(t, "Redis used again", func() bool {
		_, _ = take()
		return strings.Contains(redisInfo(t, srv.Addr, "commandstats"), "cmdstat_eval")
	})
}

// TestRedisDownWithoutFallbackFails: redis-fallback-local #false: 503.
func TestRedisDownWithoutFallbackFails(t *testing.T) {
	addr := testutil.FreeAddr(t) // nothing listens
	f := false
	h := provision(t, &Handler{Zone: "nofb", Backend: "redis", FallbackLocal: &f, Redis: &sharedstore.RedisConfig{URL: "redis://:hunter2@" + addr}})
	w := do(t, h, "192.0.2.1", "/", nil)
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("got %d %v", w.Code, w.Header())
	}
	_, err := h.zone.take(context.Background(), key{}, time.Now())
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v (must not show the password)", err)
	}
}

// TestMemcachedSharedLimit: two processes on one memcached share the
// one-second windows.
func TestMemcachedSharedLimit(t *testing.T) {
	testutil.Exclusive(t)
	srv := storetest.Memcached(t)
	h := provision(t, &Handler{Zone: "mc " + t.Name(), MaxRPS: 100, Backend: "memcached", Memcached: &sharedstore.MemcachedConfig{URL: srv.URL(), Timeout: 500 * 1e6}})
	zs := processes(t, h, 3)
	// Start on a window boundary so that 2s are two windows, not three.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	admitted, failed := hammer(zs, key{a: "203.0.113.9"}, 1980*time.Millisecond)
	if failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
	within(t, "3 processes, 100 rps, 2 windows", float64(admitted), 200, 0.10)
}

// TestMemcachedDownFallsBack: memcached killed, requests flow locally;
// back, it is used again.
func TestMemcachedDownFallsBack(t *testing.T) {
	srv := storetest.Memcached(t)
	h := provision(t, &Handler{Zone: "mcfb", MaxRPS: 1000, Backend: "memcached", Memcached: &sharedstore.MemcachedConfig{URL: srv.URL()}})
	k := key{a: "198.51.100.1"}
	if _, err := h.zone.take(context.Background(), k, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for range 100 {
		if _, err := h.zone.take(context.Background(), k, time.Now()); err != nil {
			t.Fatalf("with memcached down and fallback on: %v", err)
		}
	}
	srv.Start()
	testutilEventually(t, "memcached used again", func() bool {
		d, _ := h.zone.take(context.Background(), k, time.Now())
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("stats\r\n"))
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		return d.allowed && regexp.MustCompile(`STAT (incr_misses|incr_hits) [1-9]`).Match(buf[:n])
	})
}

func testutilEventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMemcachedDelay: over the window's count, a delayed request takes a
// place in the next window and waits for it.
func TestMemcachedDelay(t *testing.T) {
	srv := storetest.Memcached(t)
	h := provision(t, &Handler{Zone: "mcdelay", MaxRPS: 2, OnLimit: "delay", MaxDelay: caddy.Duration(2 * time.Second), Backend: "memcached", Memcached: &sharedstore.MemcachedConfig{URL: srv.URL()}})
	now := time.Now().Truncate(time.Second).Add(100 * time.Millisecond)
	k := key{a: "x"}
	for i := range 2 {
		if d, err := h.zone.take(context.Background(), k, now); err != nil || !d.allowed || d.wait != 0 {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
	}
	d, err := h.zone.take(context.Background(), k, now)
	if err != nil || !d.allowed || d.wait != 900*time.Millisecond {
		t.Fatalf("third: %+v %v, want admitted after 900ms", d, err)
	}
	// The next window's two places: the third took one.
	h.zone.take(context.Background(), k, now)
	if d, _ := h.zone.take(context.Background(), k, now); d.allowed {
		t.Fatalf("fifth admitted: %+v", d)
	}
}
