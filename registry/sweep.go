package registry

import (
	"math"
	"sync"
)

// sweepState is what Sweep remembers between two runs.
type sweepState struct {
	mu sync.Mutex
	// targets are the addresses that were targets at the last sweep.
	targets map[string]bool
	// gone are the former targets not yet forgotten, with their request
	// count at the last sweep.
	gone  map[string]uint64
	hooks []func(address string)
}

// OnForget registers f, called with each address Sweep forgets, so that
// the stores keyed by target address (the load balancers' feedback) drop
// it at the same time. Register once per store, at init.
func (r *Registry) OnForget(f func(address string)) {
	r.sweep.mu.Lock()
	r.sweep.hooks = append(r.sweep.hooks, f)
	r.sweep.mu.Unlock()
}

// Sweep forgets the counters of the former targets: the addresses that
// were the target of an upstream at a previous sweep, are the target of
// none now, serve no request, and were sent none during a whole interval
// between two sweeps. With targets that come and go (pods replaced in
// Kubernetes, changes through the API) the per-address state would
// otherwise grow without bound. Addresses that were never registry
// targets (static upstreams of a hand-written config) are kept: a policy
// of such a pool holds their state for the life of its config.
// It returns the addresses forgotten. The sentinel app calls it once a
// minute, so a removed target is forgotten two to three minutes after it
// last served.
func (r *Registry) Sweep() []string {
	inUse := map[string]bool{}
	r.mu.Lock()
	for _, e := range r.upstreams {
		for _, t := range e.effective {
			inUse[t.Address] = true
		}
	}
	r.mu.Unlock()

	r.sweep.mu.Lock()
	defer r.sweep.mu.Unlock()
	if r.sweep.gone == nil {
		r.sweep.gone = map[string]uint64{}
	}
	var forgotten []string
	for addr, last := range r.sweep.gone {
		v, ok := r.stats.Load(addr)
		switch {
		case inUse[addr] || !ok:
			delete(r.sweep.gone, addr)
		case v.(*TargetStats).InFlight() == 0 && v.(*TargetStats).Requests() == last:
			r.stats.Delete(addr)
			delete(r.sweep.gone, addr)
			forgotten = append(forgotten, addr)
		default:
			r.sweep.gone[addr] = idleMark(v.(*TargetStats))
		}
	}
	for addr := range r.sweep.targets {
		if inUse[addr] {
			continue
		}
		if v, ok := r.stats.Load(addr); ok {
			r.sweep.gone[addr] = idleMark(v.(*TargetStats))
		}
	}
	r.sweep.targets = inUse
	for _, a := range forgotten {
		for _, f := range r.sweep.hooks {
			f(a)
		}
	}
	return forgotten
}

// busy marks a former target that was serving at the last sweep: it
// cannot be forgotten at the next one.
const busy = math.MaxUint64

// idleMark is what a sweep remembers of a former target: its request
// count, or busy while requests are in flight.
func idleMark(s *TargetStats) uint64 {
	if s.InFlight() != 0 {
		return busy
	}
	return s.Requests()
}
