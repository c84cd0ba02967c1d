package adaptive

import (
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// TestConcurrentUse selects, feeds outcomes, changes the pool and scrapes
// the metrics from many goroutines at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	reconcile(t, "cc", map[string]int{"cc-a:1": 1, "cc-b:1": 2, "cc-c:1": 3})
	mods := []reverseproxy.Selector{
		&PeakEWMA{Upstream: "cc"}, &Adaptive{Upstream: "cc", AdjustmentInterval: caddy.Duration(time.Millisecond), MinRequests: 1},
		&P2C{Upstream: "cc", LoadMetric: loadBoth}, &WeightedLeastConnections{Upstream: "cc"},
		&ConsistentHash{Upstream: "cc"}, &Maglev{Upstream: "cc"}, &LocalityAware{Upstream: "cc"}, &DeterministicSubset{Upstream: "cc"},
	}
	for _, m := range mods {
		if err := m.(caddy.Provisioner).Provision(ctx); err != nil {
			t.Fatal(err)
		}
		defer m.(caddy.CleanerUpper).Cleanup()
	}
	pools := []reverseproxy.UpstreamPool{testPool("cc-a:1", "cc-b:1", "cc-c:1"), testPool("cc-a:1", "cc-c:1"), testPool("cc-c:1", "cc-b:1", "cc-a:1")}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				pool := pools[(g+i/50)%len(pools)]
				for _, m := range mods {
					u := m.Select(pool, reqFrom("10.1.1."+itoa(i%50)), nil)
					if u == nil {
						t.Error("nothing selected")
						return
					}
					tg := testFeedback.target(u.Dial)
					tg.stats.Start()
					status := 200
					if i%7 == 0 {
						status = 503
					}
					tg.record(monotime(), sample{rtt: int64(i%5+1) * int64(time.Millisecond), status: status})
					tg.stats.Done(status >= 500)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if _, err := ctx.GetMetricsRegistry().Gather(); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
}
