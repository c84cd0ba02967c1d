package agents

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// registry is the process-level state of the package (a documented
// registry, like Caddy's reverse-proxy host pool): the pools of the
// configured agents keyed by agent id + config hash, so that a reload
// that keeps an agent unchanged keeps its connections; the pools of
// live-registered agents by id; the registration listeners by address;
// and the app of the running config.
type registry struct {
	usage     *caddy.UsagePool // "id#hash" → *pool
	listeners *caddy.UsagePool // "unix:/path" | "tcp:addr" → *regListener
	current   atomic.Pointer[App]

	mu   sync.Mutex
	live map[string]*pool
}

// reg is the package's registry.
var reg = &registry{usage: caddy.NewUsagePool(), listeners: caddy.NewUsagePool(), live: map[string]*pool{}}

// livePool returns the live pool of an agent id, or nil.
func (r *registry) livePool(id string) *pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[id]
}

// liveOrNew returns the live pool of id, creating it with s.
func (r *registry) liveOrNew(s *settings, log *zap.Logger) *pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.live[s.id]; p != nil && !p.draining.Load() {
		return p
	}
	p := newPool(s, log, true)
	r.live[s.id] = p
	return p
}

// dropLive removes a live pool that has no connection left and drains it.
func (r *registry) dropLive(p *pool) {
	r.mu.Lock()
	if r.live[p.s.id] != p || p.connected() > 0 {
		r.mu.Unlock()
		return
	}
	delete(r.live, p.s.id)
	r.mu.Unlock()
	_ = p.Destruct()
}

// pools lists the pools in use: the running config's, then the live
// ones, sorted by id.
func (r *registry) pools() []*pool {
	var out []*pool
	if a := r.current.Load(); a != nil {
		for _, p := range a.pools {
			out = append(out, p)
		}
	}
	r.mu.Lock()
	for _, p := range r.live {
		out = append(out, p)
	}
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].s.id < out[j].s.id })
	return out
}

// lookup finds the pool serving an agent id for a config: its own
// configured pool, else a live-registered one.
func (r *registry) lookup(a *App, id string) *pool {
	if a != nil {
		if p := a.pools[id]; p != nil {
			return p
		}
	}
	return r.livePool(id)
}
