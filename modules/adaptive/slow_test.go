package adaptive

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The proxy is CPU-bound: every healthy target has many requests in
// flight (they wait for the proxy, not for the target), the slow target
// none. Without the slow rule, latency × (in flight + 1) makes the slow
// target (55 ms × 1) win every comparison against a healthy one (10 ms ×
// 21): half of the requests.

// TestPeakEWMASaturatedProxy: the slow target loses whatever the requests
// in flight, is tried again once its estimate has decayed, and the rule
// is off with slow_ratio -1.
func TestPeakEWMASaturatedProxy(t *testing.T) {
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{})
	fast := []string{"ps-a:1", "ps-b:1", "ps-c:1"}
	pool := testPool(append(fast, "ps-d:1")...)
	s.Select(pool, nil, nil)
	for _, a := range fast {
		feed(a, clk.now(), okSample(ms(10)))
		inflight(t, a, 20)
		defer inflight(t, a, 0)
	}
	feed("ps-d:1", clk.now(), okSample(ms(55)))
	if c := count(s, pool, 4000); c["ps-d:1"] != 0 {
		t.Fatalf("slow target chosen while the proxy is saturated: %v", c)
	}
	// 7 s later, the healthy targets still answering in 10 ms: the slow
	// target's estimate has decayed under 3 × 10 ms (τ = 10 s), it is
	// compared by load again and gets a probe.
	clk.add(7 * time.Second)
	for _, a := range fast {
		feed(a, clk.now(), okSample(ms(10)))
	}
	if c := count(s, pool, 100); c["ps-d:1"] == 0 {
		t.Fatalf("slow target never tried again: %v", c)
	}

	// Finagle's plain comparison: the slow target gets a large share.
	clk2 := newClock()
	off := newPeak(t, clk2, &PeakEWMA{SlowRatio: -1})
	pool2 := testPool("po-a:1", "po-b:1", "po-c:1", "po-d:1")
	off.Select(pool2, nil, nil)
	for _, a := range []string{"po-a:1", "po-b:1", "po-c:1"} {
		feed(a, clk2.now(), okSample(ms(10)))
		inflight(t, a, 20)
		defer inflight(t, a, 0)
	}
	feed("po-d:1", clk2.now(), okSample(ms(55)))
	if c := count(off, pool2, 4000); c["po-d:1"] < 1000 {
		t.Fatalf("slow_ratio -1: the slow target should win its comparisons: %v", c)
	}
}

// TestPeakEWMASlowRuleJitter: fast targets a few milliseconds apart are
// not "slow" (slow_margin): the requests in flight decide.
func TestPeakEWMASlowRuleJitter(t *testing.T) {
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{})
	pool := testPool("pj-a:1", "pj-b:1")
	s.Select(pool, nil, nil)
	feed("pj-a:1", clk.now(), okSample(ms(1)))
	feed("pj-b:1", clk.now(), okSample(ms(4)))
	inflight(t, "pj-a:1", 10)
	defer inflight(t, "pj-a:1", 0)
	if c := count(s, pool, 100); c["pj-b:1"] != 100 {
		t.Fatalf("4 ms × 1 should beat 1 ms × 11: %v", c)
	}
}

// TestAdaptiveSaturatedProxy: the slow target (recent latency above 3 ×
// the pool's median and 5 ms above it) is left out of the draw as soon as
// it has answered slowly, and only probed as its recent latency decays.
// Without the rule its score (0.1 ÷ (1 + 5.5)) against the healthy ones'
// (2 ÷ (1 + 20 + 1)) keeps it at about 5 % of the requests.
func TestAdaptiveSaturatedProxy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ratio    float64
		maxShare float64
		minShare float64
	}{
		{"defaults", 0, 0.002, 0},
		{"latency_ratio -1", -1, 1, 0.02},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s := newAdaptive(t, clk, &Adaptive{Upstream: "saturated-" + tc.name, LatencyRatio: tc.ratio})
			pfx := map[bool]string{true: "sat", false: "sao"}[tc.ratio == 0]
			addrs := []string{pfx + "-a:1", pfx + "-b:1", pfx + "-c:1", pfx + "-d:1"}
			for _, a := range addrs[:3] {
				inflight(t, a, 20)
				defer inflight(t, a, 0)
			}
			outcome := func(a string) sample {
				if a == addrs[3] {
					return okSample(ms(55))
				}
				return okSample(ms(10))
			}
			drive(s, addrs, clk, 10000, 200*time.Microsecond, outcome) // 2 s at 5,000 req/s: learning
			c := drive(s, addrs, clk, 20000, 200*time.Microsecond, outcome)
			share := float64(c[addrs[3]]) / 20000
			if share > tc.maxShare || share < tc.minShare {
				t.Fatalf("slow target's share %.3f %%, want %.3f–%.3f %%: %v", 100*share, 100*tc.minShare, 100*tc.maxShare, c)
			}
			if tc.ratio == 0 && c[addrs[3]] == 0 {
				t.Fatalf("slow target never probed: %v", c)
			}
		})
	}
}

