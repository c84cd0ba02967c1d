package adaptive

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(WeightedLeastConnections))
}

// The tie breakers of weighted_least_connections.
const (
	tieWeight      = "weight"
	tieConnections = "connections"
	tieRoundRobin  = "round_robin"
)

// WeightedLeastConnections sends each request to the available target
// with the fewest requests in flight per unit of weight (in flight ÷
// weight, weights read live from the registry upstream). Ties go to the
// higher weight (default), to the fewer requests in flight, or in turn
// (round_robin); targets still tied are chosen at random. The counts are
// the sentinel transport's, per target address for the process.
type WeightedLeastConnections struct {
	// Upstream is the registry upstream whose weights apply. Optional
	// (every weight is then 1); it also labels the metrics.
	Upstream string `json:"upstream,omitempty"`

	// TieBreaker is weight (default), connections or round_robin.
	TieBreaker string `json:"tie_breaker,omitempty"`

	base
	robin atomic.Uint32
	views views[*atomic.Uint64]
}

// CaddyModule returns the Caddy module information.
func (*WeightedLeastConnections) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.weighted_least_connections",
		New: func() caddy.Module { return new(WeightedLeastConnections) },
	}
}

// Provision applies the defaults and registers the metrics.
func (s *WeightedLeastConnections) Provision(ctx caddy.Context) error {
	if err := s.setup(ctx, "weighted_least_connections", s.Upstream, nil); err != nil {
		return err
	}
	if s.TieBreaker == "" {
		s.TieBreaker = tieWeight
	}
	s.views.item = func(tg *Target, _ float64) *atomic.Uint64 { return s.selections(tg.addr) }
	return registerMetrics(ctx, s)
}

// Validate checks the tie breaker.
func (s *WeightedLeastConnections) Validate() error {
	switch s.TieBreaker {
	case tieWeight, tieConnections, tieRoundRobin:
		return nil
	}
	return fmt.Errorf("weighted_least_connections: tie_breaker %q: expected weight, connections or round_robin", s.TieBreaker)
}

// Cleanup removes the policy from the metrics.
func (s *WeightedLeastConnections) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// wlcEpsilon is how close two scores must be to tie.
const wlcEpsilon = 1e-9

// Select returns the available target with the lowest in flight ÷ weight
// (not one the request was already sent to, when another is available).
func (s *WeightedLeastConnections) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	reg := s.regPool()
	v := s.views.scanning(s.fb, pool, reg)
	best := selectUntried(r, func(ex *attempts) int {
		best := s.pick(pool, v, ex)
		if best == pickStale {
			v = s.views.get(s.fb, pool, reg)
			best = s.pick(pool, v, ex)
		}
		return best
	})
	if best < 0 {
		return nil
	}
	v.items[best].Add(1)
	return pool[best]
}

// pick returns the index of the best target not in ex, pickEmpty or
// pickStale.
func (s *WeightedLeastConnections) pick(pool reverseproxy.UpstreamPool, v *view[*atomic.Uint64], ex *attempts) int {
	n := len(pool)
	start := 0
	if s.TieBreaker == tieRoundRobin && n > 0 {
		start = int(s.robin.Add(1) % uint32(n))
	}
	best, ties := -1, 0
	tb := tieBreak{rnd: s.rnd}
	var bestScore, bestW float64
	var bestConns int64
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		if v.stale(pool, i) {
			return pickStale
		}
		w := v.weights[i]
		if w <= 0 || !ex.avail(pool[i]) {
			continue
		}
		conns := v.targets[i].InFlight()
		score := float64(conns) / max(w, 1)
		switch {
		case best < 0 || score < bestScore-wlcEpsilon:
		case score > bestScore+wlcEpsilon:
			continue
		default: // a tie
			better, same := false, false
			switch s.TieBreaker {
			case tieWeight:
				better, same = w > bestW, w == bestW
			case tieConnections:
				better, same = conns < bestConns, conns == bestConns
			case tieRoundRobin:
				// The first in turn wins.
			}
			if !better {
				if same {
					ties++
					if tb.keep(ties) {
						best = i
					}
				}
				continue
			}
		}
		best, ties, bestScore, bestW, bestConns = i, 1, score, w, conns
	}
	return best
}

// lbMetrics reports in flight ÷ weight as the score.
func (s *WeightedLeastConnections) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	v := s.views.fresh(s.fb, s.regPool())
	if v == nil {
		return
	}
	for i, c := range v.items {
		m := baselineMetrics(v.targets[i], c.Load(), v.weights[i])
		m.score, m.hasScore = float64(m.inFlight)/max(v.weights[i], 1), true
		emit(v.addrs[i], m)
	}
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy weighted_least_connections [<upstream>] {
//	    upstream    <id>
//	    tie_breaker weight|connections|round_robin
//	}
func (s *WeightedLeastConnections) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"tie_breaker": stringArg(&s.TieBreaker),
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*WeightedLeastConnections)(nil)
	_ caddy.Validator       = (*WeightedLeastConnections)(nil)
	_ caddy.CleanerUpper    = (*WeightedLeastConnections)(nil)
	_ reverseproxy.Selector = (*WeightedLeastConnections)(nil)
	_ caddyfile.Unmarshaler = (*WeightedLeastConnections)(nil)
)
