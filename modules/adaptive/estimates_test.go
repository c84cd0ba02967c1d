package adaptive

import (
	"math"
	"testing"
	"time"
)

// TestEstimates: the live policies of an upstream report each target's
// estimates, one entry per policy name, sorted; infinities become finite.
func TestEstimates(t *testing.T) {
	reconcile(t, "est", map[string]int{"est-a:1": 1, "est-b:1": 2})
	pe := provision(t, &PeakEWMA{Upstream: "est"}, nil)
	defer pe.Cleanup()
	ad := provision(t, &Adaptive{Upstream: "est"}, nil)
	defer ad.Cleanup()
	other := provision(t, &P2C{Upstream: "est-other"}, nil)
	defer other.Cleanup()
	p := testPool("est-a:1", "est-b:1")
	for range 4 {
		pe.Select(p, nil, nil)
		ad.Select(p, nil, nil)
	}
	feed("est-a:1", monotime(), okSample(int64(3*time.Millisecond)))
	est := Estimates(testReg, "est")
	if len(est) != 2 {
		t.Fatalf("%v", est)
	}
	for addr, es := range est {
		if len(es) != 2 || es[0].Policy != "adaptive" || es[1].Policy != "peak_ewma" {
			t.Fatalf("%s: %+v", addr, es)
		}
		if es[1].Score == nil || es[0].Score == nil {
			t.Errorf("%s: scores missing: %+v", addr, es)
		}
	}
	if w := est["est-b:1"][0].Weight; w != 2 {
		t.Errorf("adaptive weight of est-b:1 = %v, want 2", w)
	}
	if got := est["est-a:1"][0].Selections + est["est-b:1"][0].Selections; got != 4 {
		t.Errorf("adaptive selections %d, want 4", got)
	}
	if len(Estimates(testReg, "nobody")) != 0 {
		t.Error("estimates for an upstream no policy balances")
	}
	for in, want := range map[float64]float64{math.Inf(1): math.MaxFloat64, math.Inf(-1): -math.MaxFloat64, 2: 2} {
		if finite(in) != want {
			t.Errorf("finite(%v) = %v", in, finite(in))
		}
	}
	if finite(math.NaN()) != 0 {
		t.Error("NaN")
	}
}
