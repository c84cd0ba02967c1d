package adaptive

import (
	"math"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1) }

var defaultPeak = peakParams{tau: float64(10 * time.Second), penalty: float64(5 * time.Second), maxRetryAfter: float64(300 * time.Second)}

// TestPeakEWMAMath checks Finagle's formulas step by step.
func TestPeakEWMAMath(t *testing.T) {
	clk := newClock()
	e := newPeakEWMA(defaultPeak, clk.now())

	// Never observed, nothing in flight: 0, the cheapest; with requests
	// in flight: Finagle's penalty, so one probe at a time.
	if l := e.load(clk.now(), 0); l != 0 {
		t.Fatalf("fresh load %v", l)
	}
	if l := e.load(clk.now(), 2); l != unprobedPenalty+2 {
		t.Fatalf("fresh load with 2 pending %v", l)
	}

	// A peak is taken at once.
	e.observe(clk.now(), okSample(ms(10)))
	if !near(e.estimate(clk.now()), float64(ms(10)), 1e-9) {
		t.Fatalf("peak: %v", e.estimate(clk.now()))
	}
	// load = cost × (pending+1).
	if l := e.load(clk.now(), 3); !near(l, float64(ms(40)), 1e-9) {
		t.Fatalf("load with 3 pending: %v", l)
	}

	// A lower sample blends in with w = exp(-Δt/τ).
	clk.add(time.Second)
	e.observe(clk.now(), okSample(ms(2)))
	w := math.Exp(-0.1)
	want := float64(ms(10))*w + float64(ms(2))*(1-w)
	if got := e.estimate(clk.now()); !near(got, want, 1e-9) {
		t.Fatalf("blend: got %v want %v", got, want)
	}

	// Decay on read: after τ the estimate is e^-1 of what it was, and a
	// read makes it so.
	clk.add(10 * time.Second)
	if got := e.load(clk.now(), 0); !near(got, want/math.E, 1e-9) {
		t.Fatalf("decay on read: got %v want %v", got, want/math.E)
	}
	if !near(e.cost, want/math.E, 1e-9) {
		t.Fatalf("read did not decay the state: %v", e.cost)
	}
}

// TestPeakEWMAConvergence: a target that turns slow is seen at once; one
// that turns fast again is seen within a few decay times.
func TestPeakEWMAConvergence(t *testing.T) {
	clk := newClock()
	e := newPeakEWMA(defaultPeak, clk.now())
	for range 100 {
		clk.add(10 * time.Millisecond)
		e.observe(clk.now(), okSample(ms(1)))
	}
	if got := e.estimate(clk.now()); !near(got, float64(ms(1)), 1e-6) {
		t.Fatalf("steady 1ms: %v", got)
	}
	clk.add(10 * time.Millisecond)
	e.observe(clk.now(), okSample(ms(51)))
	if got := e.estimate(clk.now()); got != float64(ms(51)) {
		t.Fatalf("slow response not taken at once: %v", got)
	}
	// Fast again: blends down; after 5τ of fast samples it is close to
	// the fast latency again.
	for range 500 {
		clk.add(100 * time.Millisecond)
		e.observe(clk.now(), okSample(ms(1)))
	}
	if got := e.estimate(clk.now()); got > float64(ms(1.5)) {
		t.Fatalf("not converged back: %v", time.Duration(got))
	}
}

// TestPeakEWMAPenalty: fast failures count as the penalty, Retry-After
// lengthens it up to the cap, 429 counts, and penalize_failures off
// counts the real latency.
func TestPeakEWMAPenalty(t *testing.T) {
	clk := newClock()
	cases := []struct {
		name string
		p    peakParams
		s    sample
		want time.Duration
	}{
		{"503 in 1ms", defaultPeak, statusSample(ms(1), 503), 5 * time.Second},
		{"connection refused", defaultPeak, sample{rtt: ms(1)}, 5 * time.Second},
		{"429", defaultPeak, statusSample(ms(1), 429), 5 * time.Second},
		{"slow 500 keeps its latency", defaultPeak, statusSample(int64(7*time.Second), 500), 7 * time.Second},
		{"Retry-After 30s", defaultPeak, sample{rtt: ms(1), status: 503, retryAfter: int64(30 * time.Second)}, 30 * time.Second},
		{"Retry-After capped", defaultPeak, sample{rtt: ms(1), status: 429, retryAfter: int64(time.Hour)}, 300 * time.Second},
		{"Retry-After shorter than the penalty", defaultPeak, sample{rtt: ms(1), status: 503, retryAfter: int64(time.Second)}, 5 * time.Second},
		{"404 is a success", defaultPeak, statusSample(ms(1), 404), time.Millisecond},
		{"no penalty", peakParams{tau: defaultPeak.tau}, statusSample(ms(1), 503), time.Millisecond},
	}
	for _, c := range cases {
		e := newPeakEWMA(c.p, clk.now())
		e.observe(clk.now(), c.s)
		if got := time.Duration(e.estimate(clk.now())); got != c.want {
			t.Errorf("%s: estimate %v, want %v", c.name, got, c.want)
		}
	}
}

