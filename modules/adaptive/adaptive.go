package adaptive

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(Adaptive))
}

// Adaptive is the original Sentinel's adaptive balancer, fed as it was
// meant to be: every outcome the sentinel transport sees (so use
// `"transport": {"protocol": "sentinel"}`) — failures included — counts,
// and requests in flight are released when they end.
//
// Each target has an effective weight, starting at its configured weight
// (from the registry upstream). Once per adjustment interval, every target
// with at least `min_requests` requests in the interval updates its error
// ratio and mean latency (EWMAs with factor `ewma_alpha`; fewer requests
// carry over, for at most `max_carry_over` intervals): above a
// threshold the weight is multiplied by penalty_rate + (1-penalty_rate)·adj
// (adj < 1 shrinks with the excess), otherwise by `recovery_factor`; it
// stays between `min_weight_ratio` and `max_weight_ratio` times the
// configured weight. A target is then chosen at random in proportion to
//
//	weight / (1 + in flight + error_ewma·100 + latency_ewma_ms/10)
//
// An internal breaker keeps a target out after `breaker_failures`
// consecutive failures, for `breaker_timeout`; then it is tried again, and
// `breaker_successes` consecutive successes close the breaker. When every
// target's breaker is open, the breakers are ignored. A target that comes
// back into the pool (healthy again) starts over at its configured weight.
// The state lives in the process, per upstream: a reload keeps it.
type Adaptive struct {
	// Upstream is the registry upstream whose configured weights apply.
	// Optional (every weight is then 1); it also labels the metrics.
	Upstream string `json:"upstream,omitempty"`

	// AdjustmentInterval is the time between weight adjustments (default
	// 500ms; the original's constant was 10s).
	AdjustmentInterval caddy.Duration `json:"adjustment_interval,omitempty"`

	// MinWeightRatio is the lowest effective weight, as a fraction of
	// the configured weight (default 0.1).
	MinWeightRatio float64 `json:"min_weight_ratio,omitempty"`

	// MaxWeightRatio is the highest effective weight, as a multiple of
	// the configured weight (default 2.0).
	MaxWeightRatio float64 `json:"max_weight_ratio,omitempty"`

	// ErrorThreshold is the failure ratio above which the weight drops
	// (default 0.05).
	ErrorThreshold float64 `json:"error_threshold,omitempty"`

	// LatencyThreshold is the mean latency (time to response headers)
	// above which the weight drops (default 500ms).
	LatencyThreshold caddy.Duration `json:"latency_threshold,omitempty"`

	// LatencyRatio makes the latency threshold relative as well: a target
	// whose mean latency is above latency_ratio × the median of the
	// pool's (and above 1 ms) is penalised like one above
	// latency_threshold (default 3; -1: off, as the original, which only
	// knew the absolute threshold).
	LatencyRatio float64 `json:"latency_ratio,omitempty"`

	// EWMAAlpha is the weight of the last interval in the error and
	// latency averages (default 0.8).
	EWMAAlpha float64 `json:"ewma_alpha,omitempty"`

	// RecoveryFactor multiplies the weight after a healthy interval
	// (default 1.1).
	RecoveryFactor float64 `json:"recovery_factor,omitempty"`

	// PenaltyRate is the weight factor of the worst interval; an
	// unhealthy interval multiplies the weight by penalty_rate +
	// (1-penalty_rate)·adj (default 0.7).
	PenaltyRate float64 `json:"penalty_rate,omitempty"`

	// MinRequests is the number of requests an interval needs for the
	// target's weight to be adjusted; fewer carry over to the next
	// interval (default 5; the original's constant was 100, for a
	// 10 s interval).
	MinRequests int `json:"min_requests,omitempty"`

	// MaxCarryOver is the number of intervals a target's counters carry
	// over at most: then the target is adjusted with the requests it got
	// or, if it got none, its error and latency averages fade as after a
	// clean interval, so that a target its own penalty starves is tried
	// again (default 3; -1: carry over without limit, as the original).
	MaxCarryOver int `json:"max_carry_over,omitempty"`

	// BreakerFailures is the number of consecutive failures that open the
	// breaker of a target (default 5).
	BreakerFailures int `json:"breaker_failures,omitempty"`

	// BreakerSuccesses is the number of consecutive successes that close
	// it (default 5).
	BreakerSuccesses int `json:"breaker_successes,omitempty"`

	// BreakerTimeout is how long an open breaker keeps its target out
	// before it is tried again (default: the adjustment interval).
	BreakerTimeout caddy.Duration `json:"breaker_timeout,omitempty"`

	// DisableBreaker turns the internal breaker off.
	DisableBreaker bool `json:"disable_breaker,omitempty"`

	// SlowMargin: a target whose recent floor latency (a faster response
	// counts at once, slower ones raise it with an average; time
	// constant two adjustment intervals; while requests wait on it, the
	// time since its last answer when longer) is above latency_ratio ×
	// the pool's median and more than slow_margin above it is left out
	// of the draw while a target that is not slow is available (default
	// 5ms; the rule is off with latency_ratio -1). Without it, when the
	// proxy itself is CPU-bound, the requests in flight on the healthy
	// targets (waiting for the proxy) make a slow target's score look as
	// good as theirs.
	SlowMargin caddy.Duration `json:"slow_margin,omitempty"`

	base
	params adaptiveParams
	group  *adaptiveGroup
	views  views[*adaptiveTarget]
}

