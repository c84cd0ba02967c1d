package adaptive

import "time"

// The defaults of the slow-target rule of peak_ewma and adaptive.
const (
	defaultSlowRatio  = 3
	defaultSlowMargin = 5 * time.Millisecond
)

// slowRule tells a slow target from its latency and a reference latency
// (the lowest of the compared candidates for peak_ewma, the pool's median
// for adaptive): slow when above ratio × the reference and more than
// margin above it. A slow target is chosen only when no target that is
// not slow is available.
//
// Why: the load-aware formulas (latency × (in flight + 1) for peak_ewma,
// weight ÷ (1 + in flight + …) for adaptive) assume that requests in flight
// wait at the target. When the proxy itself is CPU-bound, they wait in the
// proxy: every healthy target has tens of requests in flight, and a target
// ten times slower with none looks as loaded as they do, so it keeps a
// steady share of a few percent of the requests — and the p99 is its
// latency. Ruling the slow target out while a faster one is available
// makes its share the probes its estimate's decay lets through.
type slowRule struct {
	// ratio is the factor above the reference (≤ 0: the rule is off).
	ratio float64
	// margin is the minimum excess over the reference, in ns.
	margin float64
}

// slow reports whether a latency is slow against the reference (both in
// ns); an unknown latency or reference (≤ 0) is not.
func (r slowRule) slow(lat, ref float64) bool {
	return r.ratio > 0 && ref > 0 && lat > r.ratio*ref && lat-ref > r.margin
}
