package adaptive

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(Weighted))
}

// Weighted is smooth weighted round robin (the nginx algorithm) over the
// available targets, with each target's weight read live from the
// registry: a weight changed through the control-plane API applies to the
// next request. Weights 5:1:1 give a a b a c a a, not a a a a a b c.
type Weighted struct {
	// Upstream is the registry upstream whose weights apply.
	Upstream string `json:"upstream"`

	base
	views views[*atomic.Uint64]
}

// smoothState is the smooth-round-robin state of a view: the current
// weight of each target.
type smoothState struct {
	// sched is the precomputed cycle (nil when the weights do not allow
	// one); Select uses it while its targets are available.
	sched   *schedule
	mu      sync.Mutex
	current []int
}

// CaddyModule returns the Caddy module information.
func (*Weighted) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.sentinel_weighted",
		New: func() caddy.Module { return new(Weighted) },
	}
}

// Provision binds the policy to the registry and registers the metrics.
func (s *Weighted) Provision(ctx caddy.Context) error {
	if err := s.setup(ctx, "sentinel_weighted", s.Upstream, nil); err != nil {
		return err
	}
	s.views.item = func(tg *Target, _ float64) *atomic.Uint64 { return s.selections(tg.addr) }
	s.views.finish = func(v, prev *view[*atomic.Uint64]) {
		st := &smoothState{current: make([]int, len(v.addrs))}
		st.sched = newSchedule(v.weights, func(int) bool { return true })
		if prev != nil {
			// Keep the round's position of the targets that stay.
			old := prev.ext.(*smoothState)
			old.mu.Lock()
			for i, a := range v.addrs {
				for j, b := range prev.addrs {
					if a == b && j < len(old.current) {
						st.current[i] = old.current[j]
						break
					}
				}
			}
			old.mu.Unlock()
		}
		v.ext = st
	}
	return registerMetrics(ctx, s)
}

// Validate checks the upstream id.
func (s *Weighted) Validate() error {
	if s.Upstream == "" {
		return fmt.Errorf("sentinel_weighted: upstream id is required")
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *Weighted) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// Select picks the next target of the precomputed cycle in O(1); when that
// target is unavailable (or the weights allow no cycle), the available
// target with the highest current weight, in O(n). A retry skips the
// targets the request was already sent to, when another is available.
func (s *Weighted) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	reg := s.regPool()
	v := s.views.scanning(s.fb, pool, reg)
	ex := triedOf(r)
	i := pickEmpty
	if sc := v.ext.(*smoothState).sched; sc != nil {
		if i = sc.pick(pool, v.addrs, ex); i == pickStale {
			v = s.views.get(s.fb, pool, reg)
			if sc = v.ext.(*smoothState).sched; sc != nil {
				i = sc.pick(pool, v.addrs, ex)
			}
		}
	}
	if i >= 0 {
		v.items[i].Add(1)
		return pool[i]
	}
	i = selectUntried(r, func(ex *attempts) int {
		i := s.pick(pool, v, ex)
		if i == pickStale {
			v = s.views.get(s.fb, pool, reg)
			i = s.pick(pool, v, ex)
		}
		return i
	})
	if i < 0 {
		return nil
	}
	v.items[i].Add(1)
	return pool[i]
}

// pick runs one step of smooth weighted round robin over the available
// targets not in ex.
func (s *Weighted) pick(pool reverseproxy.UpstreamPool, v *view[*atomic.Uint64], ex *attempts) int {
	st := v.ext.(*smoothState)
	st.mu.Lock()
	defer st.mu.Unlock()
	best, total := pickEmpty, 0
	for i, u := range pool {
		if v.stale(pool, i) {
			return pickStale
		}
		w := int(v.weights[i])
		if w <= 0 || !ex.avail(u) {
			continue
		}
		st.current[i] += w
		total += w
		if best < 0 || st.current[i] > st.current[best] {
			best = i
		}
	}
	if best >= 0 {
		st.current[best] -= total
	}
	return best
}

// lbMetrics reports the selections and weights of the targets.
func (s *Weighted) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	s.views.emitSelections(&s.base, emit)
}

// UnmarshalCaddyfile reads `lb_policy sentinel_weighted <upstream>`.
func (s *Weighted) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Upstream = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Weighted)(nil)
	_ caddy.Validator       = (*Weighted)(nil)
	_ caddy.CleanerUpper    = (*Weighted)(nil)
	_ reverseproxy.Selector = (*Weighted)(nil)
	_ caddyfile.Unmarshaler = (*Weighted)(nil)
)
