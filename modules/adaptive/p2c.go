package adaptive

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(P2C))
}

// The load metrics of P2C.
const (
	loadInFlight = "in_flight"
	loadLatency  = "latency"
	loadBoth     = "both"
)

// P2C is the power of two choices: two available targets are drawn at
// random — in proportion to their registry weights when `upstream` is set
// — and the request goes to the one with the lower load:
//
//   - in_flight (default): the requests in flight;
//   - latency: the mean time to response headers over the latency window,
//     in microseconds (an exponential average with the window as time
//     constant, fading toward 0 while a target gets no traffic, so that a
//     target that was slow is tried again);
//   - both: in flight + latency in µs / 100 (the original's "combined").
//
// With the latency metrics, failures (a connection error or timeout, a
// 5xx, a 429) count as a latency of at least `failure_penalty` (or the
// response's Retry-After when longer, up to `max_retry_after`), as in
// peak_ewma: a target that fails fast does not look fast. in_flight is not
// failure-aware.
//
// The counts and latencies come from the sentinel transport (use
// `"transport": {"protocol": "sentinel"}`) and are kept per target
// address for the process.
type P2C struct {
	// Upstream is the registry upstream whose weights bias the draw.
	// Optional; it also labels the metrics.
	Upstream string `json:"upstream,omitempty"`

	// LoadMetric is in_flight (default), latency or both.
	LoadMetric string `json:"load_metric,omitempty"`

	// Choices is the number of targets drawn (default 2; 3 is power of
	// three).
	Choices int `json:"choices,omitempty"`

	// LatencyWindow is the time constant of the latency average (default
	// 10s).
	LatencyWindow caddy.Duration `json:"latency_window,omitempty"`

	// PenalizeFailures makes failures and 429s count as a latency of at
	// least FailurePenalty in the latency average (default true).
	PenalizeFailures *bool `json:"penalize_failures,omitempty"`

	// FailurePenalty is the latency a failure counts as (default 5s).
	FailurePenalty caddy.Duration `json:"failure_penalty,omitempty"`

	// MaxRetryAfter caps the Retry-After of a 429 or 503 that lengthens
	// the penalty (default 300s).
	MaxRetryAfter caddy.Duration `json:"max_retry_after,omitempty"`

	base
	views views[*p2cTarget]
}

// p2cTarget is the P2C state of a target.
type p2cTarget struct {
	lat        *meanEstimator
	selections *atomic.Uint64
}

// p2cKey identifies a P2C latency average.
type p2cKey struct {
	upstream                       string
	window, penalty, maxRetryAfter int64
}

// CaddyModule returns the Caddy module information.
func (*P2C) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.p2c",
		New: func() caddy.Module { return new(P2C) },
	}
}

// Provision applies the defaults and registers the metrics.
func (s *P2C) Provision(ctx caddy.Context) error {
	if s.LoadMetric == "" {
		s.LoadMetric = loadInFlight
	}
	if s.Choices == 0 {
		s.Choices = 2
	}
	key := p2cKey{
		upstream:      s.Upstream,
		window:        durationOr(s.LatencyWindow, int64(10*time.Second)),
		penalty:       durationOr(s.FailurePenalty, int64(5*time.Second)),
		maxRetryAfter: durationOr(s.MaxRetryAfter, int64(300*time.Second)),
	}
	if s.PenalizeFailures != nil && !*s.PenalizeFailures {
		key.penalty = 0
	}
	if err := s.setup(ctx, "p2c", s.Upstream, key); err != nil {
		return err
	}
	s.views.item = func(tg *Target, _ float64) *p2cTarget {
		return &p2cTarget{
			lat: s.attach(tg, func() observer {
				m := newMeanEstimator(float64(key.window))
				m.penalty, m.maxRetryAfter = float64(key.penalty), float64(key.maxRetryAfter)
				return m
			}).(*meanEstimator),
			selections: s.selections(tg.addr),
		}
	}
	return registerMetrics(ctx, s)
}

// Validate checks the parameters.
func (s *P2C) Validate() error {
	switch s.LoadMetric {
	case loadInFlight, loadLatency, loadBoth:
	default:
		return fmt.Errorf("p2c: load_metric %q: expected in_flight, latency or both", s.LoadMetric)
	}
	if s.Choices < 2 || s.Choices > maxChoices {
		return fmt.Errorf("p2c: choices must be between 2 and %d", maxChoices)
	}
	if s.LatencyWindow < 0 || s.FailurePenalty < 0 || s.MaxRetryAfter < 0 {
		return fmt.Errorf("p2c: durations must not be negative")
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *P2C) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// load is the load of target i.
func (s *P2C) load(v *view[*p2cTarget], i int, now int64) float64 {
	switch s.LoadMetric {
	case loadLatency:
		return v.items[i].lat.latencyAt(now) / 1e3
	case loadBoth:
		return float64(v.targets[i].InFlight()) + v.items[i].lat.latencyAt(now)/1e3/100
	}
	return float64(v.targets[i].InFlight())
}

// Select draws Choices targets (not already tried by the request, when
// others are available) and returns the least loaded.
func (s *P2C) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	var buf [maxChoices]int
	reg, now := s.regPool(), s.now()
	var v *view[*p2cTarget]
	best := selectUntried(r, func(ex *attempts) int {
		var cands []int
		v, cands = s.views.drawn(s.fb, pool, reg, s.rnd, s.Choices, true, ex, &buf)
		return lowest(cands, s.rnd, func(i int) float64 { return s.load(v, i, now) })
	})
	if best >= 0 {
		v.items[best].selections.Add(1)
	}
	return upstreamAt(pool, best)
}

// lbMetrics reports the latency average and the load of each target.
func (s *P2C) lbMetrics(now int64, emit func(string, targetMetrics)) {
	v := s.views.fresh(s.fb, s.regPool())
	if v == nil {
		return
	}
	for i, t := range v.items {
		m := baselineMetrics(v.targets[i], t.selections.Load(), v.weights[i])
		m.latency = t.lat.latencyAt(now) / 1e9
		m.score, m.hasScore = s.load(v, i, now), true
		emit(v.addrs[i], m)
	}
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy p2c [<upstream>] {
//	    upstream          <id>
//	    load_metric       in_flight|latency|both
//	    choices           <n>
//	    latency_window    <duration>
//	    penalize_failures on|off
//	    failure_penalty   <duration>
//	    max_retry_after   <duration>
//	}
func (s *P2C) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"load_metric":       stringArg(&s.LoadMetric),
		"choices":           intArg(&s.Choices),
		"latency_window":    durationArg(&s.LatencyWindow),
		"penalize_failures": boolPtrArg(&s.PenalizeFailures),
		"failure_penalty":   durationArg(&s.FailurePenalty),
		"max_retry_after":   durationArg(&s.MaxRetryAfter),
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*P2C)(nil)
	_ caddy.Validator       = (*P2C)(nil)
	_ caddy.CleanerUpper    = (*P2C)(nil)
	_ reverseproxy.Selector = (*P2C)(nil)
	_ caddyfile.Unmarshaler = (*P2C)(nil)
)