// CaddyModule returns the Caddy module information.
func (*Adaptive) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.adaptive",
		New: func() caddy.Module { return new(Adaptive) },
	}
}

// Provision applies the defaults, finds the upstream's shared state and
// registers the metrics.
func (s *Adaptive) Provision(ctx caddy.Context) error {
	or := func(v, def float64) float64 {
		if v == 0 {
			return def
		}
		return v
	}
	interval := durationOr(s.AdjustmentInterval, int64(500*time.Millisecond))
	s.params = adaptiveParams{
		interval:         interval,
		minRatio:         or(s.MinWeightRatio, 0.1),
		maxRatio:         or(s.MaxWeightRatio, 2.0),
		errThreshold:     or(s.ErrorThreshold, 0.05),
		latThreshold:     float64(durationOr(s.LatencyThreshold, int64(500*time.Millisecond))),
		latRatio:         max(or(s.LatencyRatio, 3), 0),
		alpha:            or(s.EWMAAlpha, 0.8),
		recovery:         or(s.RecoveryFactor, 1.1),
		penalty:          or(s.PenaltyRate, 0.7),
		minRequests:      uint64(or(float64(s.MinRequests), 5)),
		maxCarryOver:     int(or(float64(s.MaxCarryOver), 3)),
		breakerFailures:  int(or(float64(s.BreakerFailures), 5)),
		breakerSuccesses: int(or(float64(s.BreakerSuccesses), 5)),
		breakerTimeout:   durationOr(s.BreakerTimeout, interval),
	}
	if s.DisableBreaker {
		s.params.breakerFailures = 0
	}
	s.params.slow = slowRule{ratio: s.params.latRatio, margin: float64(durationOr(s.SlowMargin, int64(defaultSlowMargin)))}
	if err := s.setup(ctx, "adaptive", s.Upstream, s.params); err != nil {
		return err
	}
	now := s.now()
	s.group = s.policy.sharedOr(func() any { return newAdaptiveGroup(s.params, now) }).(*adaptiveGroup)
	s.views.item = func(tg *Target, w float64) *adaptiveTarget {
		t := s.attach(tg, func() observer { return newAdaptiveTarget(s.group, w) }).(*adaptiveTarget)
		t.setConfigured(w)
		return t
	}
	s.views.finish = func(v, _ *view[*adaptiveTarget]) { s.group.rejoin(v.addrs, v.items) }
	return registerMetrics(ctx, s)
}

// Validate checks the tunables.
func (s *Adaptive) Validate() error {
	p := s.params
	switch {
	case p.minRatio <= 0 || p.maxRatio < p.minRatio:
		return fmt.Errorf("adaptive: need 0 < min_weight_ratio ≤ max_weight_ratio")
	case p.errThreshold < 0 || p.errThreshold > 1:
		return fmt.Errorf("adaptive: error_threshold must be between 0 and 1")
	case p.alpha <= 0 || p.alpha > 1:
		return fmt.Errorf("adaptive: ewma_alpha must be in (0, 1]")
	case p.recovery < 1:
		return fmt.Errorf("adaptive: recovery_factor must be at least 1")
	case p.penalty <= 0 || p.penalty > 1:
		return fmt.Errorf("adaptive: penalty_rate must be in (0, 1]")
	case s.MinRequests < 0 || s.BreakerFailures < 0 || s.BreakerSuccesses < 0 || s.MaxCarryOver < -1:
		return fmt.Errorf("adaptive: counts must not be negative")
	case s.LatencyRatio < 0 && s.LatencyRatio != -1:
		return fmt.Errorf("adaptive: latency_ratio must be positive, or -1 for none")
	case s.LatencyRatio > 0 && s.LatencyRatio <= 1:
		return fmt.Errorf("adaptive: latency_ratio must be above 1 (a pool's median target must not be penalised)")
	case s.AdjustmentInterval < 0 || s.LatencyThreshold < 0 || s.BreakerTimeout < 0 || s.SlowMargin < 0:
		return fmt.Errorf("adaptive: durations must not be negative")
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *Adaptive) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// maxStackScores is the pool size up to which the scores of a selection
// live on the stack.
const maxStackScores = 256

// Select adjusts the weights when an interval has passed, then draws a
// target at random in proportion to the scores.
func (s *Adaptive) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	reg := s.regPool()
	v := s.views.scanning(s.fb, pool, reg)
	now := s.now()
	s.group.maybeAdjust(now, v.items)
	var buf [maxStackScores]float64
	scores := buf[:0]
	if len(pool) > maxStackScores {
		scores = make([]float64, 0, len(pool))
	}
	// A retry skips the targets the request was already sent to, when
	// another is available.
	i := selectUntried(r, func(ex *attempts) int {
		i := s.pick(pool, v, now, false, ex, scores)
		if i == pickStale {
			v = s.views.get(s.fb, pool, reg)
			i = s.pick(pool, v, now, false, ex, scores)
		}
		if i == pickNone {
			// Every available target's breaker is open: ignore the breakers.
			i = s.pick(pool, v, now, true, ex, scores)
		}
		return i
	})
	if i < 0 {
		return nil
	}
	v.items[i].selections.Add(1)
	return pool[i]
}