// TestSlowRule: the rule's edges.
func TestSlowRule(t *testing.T) {
	r := slowRule{ratio: 3, margin: float64(5 * time.Millisecond)}
	for _, tc := range []struct {
		lat, ref float64
		want     bool
	}{
		{float64(ms(55)), float64(ms(10)), true},
		{float64(ms(29)), float64(ms(10)), false}, // under 3×
		{float64(ms(4)), float64(ms(1)), false},   // 4× but only 3 ms above
		{float64(ms(55)), 0, false},               // no reference
		{0, float64(ms(1)), false},
	} {
		if got := r.slow(tc.lat, tc.ref); got != tc.want {
			t.Errorf("slow(%v, %v) = %v", time.Duration(tc.lat), time.Duration(tc.ref), got)
		}
	}
	if (slowRule{ratio: 0, margin: 0}).slow(1e9, 1) {
		t.Error("ratio 0 must turn the rule off")
	}
	for _, bad := range []*PeakEWMA{{SlowRatio: 0.5}, {SlowRatio: 1}, {SlowMargin: caddy.Duration(-1)}} {
		bad.Choices = 2
		if bad.Validate() == nil {
			t.Errorf("slow_ratio %v, slow_margin %v accepted", bad.SlowRatio, bad.SlowMargin)
		}
	}
	a := &Adaptive{SlowMargin: caddy.Duration(-1)}
	a.Provision(testCtx)
	if a.Validate() == nil {
		t.Error("adaptive: negative slow_margin accepted")
	}
}

// TestPeakEWMANoHerdOnIdleTarget: a target whose estimate decayed while
// it got no traffic (2.7 ms, against 10 ms for the busy ones) is not the
// fast reference once a request waits on it (waitedCost: the 30 s since
// its last answer); else the busy targets would be "slow" against it and
// every comparison would go to it until its first answer.
func TestPeakEWMANoHerdOnIdleTarget(t *testing.T) {
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{})
	addrs := []string{"ph-a:1", "ph-b:1", "ph-c:1", "ph-d:1"}
	pool := testPool(addrs...)
	s.Select(pool, nil, nil)
	feed("ph-d:1", clk.now(), okSample(ms(55)))
	clk.add(30 * time.Second)
	for _, a := range addrs[:3] {
		feed(a, clk.now(), okSample(ms(10)))
		inflight(t, a, 5)
		defer inflight(t, a, 0)
	}
	defer inflight(t, "ph-d:1", 0)
	n := int64(0)
	for range 200 {
		clk.add(time.Millisecond)
		if u := s.Select(pool, nil, nil); u.Dial == "ph-d:1" {
			n++
			inflight(t, "ph-d:1", n) // it does not answer within the test
		}
	}
	if n == 0 || n > 3 {
		t.Fatalf("the idle target got %d of 200 requests, want a probe (1–3)", n)
	}
}

// TestAdaptiveSlowAtWaiting: adaptive's slow test counts the time since
// the last answer while requests wait.
func TestAdaptiveSlowAtWaiting(t *testing.T) {
	clk := newClock()
	s := newAdaptive(t, clk, &Adaptive{Upstream: "slowat"})
	g := s.group
	tg := newAdaptiveTarget(g, 1)
	if tg.slowAt(clk.now(), 3) {
		t.Fatal("never observed: not slow")
	}
	tg.observe(clk.now(), okSample(ms(2)))
	g.refLat.Store(float64(ms(2)))
	clk.add(10 * time.Second)
	if tg.slowAt(clk.now(), 0) {
		t.Fatal("idle, nothing waiting: not slow")
	}
	if !tg.slowAt(clk.now(), 1) {
		t.Fatal("a request waiting 10 s after the last answer: slow")
	}
}