// TestPeakEWMADefaultRTT: with default_rtt a new target starts there and
// decays.
func TestPeakEWMADefaultRTT(t *testing.T) {
	clk := newClock()
	p := defaultPeak
	p.defaultRTT = float64(30 * time.Millisecond)
	e := newPeakEWMA(p, clk.now())
	if got := e.load(clk.now(), 1); got != float64(60*time.Millisecond) {
		t.Fatalf("load %v", got)
	}
	clk.add(10 * time.Second)
	if got := e.estimate(clk.now()); !near(got, float64(30*time.Millisecond)/math.E, 1e-9) {
		t.Fatalf("decayed %v", got)
	}
	if peakLoad(5, -1) != 5 {
		t.Error("negative pending")
	}
}

func newPeak(t testing.TB, clk *clock, s *PeakEWMA) *PeakEWMA {
	return provision(t, s, clk)
}

// TestPeakEWMASelectAvoidsSlowAndFailing: the policy end to end on the
// feedback store: a slow target and a fast-failing target stop receiving
// requests; they get traffic back once healthy and decayed.
func TestPeakEWMASelectAvoidsSlowAndFailing(t *testing.T) {
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{DecayTime: caddy.Duration(time.Second)})
	addrs := []string{"pe-a:1", "pe-b:1", "pe-c:1", "pe-d:1"}
	pool := testPool(addrs...)
	s.Select(pool, nil, nil) // the estimators attach on first use
	for _, a := range addrs[:3] {
		feed(a, clk.now(), okSample(ms(1)))
	}
	feed("pe-d:1", clk.now(), okSample(ms(50)))
	if c := count(s, pool, 1000); c["pe-d:1"] != 0 {
		t.Fatalf("slow target chosen: %v", c)
	}
	// Fast failures: 1ms 503s must not make d look fast.
	clk.add(20 * time.Second)
	for _, a := range addrs[:3] {
		feed(a, clk.now(), okSample(ms(1)))
	}
	feed("pe-d:1", clk.now(), statusSample(ms(0.2), 503))
	if c := count(s, pool, 1000); c["pe-d:1"] != 0 {
		t.Fatalf("fast-failing target chosen: %v", c)
	}
	// Healed: as the penalty decays below the others' estimate, d is
	// tried again, and gets its share once it answers fast.
	clk.add(20 * time.Second) // 5s·e^-20 ≈ 10ns
	for _, a := range addrs[:3] {
		feed(a, clk.now(), okSample(ms(1)))
	}
	if c := count(s, pool, 100); c["pe-d:1"] == 0 {
		t.Fatalf("healed target not tried again: %v", c)
	}
	feed("pe-d:1", clk.now(), okSample(ms(1)))
	c := count(s, pool, 4000)
	if c["pe-d:1"] < 800 {
		t.Fatalf("healed target not back to its share: %v", c)
	}
}

// TestPeakEWMAInFlight: with equal latency, the target with fewer
// requests in flight wins; ties are broken by the random draw.
func TestPeakEWMAInFlight(t *testing.T) {
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{})
	pool := testPool("pi-a:1", "pi-b:1")
	s.Select(pool, nil, nil)
	feed("pi-a:1", clk.now(), okSample(ms(5)))
	feed("pi-b:1", clk.now(), okSample(ms(5)))
	inflight(t, "pi-a:1", 3)
	defer inflight(t, "pi-a:1", 0)
	if c := count(s, pool, 100); c["pi-b:1"] != 100 {
		t.Fatalf("busier target chosen: %v", c)
	}
	inflight(t, "pi-a:1", 0)
	c := count(s, pool, 2000)
	if c["pi-a:1"] < 800 || c["pi-b:1"] < 800 {
		t.Fatalf("ties not spread: %v", c)
	}
}

