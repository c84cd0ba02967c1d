package adaptive

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(PeakEWMA))
}

// PeakEWMA is the peak-EWMA balancer of Finagle and Linkerd: it draws two
// available targets at random (power of two choices) and sends the
// request to the one with the lower load, where
//
//	load = latency estimate × (requests in flight + 1)
//
// The latency estimate is the time to response headers that the
// sentinel transport measures (so use `"transport": {"protocol":
// "sentinel"}`): a slower response raises it at once (the peak), faster
// ones bring it down with an exponential moving average, and it decays
// toward zero as time passes without traffic (decay time τ), so a target
// that was avoided is tried again after about τ·ln(its estimate ÷ the
// others' load). Estimates are kept per target address for the process,
// so a config reload keeps them.
//
// Failures (a connection error or timeout, a 5xx, a 429) count as a
// latency of at least `failure_penalty` (Linkerd's load biaser), or as the
// response's Retry-After when longer (up to `max_retry_after`): a target
// that fails fast does not look fast.
//
// A target never seen has no estimate: it is tried with one request at a
// time until its first response (Finagle), unless `default_rtt` is set.
type PeakEWMA struct {
	// Upstream is the registry upstream whose weights apply: the load of
	// a target is divided by its weight. Optional; it also labels the
	// metrics.
	Upstream string `json:"upstream,omitempty"`

	// DecayTime is the time constant τ of the estimate (default 10s;
	// half-life τ·ln 2).
	DecayTime caddy.Duration `json:"decay_time,omitempty"`

	// DefaultRTT is the estimate of a target never observed. Default 0:
	// a new target gets one request at a time until it answers.
	DefaultRTT caddy.Duration `json:"default_rtt,omitempty"`

	// PenalizeFailures makes failures and 429s count as a latency of at
	// least FailurePenalty (default true).
	PenalizeFailures *bool `json:"penalize_failures,omitempty"`

	// FailurePenalty is the latency a failure counts as (default 5s).
	FailurePenalty caddy.Duration `json:"failure_penalty,omitempty"`

	// MaxRetryAfter caps the Retry-After of a 429 or 503 that lengthens
	// the penalty (default 300s).
	MaxRetryAfter caddy.Duration `json:"max_retry_after,omitempty"`

	// Choices is how many random targets are compared (default 2; 3 is
	// power of three; at least the number of targets compares them all).
	Choices int `json:"choices,omitempty"`

	// SlowRatio makes a candidate whose floor latency is more than
	// slow_ratio × the lowest of the candidates' (and more than
	// slow_margin above it) lose the comparison whatever the requests in
	// flight, while a candidate that is not that slow is available
	// (default 3; -1: off, Finagle's plain comparison of loads). The
	// floor latency falls to a faster answer at once and rises with an
	// average (time constant 1 s); it is capped by the decaying estimate
	// (so a slow target is tried again) and, while requests wait on the
	// target, raised to the time since its last answer. When the proxy
	// itself is the bottleneck, requests pile up in flight on the healthy
	// targets (waiting for the proxy's CPU, not for the targets), and
	// latency × (in flight + 1) would send a steady share of the requests
	// to a target many times slower.
	SlowRatio float64 `json:"slow_ratio,omitempty"`

	// SlowMargin is how much higher than the lowest the floor latency of
	// a slow candidate must also be (default 5ms), so that the jitter of
	// fast targets does not make one of them "slow".
	SlowMargin caddy.Duration `json:"slow_margin,omitempty"`

	base
	params peakParams
	slow   slowRule
	views  views[*peakEWMA]
}

// CaddyModule returns the Caddy module information.
func (*PeakEWMA) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.peak_ewma",
		New: func() caddy.Module { return new(PeakEWMA) },
	}
}

// Provision applies the defaults and registers the metrics.
func (s *PeakEWMA) Provision(ctx caddy.Context) error {
	if s.Choices == 0 {
		s.Choices = 2
	}
	s.params = peakParams{
		tau:           float64(durationOr(s.DecayTime, int64(10*time.Second))),
		defaultRTT:    float64(max(s.DefaultRTT, 0)),
		penalty:       float64(durationOr(s.FailurePenalty, int64(5*time.Second))),
		maxRetryAfter: float64(durationOr(s.MaxRetryAfter, int64(300*time.Second))),
	}
	if s.PenalizeFailures != nil && !*s.PenalizeFailures {
		s.params.penalty = 0
	}
	s.slow = slowRule{ratio: s.SlowRatio, margin: float64(durationOr(s.SlowMargin, int64(defaultSlowMargin)))}
	if s.slow.ratio == 0 {
		s.slow.ratio = defaultSlowRatio
	}
	if err := s.setup(ctx, "peak_ewma", s.Upstream, s.params); err != nil {
		return err
	}
	s.views.item = func(tg *Target, _ float64) *peakEWMA {
		return s.attach(tg, func() observer { return newPeakEWMA(s.params, s.now()) }).(*peakEWMA)
	}
	return registerMetrics(ctx, s)
}

