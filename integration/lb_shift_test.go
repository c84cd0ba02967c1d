package integration

import (
	"slices"
	"sync"
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
//
// On a loaded machine (other builds and tests on its two cores) the
// goroutines of the proxy, the backends and the load generator run late
// by tens of milliseconds or seconds, which drowns the +50 ms the sick
// backend adds. A probe measures that lateness in each window: a
// disturbed window (see lbDisturbed) is measured again, up to six times
// (after a new reload for the reload check); the first undisturbed one is
// judged, so the test still fails when the traffic does not shift. When
// all six are disturbed, the test is skipped saying so on a developer's
// machine (goroutines run hundreds of milliseconds late there, requests
// time out, and no verdict on the balancing would mean anything) and
// fails under CI, where it must never be silently left out.
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

	listen := testutil.FreeAddr(t)
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
	// 150 requests a second per pool: each adaptive target still sees
	// its min_requests in every interval, and the test's own load stays
	// small beside the rest of the machine.
	ewma.gen = newLBLoadGen("http://"+listen+"/e/x", 150)
	adapt.gen = newLBLoadGen("http://"+listen+"/a/x", 150)
	probe := &lbLatenessProbe{}
	for _, p := range pools {
		go func() { p.gen.run(stop); done <- struct{}{} }()
	}
	go func() { probe.run(stop); done <- struct{}{} }()
	defer func() {
		close(stop)
		<-done
		<-done
		<-done
	}()
	sick := 3
	// measure judges the phase on a window of d; a disturbed window is
	// measured again (after again, when set), up to six windows.
	measure := func(phase string, d time.Duration, maxShare func(*pool) float64, minSuccess float64, again func()) {
		t.Helper()
		const tries = 6
		for try := 1; ; try++ {
			for _, p := range pools {
				p.hits.delta()
				p.gen.record(true)
			}
			probe.take()
			time.Sleep(d)
			late := probe.take()
			disturbed := lbDisturbed(late)
			type sample struct {
				hits  []int64
				res   lbLoadResult
				share float64
			}
			samples := make([]sample, len(pools))
			for i, p := range pools {
				hits := p.hits.delta()
				res := p.gen.record(false)
				samples[i] = sample{hits, res, lbShare(hits, sick)}
				t.Logf("%-9s %-12s hits %v sick share %.1f%% success %.2f%% p99 %v (scheduling lateness p99 %v max %v)",
					p.name, phase, hits, 100*samples[i].share, 100*res.successRate(), res.quantile(0.99), late.p99, late.max)
			}
			if disturbed && try < tries {
				t.Logf("%s: the machine was too busy in this window (goroutines ran up to %v late): measuring again", phase, late.max)
				if again != nil {
					again()
				}
				continue
			}
			if disturbed {
				// Nothing this test measures can be told apart from the
				// machine's own delays: saying pass or fail would be a guess.
				// Under CI (which gives the test the machine) it fails.
				testutil.Missing(t, "%s: the machine was too busy to judge the load balancing in %d windows in a row (goroutines ran %v late for 1 %% of their wake-ups, up to %v)",
					phase, tries, late.p99, late.max)
			}
			for i, p := range pools {
				if s := samples[i].share; s > maxShare(p) {
					t.Errorf("%s, %s: the sick backend got %.1f%% of the requests (max %.0f%%)", p.name, phase, 100*s, 100*maxShare(p))
				}
				if r := samples[i].res.successRate(); r < minSuccess {
					t.Errorf("%s, %s: success rate %.2f%%", p.name, phase, 100*r)
				}
			}
			return
		}
	}

	// Healthy: everyone gets a share.
	measure("healthy", 1500*time.Millisecond, func(*pool) float64 { return 0.6 }, 0.995, nil)

	// Slow: +50 ms.
	for _, p := range pools {
		p.backends[sick].delay.Store(int64(50 * time.Millisecond))
	}
	time.Sleep(1500 * time.Millisecond)
	measure("slow", 2*time.Second, func(p *pool) float64 { return p.maxShare }, 0.995, nil)

	// A reload (a changed config: new handlers, new policy instances)
	// keeps what was learned: the window right after it is judged (a
	// disturbed one is measured again after another reload).
	other := startLBBackend(t, 0, 0)
	withOther := false
	reload := func() {
		withOther = !withOther
		rs := routes
		if withOther {
			rs = append(slices.Clip(routes), lbRoute{prefix: "/other", upstream: "lb-shift-o", targets: []*lbBackend{other},
				policy: map[string]any{"policy": "round_robin"}})
		}
		tc.InitServer(lbConfig(listen, rs), "json")
	}
	reload()
	measure("reloaded", time.Second, func(p *pool) float64 { return p.maxShare }, 0.99, reload)

	// Failing fast: 30 % of its requests answered 503 in under 1 ms.
	for _, p := range pools {
		p.backends[sick].delay.Store(0)
		p.backends[sick].failPct.Store(30)
	}
	time.Sleep(1500 * time.Millisecond)
	measure("failing", 1500*time.Millisecond, func(p *pool) float64 { return p.maxShare }, 0.995, nil)

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

// lbLateness is how late a probe goroutine woke up in a window.
type lbLateness struct{ p99, max time.Duration }

// lbDisturbed reports whether the machine was too busy in a window for
// the +50 ms of the sick backend to stand out: goroutines ran 50 ms late
// for 1 % of the probe's wake-ups (on a quiet machine, under 10 ms; the
// policies were seen to shift the traffic at 40 ms, not at 60 ms).
func lbDisturbed(l lbLateness) bool { return l.p99 > 50*time.Millisecond }

// lbLatenessProbe measures scheduling lateness: a goroutine sleeps 1 ms
// at a time and records how much later than asked it woke up.
type lbLatenessProbe struct {
	mu   sync.Mutex
	late []time.Duration
}

func (p *lbLatenessProbe) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		late := time.Since(t0) - time.Millisecond
		p.mu.Lock()
		p.late = append(p.late, late)
		p.mu.Unlock()
	}
}

// take returns the lateness since the last take.
func (p *lbLatenessProbe) take() lbLateness {
	p.mu.Lock()
	s := p.late
	p.late = nil
	p.mu.Unlock()
	if len(s) == 0 {
		return lbLateness{}
	}
	slices.Sort(s)
	return lbLateness{p99: s[min(len(s)-1, len(s)*99/100)], max: s[len(s)-1]}
}