// The results of pick that are not an index.
const (
	pickEmpty = -1 // nothing available
	pickNone  = -2 // nothing available with a closed breaker
	pickStale = -3 // the pool is not the view's
)

// pick draws a target not in ex in proportion to the scores, leaving the
// slow targets out while one that is not slow is available.
func (s *Adaptive) pick(pool reverseproxy.UpstreamPool, v *view[*adaptiveTarget], now int64, ignoreBreakers bool, ex *attempts, scores []float64) int {
	eligible := func(i int, u *reverseproxy.Upstream) bool {
		return ex.avail(u) && v.weights[i] > 0 && (ignoreBreakers || !v.items[i].blocked(now))
	}
	skipSlow := false
	for i, u := range pool {
		if s.params.slow.ratio <= 0 {
			break // the rule is off
		}
		if v.stale(pool, i) {
			return pickStale
		}
		if eligible(i, u) && !v.items[i].slowAt(now, v.targets[i].InFlight()) {
			skipSlow = true
			break
		}
	}
	total, best, bestScore, found := 0.0, pickEmpty, 0.0, false
	for i, u := range pool {
		if v.stale(pool, i) {
			return pickStale
		}
		sc := -1.0
		if eligible(i, u) && (!skipSlow || !v.items[i].slowAt(now, v.targets[i].InFlight())) {
			sc = v.items[i].score(v.targets[i].InFlight())
			found = true
			if best < 0 || sc > bestScore {
				best, bestScore = i, sc
			}
			total += max(sc, 0)
		}
		scores = append(scores, sc)
	}
	if !found {
		if ignoreBreakers {
			return pickEmpty
		}
		return pickNone
	}
	if total <= 0 {
		return best
	}
	r := s.rnd.Float64() * total
	acc := 0.0
	for i, sc := range scores {
		if sc <= 0 {
			continue
		}
		acc += sc
		if acc >= r {
			return i
		}
	}
	return best
}

// lbMetrics reports the error and latency EWMAs, the effective weight and
// the score of each target.
func (s *Adaptive) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	v := s.views.fresh(s.fb, s.regPool())
	if v == nil {
		return
	}
	for i, t := range v.items {
		inFlight := v.targets[i].InFlight()
		emit(v.addrs[i], targetMetrics{
			selections: t.selections.Load(),
			inFlight:   inFlight,
			latency:    t.ewmaLat.Load() / 1e9,
			errorRatio: t.ewmaErr.Load(),
			weight:     t.weight.Load(),
			score:      t.score(inFlight),
			hasScore:   true,
		})
	}
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy adaptive [<upstream>] {
//	    upstream            <id>
//	    adjustment_interval <duration>
//	    min_weight_ratio    <ratio>
//	    max_weight_ratio    <ratio>
//	    error_threshold     <ratio>
//	    latency_threshold   <duration>
//	    ewma_alpha          <factor>
//	    recovery_factor     <factor>
//	    penalty_rate        <factor>
//	    min_requests        <n>
//	    max_carry_over      <n>
//	    breaker_failures    <n>
//	    breaker_successes   <n>
//	    breaker_timeout     <duration>
//	    breaker             on|off
//	    slow_margin         <duration>
//	}
func (s *Adaptive) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	breaker := true
	err := parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"adjustment_interval": durationArg(&s.AdjustmentInterval),
		"min_weight_ratio":    floatArg(&s.MinWeightRatio),
		"max_weight_ratio":    floatArg(&s.MaxWeightRatio),
		"error_threshold":     floatArg(&s.ErrorThreshold),
		"latency_threshold":   durationArg(&s.LatencyThreshold),
		"latency_ratio":       floatArg(&s.LatencyRatio),
		"ewma_alpha":          floatArg(&s.EWMAAlpha),
		"recovery_factor":     floatArg(&s.RecoveryFactor),
		"penalty_rate":        floatArg(&s.PenaltyRate),
		"min_requests":        intArg(&s.MinRequests),
		"max_carry_over":      intArg(&s.MaxCarryOver),
		"breaker_failures":    intArg(&s.BreakerFailures),
		"breaker_successes":   intArg(&s.BreakerSuccesses),
		"breaker_timeout":     durationArg(&s.BreakerTimeout),
		"breaker":             boolArg(&breaker),
		"slow_margin":         durationArg(&s.SlowMargin),
	})
	s.DisableBreaker = !breaker
	return err
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Adaptive)(nil)
	_ caddy.Validator       = (*Adaptive)(nil)
	_ caddy.CleanerUpper    = (*Adaptive)(nil)
	_ reverseproxy.Selector = (*Adaptive)(nil)
	_ caddyfile.Unmarshaler = (*Adaptive)(nil)
)
