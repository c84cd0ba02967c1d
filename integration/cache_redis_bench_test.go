package integration

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// BenchmarkCacheHitRedis is BenchmarkCacheHit with the top-level cache
// block's `backend "redis"` (a redis-server on loopback): a hit on the
// shared store against the same request proxied to a Go net/http
// backend, in one run, and the Redis commands per hit, read from the
// server's INFO commandstats (issue 18: one round trip per request).
//
//	go test ./integration -run '^$' -bench CacheHitRedis -benchtime 20000x -count 3
func BenchmarkCacheHitRedis(b *testing.B) {
	srv := storetest.Redis(b)
	httpAddr := startNetHTTPBackend(b, 64)
	addr := testutil.FreeAddr(b)
	kdl := withAdmin(fmt.Sprintf(`listeners { listener "main" { address %q; }; }
cache { backend "redis"; redis-url %q; redis-prefix "bench:"; redis-timeout-ms 500; }
routes {
    route "cached" { matches { path-prefix "/cached"; }; upstream "h"; cache { enabled #true; }; }
    route "proxied" { matches { path-prefix "/"; }; upstream "h"; }
}
upstreams { upstream "h" { target %q; } }
`, addr, srv.URL(), httpAddr))
	out, _, err := kdladapter.Adapt("bench.kdl", []byte(kdl), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		b.Fatal(err)
	}
	tester(b).InitServer(string(out), "json")

	hit, proxied := dialRaw(b, addr), dialRaw(b, addr)
	hit.req = []byte("GET /cached HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n")
	for range 200 { // warm up; the first request to /cached stores it
		hit.do(b)
		proxied.do(b)
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	commands := func() int {
		stats, err := rc.Info(context.Background(), "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, m := range regexp.MustCompile(`cmdstat_(\w+):calls=(\d+)`).FindAllStringSubmatch(stats, -1) {
			if m[1] != "info" {
				c, _ := strconv.Atoi(m[2])
				n += c
			}
		}
		return n
	}
	const block = 64
	var hitNs, proxNs time.Duration
	run := func(c *rawConn, n int, ns *time.Duration) {
		t0 := time.Now()
		for range n {
			c.do(b)
		}
		*ns += time.Since(t0)
	}
	before := commands()
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		n := min(block, b.N-done)
		run(hit, n, &hitNs)
		run(proxied, n, &proxNs)
	}
	b.StopTimer()
	b.ReportMetric(float64(hitNs)/float64(b.N), "hit-ns/op")
	b.ReportMetric(float64(proxNs)/float64(b.N), "proxied-ns/op")
	b.ReportMetric(float64(proxNs)/float64(hitNs), "hit-speedup")
	b.ReportMetric(float64(commands()-before)/float64(b.N), "redis-cmds/hit")
}
