package integration

import (
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestLBShiftsAwayAndBack runs real traffic through the proxy to two
// pools of four loopback backends, one balanced by peak_ewma and one by
// adaptive (with time constants shortened so that the test takes seconds,
// not minutes). One backend of each pool turns slow (+50 ms), then fails
// fast (503 in under 1 ms for 30 % of its requests), then heals: the
// traffic must leave it within a few seconds, stay away across a config
// reload, and come back after it heals.
func TestLBShiftsAwayAndBack(t *testing.T) {
	testutil.Exclusive(t) // timing-sensitive: never beside another such test
	if testing.Short() {
		t.Skip("runs real traffic for about 15 s")
	}
	type pool struct {
		name     string
		backends []*lbBackend
		gen      *lbLoadGen
		hits     *lbHitCounter
		maxShare float64 // the sick backend's largest share once converged
	}
	mk := func(name string) *pool {
		p := &pool{name: name}
		for range 4 {
			p.backends = append(p.backends, startLBBackend(t, 0, 0))
		}
		p.hits = newLBHitCounter(p.backends...)
		return p
	}
	ewma, adapt := mk("peak_ewma"), mk("adaptive")
	// Generous for busy CI machines (25 % without shifting; typically
	// under 1 % on a quiet machine).
	ewma.maxShare, adapt.maxShare = 0.08, 0.08
	pools := []*pool{ewma, adapt}

	listen := freeAddr(t)
	routes := []lbRoute{
		{prefix: "/e", upstream: "lb-shift-e", targets: ewma.backends, retries: 1,
			policy: map[string]any{"policy": "peak_ewma", "upstream": "lb-shift-e", "decay_time": "500ms", "failure_penalty": "1s"}},
		{prefix: "/a", upstream: "lb-shift-a", targets: adapt.backends, retries: 1,
			policy: map[string]any{"policy": "adaptive", "upstream": "lb-shift-a", "adjustment_interval": "250ms",
				"min_requests": 2, "latency_threshold": "20ms", "recovery_factor": 2, "breaker_timeout": "1s"}},
	}
	tc := tester(t)
	tc.InitServer(lbConfig(listen, routes), "json")

	stop := make(chan struct{})
	done := make(chan struct{})
	ewma.gen = newLBLoadGen("http://"+listen+"/e/x", 250)
	adapt.gen = newLBLoadGen("http://"+listen+"/a/x", 250)
	for _, p := range pools {
		go func() { p.gen.run(stop); done <- struct{}{} }()
	}
	defer func() {
		close(stop)
		<-done
		<-done
	}()
	window := func(d time.Duration) {
		for _, p := range pools {
			p.hits.delta()
			p.gen.record(true)
		}
		time.Sleep(d)
	}
	sick := 3
	check := func(phase string, maxShare func(*pool) float64, minSuccess float64) {
		t.Helper()
		for _, p := range pools {
			hits := p.hits.delta()
			res := p.gen.record(false)
			s := lbShare(hits, sick)
			t.Logf("%-9s %-12s hits %v sick share %.1f%% success %.2f%% p99 %v", p.name, phase, hits, 100*s, 100*res.successRate(), res.quantile(0.99))
			if s > maxShare(p) {
				t.Errorf("%s, %s: the sick backend got %.1f%% of the requests (max %.0f%%)", p.name, phase, 100*s, 100*maxShare(p))
			}
			if res.successRate() < minSuccess {
				t.Errorf("%s, %s: success rate %.2f%%", p.name, phase, 100*res.successRate())
			}
		}
	}

	// Healthy: everyone gets a share.
	window(1500 * time.Millisecond)
	check("healthy", func(*pool) float64 { return 0.6 }, 0.995)

	// Slow: +50 ms.
	for _, p := range pools {
		p.backends[sick].delay.Store(int64(50 * time.Millisecond))
	}
	time.Sleep(1500 * time.Millisecond)
	window(2 * time.Second)
	check("slow", func(p *pool) float64 { return p.maxShare }, 0.995)

	// A reload (a changed config: new handlers, new policy instances)
	// keeps what was learned.
	other := startLBBackend(t, 0, 0)
	tc.InitServer(lbConfig(listen, append(routes, lbRoute{prefix: "/other", upstream: "lb-shift-o", targets: []*lbBackend{other},
		policy: map[string]any{"policy": "round_robin"}})), "json")
	window(time.Second)
	check("reloaded", func(p *pool) float64 { return p.maxShare }, 0.99)

	// Failing fast: 30 % of its requests answered 503 in under 1 ms.
	for _, p := range pools {
		p.backends[sick].delay.Store(0)
		p.backends[sick].failPct.Store(30)
	}
	time.Sleep(1500 * time.Millisecond)
	window(1500 * time.Millisecond)
	check("failing", func(p *pool) float64 { return p.maxShare }, 0.995)

	// Healed: the traffic comes back.
	for _, p := range pools {
		p.backends[sick].failPct.Store(0)
		p.hits.delta()
	}
	healed := time.Now()
	back := map[string]time.Duration{}
	for time.Since(healed) < 15*time.Second && len(back) < len(pools) {
		time.Sleep(500 * time.Millisecond)
		for _, p := range pools {
			hits := p.hits.delta()
			if _, ok := back[p.name]; !ok && lbShare(hits, sick) >= 0.15 {
				back[p.name] = time.Since(healed).Round(100 * time.Millisecond)
				t.Logf("%-9s back after %v: hits %v", p.name, back[p.name], hits)
			}
		}
	}
	for _, p := range pools {
		if _, ok := back[p.name]; !ok {
			t.Errorf("%s: the healed backend did not get its share back within 15 s", p.name)
		}
	}
}
