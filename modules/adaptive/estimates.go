package adaptive

import (
	"math"
	"sort"

	"github.com/sentinel-proxy/sentinel/registry"
)

// Estimate is what one live selection policy knows of one target: the
// figures behind its choices, as the control-plane API and the `upstreams`
// builtin show them.
type Estimate struct {
	// Policy is the selection policy's name (peak_ewma, adaptive, …).
	Policy string `json:"policy"`
	// LatencySeconds is the policy's latency estimate of the target (time
	// to response headers): the peak-EWMA cost, adaptive's average, or the
	// transport's 10 s average for the policies that keep none.
	LatencySeconds float64 `json:"latency_seconds"`
	// ErrorRatio is the policy's failure-ratio estimate, 0 to 1.
	ErrorRatio float64 `json:"error_ratio"`
	// Weight is the effective weight (adaptive's adjusted weight, else the
	// registry's).
	Weight float64 `json:"weight"`
	// Score is the policy's current load (peak_ewma, p2c,
	// weighted_least_connections: lower wins) or score (adaptive: higher
	// wins); absent for the policies that keep none.
	Score *float64 `json:"score,omitempty"`
	// Selections is how many times the policy chose the target.
	Selections uint64 `json:"selections"`
}

// Estimates returns, for each target address of upstream (in reg, the
// registry the policies were provisioned with), the estimates of the live
// policies balancing that upstream (one per policy name,
// sorted by name). It reads the same state as the metrics, when asked:
// nothing is computed on the request path.
func Estimates(reg *registry.Registry, upstream string) map[string][]Estimate {
	lb := feedbackOf(reg).lb
	lb.mu.Lock()
	srcs := make([]metricsSource, 0, len(lb.sources))
	for s := range lb.sources {
		if _, u := s.lbLabels(); u == upstream {
			srcs = append(srcs, s)
		}
	}
	lb.mu.Unlock()
	out := map[string][]Estimate{}
	seen := map[[2]string]bool{}
	now := monotime()
	for _, s := range srcs {
		policy, _ := s.lbLabels()
		s.lbMetrics(now, func(target string, m targetMetrics) {
			if seen[[2]string{policy, target}] {
				return
			}
			seen[[2]string{policy, target}] = true
			e := Estimate{Policy: policy, LatencySeconds: finite(m.latency), ErrorRatio: finite(m.errorRatio), Weight: finite(m.weight), Selections: m.selections}
			if m.hasScore {
				sc := finite(m.score)
				e.Score = &sc
			}
			out[target] = append(out[target], e)
		})
	}
	for _, es := range out {
		sort.Slice(es, func(i, j int) bool { return es[i].Policy < es[j].Policy })
	}
	return out
}

// finite maps the infinities and NaN a score can hold (an unprobed target's
// penalty) to values JSON can carry.
func finite(f float64) float64 {
	switch {
	case math.IsNaN(f):
		return 0
	case math.IsInf(f, 1):
		return math.MaxFloat64
	case math.IsInf(f, -1):
		return -math.MaxFloat64
	}
	return f
}