// Validate checks the parameters.
func (s *PeakEWMA) Validate() error {
	if s.Choices < 2 || s.Choices > maxChoices {
		return fmt.Errorf("peak_ewma: choices must be between 2 and %d", maxChoices)
	}
	if s.DecayTime < 0 || s.DefaultRTT < 0 || s.FailurePenalty < 0 || s.MaxRetryAfter < 0 || s.SlowMargin < 0 {
		return fmt.Errorf("peak_ewma: durations must not be negative")
	}
	if s.SlowRatio != 0 && s.SlowRatio != -1 && s.SlowRatio <= 1 {
		return fmt.Errorf("peak_ewma: slow_ratio must be above 1, or -1 for none")
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *PeakEWMA) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// Select draws Choices available targets (not already tried by the
// request, when others are available) and returns the least loaded.
func (s *PeakEWMA) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	var buf [maxChoices]int
	reg, now := s.regPool(), s.now()
	var v *view[*peakEWMA]
	best := selectUntried(r, func(ex *attempts) int {
		var cands []int
		v, cands = s.views.drawn(s.fb, pool, reg, s.rnd, s.Choices, false, ex, &buf)
		// The candidates' estimates, decayed to now; the slow ones lose
		// while one that is not slow is there.
		var costs, waited [maxChoices]float64
		var pending [maxChoices]int64
		var slow [maxChoices]bool
		fastest, anyFast := math.Inf(1), false
		for j, i := range cands {
			// The rule compares the floor latencies (the cost when
			// lower: it decays, so that a slow target is tried again).
			cost, floor, observed := v.items[i].costSince(now)
			costs[j], pending[j] = cost, v.targets[i].InFlight()
			waited[j] = waitedCost(min(cost, floor), observed, now, pending[j])
			if waited[j] > 0 {
				fastest = min(fastest, waited[j])
			}
		}
		for j, i := range cands {
			slow[j] = s.slow.slow(waited[j], fastest)
			anyFast = anyFast || (!slow[j] && (v.reg == nil || v.weights[i] > 0))
		}
		return lowest(cands, s.rnd, func(i int) float64 {
			j := slices.Index(cands, i)
			if anyFast && slow[j] {
				return math.NaN()
			}
			l := peakLoad(costs[j], pending[j])
			if v.reg != nil {
				if v.weights[i] <= 0 {
					return math.NaN()
				}
				l /= v.weights[i]
			}
			return l
		})
	})
	if best >= 0 {
		v.items[best].selections.Add(1)
	}
	return upstreamAt(pool, best)
}

// lbMetrics reports the estimate (seconds), the baseline error ratio and
// the load of each target.
func (s *PeakEWMA) lbMetrics(now int64, emit func(string, targetMetrics)) {
	v := s.views.fresh(s.fb, s.regPool())
	if v == nil {
		return
	}
	for i, e := range v.items {
		m := baselineMetrics(v.targets[i], e.selections.Load(), v.weights[i])
		est := e.estimate(now)
		m.latency = est / 1e9
		m.score, m.hasScore = peakLoad(est, m.inFlight)/1e9, true
		emit(v.addrs[i], m)
	}
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy peak_ewma [<upstream>] {
//	    upstream          <id>
//	    decay_time        <duration>
//	    default_rtt       <duration>
//	    penalize_failures on|off
//	    failure_penalty   <duration>
//	    max_retry_after   <duration>
//	    choices           <n>
//	    slow_ratio        <ratio>
//	    slow_margin       <duration>
//	}
func (s *PeakEWMA) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"decay_time":        durationArg(&s.DecayTime),
		"default_rtt":       durationArg(&s.DefaultRTT),
		"penalize_failures": boolPtrArg(&s.PenalizeFailures),
		"failure_penalty":   durationArg(&s.FailurePenalty),
		"max_retry_after":   durationArg(&s.MaxRetryAfter),
		"choices":           intArg(&s.Choices),
		"slow_ratio":        floatArg(&s.SlowRatio),
		"slow_margin":       durationArg(&s.SlowMargin),
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*PeakEWMA)(nil)
	_ caddy.Validator       = (*PeakEWMA)(nil)
	_ caddy.CleanerUpper    = (*PeakEWMA)(nil)
	_ reverseproxy.Selector = (*PeakEWMA)(nil)
	_ caddyfile.Unmarshaler = (*PeakEWMA)(nil)
)
