package adaptive

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestP2CLoadMetrics: in_flight compares requests in flight, latency the
// latency average, both their sum (µs/100).
func TestP2CLoadMetrics(t *testing.T) {
	clk := newClock()
	pool := testPool("pc-a:1", "pc-b:1")
	inFlight := provision(t, &P2C{}, clk)
	latency := provision(t, &P2C{LoadMetric: loadLatency}, clk)
	both := provision(t, &P2C{LoadMetric: loadBoth}, clk)
	for _, s := range []*P2C{inFlight, latency, both} {
		s.Select(pool, nil, nil)
	}
	feed("pc-a:1", clk.now(), okSample(ms(1)))
	feed("pc-b:1", clk.now(), okSample(ms(5))) // 5000µs: 50 "connections"
	inflight(t, "pc-a:1", 10)
	defer inflight(t, "pc-a:1", 0)
	if c := count(inFlight, pool, 50); c["pc-b:1"] != 50 {
		t.Errorf("in_flight: %v", c)
	}
	if c := count(latency, pool, 50); c["pc-a:1"] != 50 {
		t.Errorf("latency: %v", c)
	}
	if c := count(both, pool, 50); c["pc-a:1"] != 50 { // 10 + 10 < 0 + 50
		t.Errorf("both: %v", c)
	}
	inflight(t, "pc-a:1", 60)
	if c := count(both, pool, 50); c["pc-b:1"] != 50 { // 60 + 10 > 50
		t.Errorf("both, busier: %v", c)
	}
	// The latency average follows the window.
	clk.add(10 * time.Second)
	feed("pc-b:1", clk.now(), okSample(ms(1)))
	lat, _ := latency.views.cur.Load().items[1].lat.read()
	want := 5e6*0.36787944117 + 1e6*(1-0.36787944117)
	if !near(lat, want, 1e-6) {
		t.Errorf("latency average %v, want %v", lat, want)
	}
}

// TestP2CFailurePenalty: fast failures count as the penalty in the
// latency average, unless turned off.
func TestP2CFailurePenalty(t *testing.T) {
	clk := newClock()
	pool := testPool("pp-a:1", "pp-b:1")
	on := provision(t, &P2C{LoadMetric: loadLatency}, clk)
	off := provision(t, &P2C{LoadMetric: loadLatency, PenalizeFailures: new(bool)}, clk)
	on.Select(pool, nil, nil)
	off.Select(pool, nil, nil)
	feed("pp-a:1", clk.now(), okSample(ms(2)))
	feed("pp-b:1", clk.now(), statusSample(ms(0.1), 503))
	if c := count(on, pool, 50); c["pp-a:1"] != 50 {
		t.Errorf("penalized: %v", c)
	}
	if c := count(off, pool, 50); c["pp-b:1"] != 50 {
		t.Errorf("not penalized: %v", c)
	}
}

// TestP2CWeights: with an upstream the draw follows the weights.
func TestP2CWeights(t *testing.T) {
	reconcile(t, "pcw", map[string]int{"pcw-a:1": 1, "pcw-b:1": 1, "pcw-c:1": 8})
	s := provision(t, &P2C{Upstream: "pcw"}, newClock())
	pool := testPool("pcw-a:1", "pcw-b:1", "pcw-c:1")
	// All idle: the first candidate wins ties at random among those
	// drawn; c is drawn far more often.
	c := count(s, pool, 3000)
	if c["pcw-c:1"] < 1200 {
		t.Fatalf("weights ignored: %v", c)
	}
	// Unavailable targets are never chosen, even when most are out.
	setAvailable(pool[2], false)
	setAvailable(pool[1], false)
	if c := count(s, pool, 100); c["pcw-a:1"] != 100 {
		t.Fatalf("only a available: %v", c)
	}
}

// TestDrawScans: many unavailable targets: the draw falls back to a scan;
// weighted scans favour weights.
func TestDrawScans(t *testing.T) {
	reconcile(t, "dr", map[string]int{"dr-0:1": 1, "dr-1:1": 1, "dr-2:1": 1, "dr-3:1": 1, "dr-4:1": 1, "dr-5:1": 1, "dr-6:1": 20, "dr-7:1": 1})
	addrs := []string{"dr-0:1", "dr-1:1", "dr-2:1", "dr-3:1", "dr-4:1", "dr-5:1", "dr-6:1", "dr-7:1"}
	pool := testPool(addrs...)
	for _, u := range pool[:5] {
		setAvailable(u, false)
	}
	var vs views[int]
	vs.item = func(*Target, float64) int { return 0 }
	reg := testFeedback.reg.Pool("dr")
	v := vs.get(testFeedback, pool, reg)
	rnd := seeded(3)
	var buf [maxChoices]int
	hits := map[int]int{}
	for range 2000 {
		for _, i := range v.draw(pool, rnd, 2, true, nil, &buf) {
			if i < 5 {
				t.Fatalf("unavailable drawn: %d", i)
			}
			hits[i]++
		}
	}
	if hits[6] < 1900 {
		t.Errorf("weighted draw: %v", hits)
	}
	for range 100 {
		if got := v.scanWeighted(pool, rnd, 2, true, nil, &buf); len(got) != 2 || got[0] < 5 || got[1] < 5 {
			t.Fatalf("weighted scan: %v", got)
		}
		if got := v.scanWeighted(pool, rnd, 3, false, nil, &buf); len(got) != 3 {
			t.Fatalf("scan: %v", got)
		}
	}
	// A pool that changed under the same length is noticed.
	other := testPool(append([]string{"dr-x:1"}, addrs[1:]...)...)
	if v.matches(other) || v.matches(other[:3]) {
		t.Error("matches")
	}
	empty := vs.get(testFeedback, nil, nil)
	if got := empty.draw(nil, rnd, 2, false, nil, &buf); len(got) != 0 {
		t.Error("empty draw")
	}
}

func TestP2CConfig(t *testing.T) {
	var s P2C
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("p2c api {\n load_metric both\n choices 3\n latency_window 5s\n penalize_failures off\n failure_penalty 1s\n max_retry_after 9s\n}")); err != nil {
		t.Fatal(err)
	}
	if s.Upstream != "api" || s.LoadMetric != loadBoth || s.Choices != 3 || s.LatencyWindow != caddy.Duration(5*time.Second) ||
		*s.PenalizeFailures || s.FailurePenalty != caddy.Duration(time.Second) || s.MaxRetryAfter != caddy.Duration(9*time.Second) {
		t.Fatalf("parsed %+v", &s)
	}
	for _, bad := range []*P2C{{LoadMetric: "cpu"}, {Choices: 1}, {LatencyWindow: -1}} {
		bad.Provision(testCtx)
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: expected an error", bad)
		}
	}
}
