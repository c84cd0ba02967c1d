package adaptive

import (
	"math"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sentinel-proxy/sentinel/registry"
)

func defaultAdaptiveParams() adaptiveParams {
	a := &Adaptive{}
	a.Provision(testCtx)
	return a.params
}

// TestAdaptiveDefaults: Sentinel's defaults adjust every 500 ms with a
// relative latency threshold; the original's constants stay expressible.
func TestAdaptiveDefaults(t *testing.T) {
	p := defaultAdaptiveParams()
	want := adaptiveParams{
		interval: int64(500 * time.Millisecond), minRatio: 0.1, maxRatio: 2.0, errThreshold: 0.05,
		latThreshold: float64(500 * time.Millisecond), latRatio: 3, alpha: 0.8, recovery: 1.1, penalty: 0.7,
		minRequests: 5, maxCarryOver: 3, breakerFailures: 5, breakerSuccesses: 5, breakerTimeout: int64(500 * time.Millisecond),
		slow: slowRule{ratio: 3, margin: float64(5 * time.Millisecond)},
	}
	if p != want {
		t.Fatalf("defaults %+v, want %+v", p, want)
	}
	orig := &Adaptive{AdjustmentInterval: caddy.Duration(10 * time.Second), MinRequests: 100, LatencyRatio: -1}
	provision(t, orig, nil)
	want.interval, want.breakerTimeout, want.minRequests, want.latRatio = int64(10*time.Second), int64(10*time.Second), 100, 0
	want.slow.ratio = 0
	if orig.params != want {
		t.Fatalf("original %+v, want %+v", orig.params, want)
	}
}

