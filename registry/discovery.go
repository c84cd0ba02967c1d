package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// OriginDiscovery marks a target that a discoverer found (see Discoverer).
const OriginDiscovery Origin = "discovery"

// ErrDiscovered is the error of an API change that would remove a target
// its upstream's discovery owns.
var ErrDiscovered = errors.New("owned by the upstream's discovery")

// Discoverer finds the targets of an upstream: a module of the
// sentinel.discovery namespace, which the `sentinel` app runs while its
// configuration is the running one.
type Discoverer interface {
	// Discover looks up the targets of upstream until ctx ends, and calls
	// publish with each new complete set it finds. A failed lookup
	// publishes nothing: the last good set stays (a discoverer never
	// publishes an empty set because a lookup failed). publish is not
	// called after Discover returned.
	Discover(ctx context.Context, upstream string, publish func([]TargetSpec))
}

// SetDiscovered replaces the discovered targets of upstream id with ts
// (origin discovery; an address the configuration declares keeps its
// config target). It applies only for the running configuration: a
// generation other than the one Commit made the running one (a config
// that has not started yet, or was replaced) changes nothing and gets
// false. Targets changed through the API keep their changes by address
// (weight, draining) while discovery reports them; discovered targets
// are not saved in the state store.
func (r *Registry) SetDiscovered(generation uint64, id string, ts []TargetSpec) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if generation != r.live {
		return false
	}
	e, ok := r.upstreams[id]
	if !ok || !e.discovery {
		return false
	}
	found := discoveredTargets(ts)
	if sameTargets(found, e.discovered) {
		return true
	}
	e.discovered = found
	e.base = combine(e.config, e.discovered)
	e.effective = merge(e.base, e.override, e.overrideBase)
	r.bump(e)
	r.rebuild()
	return true
}

// Commit makes generation (of Prepare) the running configuration's, whose
// discoverers may change the registry (see SetDiscovered).
func (r *Registry) Commit(generation uint64) {
	r.mu.Lock()
	r.live = generation
	r.mu.Unlock()
}

// discoveredTargets turns a discovered set into targets (sorted by
// address, weight at least 1, each address once).
func discoveredTargets(ts []TargetSpec) []Target {
	out := make([]Target, 0, len(ts))
	seen := map[string]bool{}
	for _, t := range ts {
		if seen[t.Address] {
			continue
		}
		seen[t.Address] = true
		w := min(max(t.Weight, 1), MaxWeight)
		out = append(out, Target{Address: t.Address, Weight: w, State: StateActive, Origin: OriginDiscovery})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// combine is the base of an upstream: its config targets, then the
// discovered ones whose address the config does not declare.
func combine(config, discovered []Target) []Target {
	if len(discovered) == 0 {
		return config
	}
	out := append(make([]Target, 0, len(config)+len(discovered)), config...)
	declared := index(config)
	for _, t := range discovered {
		if _, ok := declared[t.Address]; !ok {
			out = append(out, t)
		}
	}
	return out
}

// checkDiscovered refuses the removal of discovered targets: every
// discovered target of e must be in ts. Called with mu held.
func checkDiscovered(e *entry, ts []Target) error {
	if len(e.discovered) == 0 {
		return nil
	}
	have := index(ts)
	for _, t := range e.base {
		if t.Origin != OriginDiscovery {
			continue
		}
		if _, ok := have[t.Address]; !ok {
			return fmt.Errorf("target %s of upstream %q is %w: drain it instead, or change the discovery source", t.Address, e.id, ErrDiscovered)
		}
	}
	return nil
}