// TestPeakEWMAAllFailing: when every target fails, requests still flow,
// to the least penalized.
func TestPeakEWMAAllFailing(t *testing.T) {
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{})
	addrs := []string{"pf-a:1", "pf-b:1", "pf-c:1"}
	pool := testPool(addrs...)
	s.Select(pool, nil, nil)
	for _, a := range addrs {
		feed(a, clk.now(), statusSample(ms(1), 503))
	}
	c := count(s, pool, 300)
	if c[""] != 0 || len(c) != 3 {
		t.Fatalf("all failing: %v", c)
	}
	// Unavailable targets are skipped; none available: nil.
	setAvailable(pool[0], false)
	setAvailable(pool[1], false)
	if c := count(s, pool, 50); c["pf-c:1"] != 50 {
		t.Fatalf("one available: %v", c)
	}
	setAvailable(pool[2], false)
	if c := count(s, pool, 5); c[""] != 5 {
		t.Fatalf("none available: %v", c)
	}
	if s.Select(testPool(), nil, nil) != nil {
		t.Error("empty pool")
	}
}

// TestPeakEWMASurvivesReload: a new instance with the same parameters
// finds the estimates of the old one.
func TestPeakEWMASurvivesReload(t *testing.T) {
	clk := newClock()
	pool := testPool("pr-a:1", "pr-b:1")
	s1 := newPeak(t, clk, &PeakEWMA{})
	s1.Select(pool, nil, nil)
	feed("pr-a:1", clk.now(), okSample(ms(80)))
	feed("pr-b:1", clk.now(), okSample(ms(1)))
	// Caddy provisions the new config before it cleans the old one up.
	s2 := newPeak(t, clk, &PeakEWMA{})
	s1.Cleanup()
	if c := count(s2, pool, 100); c["pr-b:1"] != 100 {
		t.Fatalf("estimates lost on reload: %v", c)
	}
	// Different parameters: separate estimators.
	s3 := newPeak(t, clk, &PeakEWMA{DecayTime: caddy.Duration(time.Minute)})
	s3.Select(pool, nil, nil)
	if s3.views.cur.Load().items[0] == s2.views.cur.Load().items[0] {
		t.Error("estimators shared across parameters")
	}
}

// TestPeakEWMAWeights: with an upstream, loads are divided by the weight.
func TestPeakEWMAWeights(t *testing.T) {
	reconcile(t, "pw", map[string]int{"pw-a:1": 4, "pw-b:1": 1})
	clk := newClock()
	s := newPeak(t, clk, &PeakEWMA{Upstream: "pw"})
	pool := testPool("pw-a:1", "pw-b:1")
	s.Select(pool, nil, nil)
	feed("pw-a:1", clk.now(), okSample(ms(3)))
	feed("pw-b:1", clk.now(), okSample(ms(1)))
	if c := count(s, pool, 100); c["pw-a:1"] != 100 {
		t.Fatalf("weight ignored: %v", c)
	}
}

func TestPeakEWMAConfig(t *testing.T) {
	var s PeakEWMA
	d := caddyfile.NewTestDispenser(`peak_ewma api {
		decay_time 5s
		default_rtt 30ms
		penalize_failures off
		failure_penalty 2s
		max_retry_after 1m
		choices 3
	}`)
	if err := s.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if s.Upstream != "api" || s.DecayTime != caddy.Duration(5*time.Second) || s.DefaultRTT != caddy.Duration(30*time.Millisecond) ||
		*s.PenalizeFailures || s.FailurePenalty != caddy.Duration(2*time.Second) || s.MaxRetryAfter != caddy.Duration(time.Minute) || s.Choices != 3 {
		t.Fatalf("parsed %+v", &s)
	}
	provision(t, &s, nil)
	if s.params.penalty != 0 {
		t.Error("penalize_failures off ignored")
	}
	for _, bad := range []string{"peak_ewma a b", "peak_ewma {\n bogus 1\n}", "peak_ewma {\n decay_time x\n}", "peak_ewma {\n choices\n}", "peak_ewma {\n choices 2 3\n}", "peak_ewma {\n penalize_failures maybe\n}", "peak_ewma {\n choices x\n}"} {
		if err := new(PeakEWMA).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
	for _, bad := range []*PeakEWMA{{Choices: 1}, {Choices: 9}, {DecayTime: -1}} {
		bad.Provision(testCtx)
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: expected a validation error", bad)
		}
	}
}