// TestAdaptiveWeightMath checks one adjustment against the formulas.
func TestAdaptiveWeightMath(t *testing.T) {
	p := defaultAdaptiveParams()
	cases := []struct {
		name            string
		w, ewmaErr, lat float64
		want            float64
	}{
		{"healthy recovers ×1.1", 1, 0, float64(ms(10)), 1.1},
		{"recovery capped at 2×", 1.9, 0, 0, 2},
		{"errors 15%: adj floor 0.1", 1, 0.15, 0, 0.73},
		{"errors 10%: adj 0.5", 1, 0.10, 0, 0.7 + 0.3*0.5},
		{"errors 100%: adj floor 0.1", 1, 1, 0, 0.73},
		{"latency 1s: adj 0.5", 1, 0, float64(time.Second), 0.85},
		{"latency 10s: adj floor 0.1", 1, 0, float64(10 * time.Second), 0.73},
		{"both", 1, 0.10, float64(time.Second), 0.7 + 0.3*0.25},
		{"penalty floored at 0.1×", 0.12, 1, 0, 0.1},
	}
	for _, c := range cases {
		if got := nextWeight(&p, c.w, 1, c.ewmaErr, c.lat); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// The score: w / (1 + in flight + err·100 + lat_ms/10).
	if got := adaptiveScore(2, 3, 0.01, float64(20*time.Millisecond)); math.Abs(got-2.0/(1+3+1+2)) > 1e-12 {
		t.Errorf("score %v", got)
	}
}

func newAdaptive(t testing.TB, clk *clock, s *Adaptive) *Adaptive { return provision(t, s, clk) }

// drive sends n requests through the policy, each answered by outcome
// (called with the chosen address), the clock moving step per request.
func drive(s *Adaptive, pool []string, clk *clock, n int, step time.Duration, outcome func(addr string) sample) map[string]int {
	up := testPool(pool...)
	c := map[string]int{}
	for range n {
		clk.add(step)
		u := s.Select(up, nil, nil)
		if u == nil {
			c[""]++
			continue
		}
		c[u.Dial]++
		feed(u.Dial, clk.now(), outcome(u.Dial))
	}
	return c
}

// TestAdaptiveConvergesAndRecovers: a target that fails 30 % of the time
// loses its weight and, through its error EWMA, almost all its traffic;
// healed, it recovers ×1.1 per interval with enough requests, and gets its
// share back.
func TestAdaptiveConvergesAndRecovers(t *testing.T) {
	clk := newClock()
	s := newAdaptive(t, clk, &Adaptive{DisableBreaker: true, AdjustmentInterval: caddy.Duration(10 * time.Second), MinRequests: 100})
	addrs := []string{"ad-a:1", "ad-b:1", "ad-c:1", "ad-d:1"}
	failing := true
	n := 0
	outcome := func(a string) sample {
		n++
		if a == "ad-d:1" && failing && n%10 < 3 {
			return statusSample(ms(0.5), 503)
		}
		return okSample(ms(1))
	}
	// 60 s at 200 requests/s: 6 intervals of 10 s.
	drive(s, addrs, clk, 12000, 5*time.Millisecond, outcome)
	d := s.views.cur.Load().items[3]
	if w := d.weight.Load(); w > 0.75 {
		t.Fatalf("failing target weight %v after 6 intervals", w)
	}
	if e := d.ewmaErr.Load(); e < 0.2 || e > 0.4 {
		t.Fatalf("ewma_err %v", e)
	}
	healthy := s.views.cur.Load().items[0].weight.Load()
	if healthy < 1.5 {
		t.Fatalf("healthy targets should have recovered toward 2×: %v", healthy)
	}
	c := drive(s, addrs, clk, 4000, 5*time.Millisecond, outcome)
	if share := float64(c["ad-d:1"]) / 4000; share > 0.02 {
		t.Fatalf("failing target still gets %.1f%%: %v", share*100, c)
	}

	// Healed: the weight comes back ×1.1 per interval with enough
	// requests; the traffic follows.
	failing = false
	c = drive(s, addrs, clk, 80000, 5*time.Millisecond, outcome) // 400 s
	if w := d.weight.Load(); w < 1.0 {
		t.Fatalf("healed target weight %v", w)
	}
	c = drive(s, addrs, clk, 4000, 5*time.Millisecond, outcome)
	if share := float64(c["ad-d:1"]) / 4000; share < 0.18 {
		t.Fatalf("healed target gets %.1f%%: %v", share*100, c)
	}
}

// TestAdaptiveLatency: a target slower than the (absolute) latency
// threshold loses weight; fewer than min_requests carry over.
func TestAdaptiveLatency(t *testing.T) {
	clk := newClock()
	s := newAdaptive(t, clk, &Adaptive{LatencyThreshold: caddy.Duration(20 * time.Millisecond), AdjustmentInterval: caddy.Duration(time.Second), MinRequests: 20, MaxCarryOver: -1, LatencyRatio: -1})
	addrs := []string{"al-a:1", "al-b:1"}
	outcome := func(a string) sample {
		if a == "al-b:1" {
			return okSample(ms(100))
		}
		return okSample(ms(1))
	}
	c := drive(s, addrs, clk, 6000, 10*time.Millisecond, outcome) // 60 s
	v := s.views.cur.Load()
	b := v.items[1]
	if w := b.weight.Load(); w > 0.5 {
		t.Fatalf("slow target weight %v", w)
	}
	if c = drive(s, addrs, clk, 1000, 10*time.Millisecond, outcome); c["al-b:1"] > 30 {
		t.Fatalf("slow target share %v", c)
	}
	if l := b.ewmaLat.Load(); math.Abs(l-float64(ms(100))) > float64(ms(1)) {
		t.Fatalf("ewma_lat %v", time.Duration(l))
	}
	// Under min_requests: counters carry over, nothing changes.
	before := b.weight.Load()
	b.mu.Lock()
	b.requests, b.failures, b.successes, b.latSum = 5, 5, 0, 0
	b.mu.Unlock()
	b.adjust()
	if b.weight.Load() != before || b.requests != 5 {
		t.Fatal("an interval under min_requests was applied")
	}
	// Only failures in the interval: the latency average keeps its value.
	b.mu.Lock()
	b.requests = 20
	b.failures = 20
	b.mu.Unlock()
	b.adjust()
	if l := b.ewmaLat.Load(); math.Abs(l-float64(ms(100))) > float64(ms(1)) {
		t.Fatalf("ewma_lat after an all-failure interval %v", time.Duration(l))
	}
}

// TestAdaptiveCarryOver: counters under min_requests carry over for at
// most max_carry_over intervals; then the target is adjusted with what it
// has, or, starved, its averages fade so that it is tried again.
func TestAdaptiveCarryOver(t *testing.T) {
	clk := newClock()
	s := newAdaptive(t, clk, &Adaptive{Upstream: "ac-up"})
	pool := testPool("ac-a:1")
	s.Select(pool, nil, nil)
	a := s.views.cur.Load().items[0]
	a.ewmaErr.Store(0.3)
	a.ewmaLat.Store(float64(ms(50)))
	a.weight.Store(0.1)
	// Two intervals with 3 requests: carried over.
	for range 3 {
		feed("ac-a:1", clk.now(), okSample(ms(1)))
	}
	a.adjust()
	a.adjust()
	if a.ewmaErr.Load() != 0.3 || a.requests != 3 {
		t.Fatalf("carried: err %v requests %d", a.ewmaErr.Load(), a.requests)
	}
	// The third: adjusted with the 3 requests.
	a.adjust()
	if got := a.ewmaErr.Load(); math.Abs(got-0.06) > 1e-9 || a.requests != 0 {
		t.Fatalf("forced adjustment: err %v requests %d", got, a.requests)
	}
	// Three intervals with no request: the averages fade.
	a.adjust()
	a.adjust()
	a.adjust()
	if got := a.ewmaErr.Load(); math.Abs(got-0.012) > 1e-9 {
		t.Fatalf("starved: err %v", got)
	}
	// The original's behaviour: no limit.
	o := newAdaptive(t, clk, &Adaptive{Upstream: "ac-up", MaxCarryOver: -1})
	o.Select(testPool("ac-b:1"), nil, nil)
	b := o.views.cur.Load().items[0]
	b.ewmaErr.Store(0.3)
	for range 10 {
		b.adjust()
	}
	if b.ewmaErr.Load() != 0.3 {
		t.Fatal("carried over with no limit: the averages changed")
	}
}

// TestAdaptiveBreaker: 5 consecutive failures open the breaker; the
// target is out until the breaker timeout, then tried; 5 successes close
// it. When every breaker is open the breakers are ignored.
func TestAdaptiveBreaker(t *testing.T) {
	clk := newClock()
	s := newAdaptive(t, clk, &Adaptive{Upstream: "ab-up"})
	addrs := []string{"ab-a:1", "ab-b:1"}
	pool := testPool(addrs...)
	s.Select(pool, nil, nil)
	for range 5 {
		feed("ab-b:1", clk.now(), sample{rtt: ms(1)})
	}
	if c := count(s, pool, 200); c["ab-b:1"] != 0 {
		t.Fatalf("open breaker: %v", c)
	}
	clk.add(10 * time.Second)
	if c := count(s, pool, 400); c["ab-b:1"] == 0 {
		t.Fatalf("half-open target not tried: %v", c)
	}
	// A failure in the trial opens it again.
	feed("ab-b:1", clk.now(), statusSample(ms(1), 502))
	if c := count(s, pool, 200); c["ab-b:1"] != 0 {
		t.Fatalf("reopened breaker: %v", c)
	}
	clk.add(10 * time.Second)
	for range 5 {
		feed("ab-b:1", clk.now(), okSample(ms(1)))
	}
	if s.views.cur.Load().items[1].open.Load() {
		t.Fatal("5 successes did not close the breaker")
	}

	// All targets failing: still served (breakers ignored).
	for range 5 {
		feed("ab-a:1", clk.now(), sample{rtt: ms(1)})
		feed("ab-b:1", clk.now(), sample{rtt: ms(1)})
	}
	c := count(s, pool, 400)
	if c[""] != 0 || c["ab-a:1"] == 0 || c["ab-b:1"] == 0 {
		t.Fatalf("all breakers open: %v", c)
	}
	// Nothing available: nil.
	setAvailable(pool[0], false)
	setAvailable(pool[1], false)
	if s.Select(pool, nil, nil) != nil {
		t.Fatal("selected an unavailable target")
	}
}

// TestAdaptiveRejoin: a target that leaves the pool (unhealthy) and comes
// back starts over at its configured weight with a closed breaker;
// configured weights apply and follow the registry.
func TestAdaptiveRejoin(t *testing.T) {
	reconcile(t, "ar", map[string]int{"ar-a:1": 1, "ar-b:1": 3})
	clk := newClock()
	s := newAdaptive(t, clk, &Adaptive{Upstream: "ar"})
	pool := testPool("ar-a:1", "ar-b:1")
	c := count(s, pool, 4000)
	if r := float64(c["ar-b:1"]) / 4000; r < 0.70 || r > 0.80 {
		t.Fatalf("3:1 weights: %v", c)
	}
	b := s.views.cur.Load().items[1]
	b.weight.Store(0.3)
	for range 5 {
		feed("ar-b:1", clk.now(), sample{rtt: ms(1)})
	}
	count(s, testPool("ar-a:1"), 1) // b left the pool
	count(s, pool, 1)               // and came back
	if b.weight.Load() != 3 || b.open.Load() {
		t.Fatalf("rejoined: weight %v open %v", b.weight.Load(), b.open.Load())
	}
	// A weight changed through the API rescales the effective weight.
	b.weight.Store(1.5)
	w := 6
	if _, err := testReg.PatchTarget("ar", "ar-b:1", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	count(s, pool, 1)
	if b.weight.Load() != 3 || b.w0.Load() != 6 {
		t.Fatalf("rescaled: weight %v w0 %v", b.weight.Load(), b.w0.Load())
	}
	draining := registry.StateDraining
	if _, err := testReg.PatchTarget("ar", "ar-b:1", registry.TargetPatch{State: &draining}, 0); err != nil {
		t.Fatal(err)
	}
	if got := testReg.Pool("ar").Addresses; len(got) != 1 || got[0] != "ar-a:1" {
		t.Fatalf("draining target still in the pool: %v", got)
	}
}

// TestAdaptiveSharedAcrossReload: the group (weights, EWMAs, last
// adjustment) is found again by a new instance with the same settings,
// provisioned (as Caddy does on a reload) before the old one is cleaned
// up.
func TestAdaptiveSharedAcrossReload(t *testing.T) {
	clk := newClock()
	s1 := newAdaptive(t, clk, &Adaptive{Upstream: "as-up"})
	pool := testPool("as-a:1")
	s1.Select(pool, nil, nil)
	s1.views.cur.Load().items[0].weight.Store(0.5)
	s2 := newAdaptive(t, clk, &Adaptive{Upstream: "as-up"})
	s1.Cleanup()
	s2.Select(pool, nil, nil)
	if s2.group != s1.group || s2.views.cur.Load().items[0].weight.Load() != 0.5 {
		t.Fatal("state lost on reload")
	}
}

func TestAdaptiveConfig(t *testing.T) {
	var s Adaptive
	d := caddyfile.NewTestDispenser(`adaptive {
		upstream api
		adjustment_interval 1s
		min_weight_ratio 0.2
		max_weight_ratio 3
		error_threshold 0.1
		latency_threshold 50ms
		latency_ratio 4
		ewma_alpha 0.5
		recovery_factor 1.5
		penalty_rate 0.6
		min_requests 10
		max_carry_over 4
		breaker_failures 3
		breaker_successes 2
		breaker_timeout 5s
		breaker off
		slow_margin 20ms
	}`)
	if err := s.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	provision(t, &s, nil)
	want := adaptiveParams{
		interval: int64(time.Second), minRatio: 0.2, maxRatio: 3, errThreshold: 0.1,
		latThreshold: float64(50 * time.Millisecond), latRatio: 4, alpha: 0.5, recovery: 1.5, penalty: 0.6,
		minRequests: 10, maxCarryOver: 4, breakerFailures: 0, breakerSuccesses: 2, breakerTimeout: int64(5 * time.Second),
		slow: slowRule{ratio: 4, margin: float64(20 * time.Millisecond)},
	}
	if s.Upstream != "api" || s.params != want {
		t.Fatalf("parsed %+v", s.params)
	}
	for _, bad := range []string{"adaptive {\n ewma_alpha x\n}", "adaptive {\n breaker maybe\n}", "adaptive {\n latency_threshold\n}"} {
		if err := new(Adaptive).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
	for _, bad := range []*Adaptive{
		{MinWeightRatio: 3}, {ErrorThreshold: 2}, {EWMAAlpha: 1.5}, {RecoveryFactor: 0.5},
		{PenaltyRate: 2}, {MinRequests: -1}, {AdjustmentInterval: -1}, {MaxCarryOver: -2},
		{LatencyRatio: 0.5}, {LatencyRatio: -2},
	} {
		bad.Provision(testCtx)
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: expected a validation error", bad.params)
		}
	}
}

// TestAdaptiveRelativeLatency: with the default latency_ratio, a target
// 50 ms slower than its 2 ms peers is penalised although it is far under
// the absolute 500 ms threshold, and loses almost all its traffic within
// seconds; with latency_ratio -1 (the original) it keeps its weight.
func TestAdaptiveRelativeLatency(t *testing.T) {
	for _, c := range []struct {
		name     string
		ratio    float64
		maxShare float64
	}{{"relative", 0, 0.01}, {"absolute only", -1, 1}} {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			s := newAdaptive(t, clk, &Adaptive{LatencyRatio: c.ratio})
			addrs := []string{"rl-a:" + c.name, "rl-b:" + c.name, "rl-c:" + c.name, "rl-slow:" + c.name}
			outcome := func(a string) sample {
				if a == addrs[3] {
					return okSample(ms(52))
				}
				return okSample(ms(2))
			}
			drive(s, addrs, clk, 10000, time.Millisecond, outcome) // 10 s at 1000/s
			got := drive(s, addrs, clk, 5000, time.Millisecond, outcome)
			share := float64(got[addrs[3]]) / 5000
			w := s.views.cur.Load().items[3].weight.Load()
			if c.ratio == 0 && (share > c.maxShare || w > 0.2) {
				t.Fatalf("slow target share %.3f, weight %.2f", share, w)
			}
			if c.ratio == -1 && w < 1 {
				t.Fatalf("absolute-only threshold penalised a 52 ms target: weight %.2f", w)
			}
		})
	}
	if m := median([]float64{5, 1, 3, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
}
