package registry

import (
	"fmt"
	"sort"
	"sync/atomic"
)

// RouteFlag is the live switch of a route; the route guard reads it on
// every request.
type RouteFlag struct {
	disabled atomic.Bool
}

// Enabled reports whether the route serves requests.
func (f *RouteFlag) Enabled() bool { return f == nil || !f.disabled.Load() }

// routeEntry is a route known to the registry.
type routeEntry struct {
	flag     *RouteFlag
	inConfig bool
}

// Route describes a route for the API.
type Route struct {
	// ID is the route id.
	ID string `json:"id"`
	// Enabled is false when the route was disabled through the API.
	Enabled bool `json:"enabled"`
}

// reconcileRoutes registers the configured routes. Flags of routes that
// stay keep their value. Called with mu held.
func (r *Registry) reconcileRoutes(ids []string) {
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
		if e, ok := r.routes[id]; ok {
			e.inConfig = true
			continue
		}
		r.routes[id] = &routeEntry{flag: &RouteFlag{}, inConfig: true}
	}
	for id := range r.routes {
		if !seen[id] {
			delete(r.routes, id)
		}
	}
}

// RouteFlag returns the switch of a route (nil for an unknown route,
// which counts as enabled). Handlers keep the flag they got from
// RouteFlagOrNew at provisioning and read it without a lock.
func (r *Registry) RouteFlag(id string) *RouteFlag {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.routes[id]; ok {
		return e.flag
	}
	return nil
}

// Routes lists the routes, sorted by id.
func (r *Registry) Routes() []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Route, 0, len(r.routes))
	for id, e := range r.routes {
		out = append(out, Route{ID: id, Enabled: e.flag.Enabled()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SetRouteEnabled switches a route on or off at once, once the change is
// saved.
func (r *Registry) SetRouteEnabled(id string, enabled bool) error {
	return retryErr(func() error { return r.setRouteOnce(id, enabled) })
}

// setRouteOnce is one try of SetRouteEnabled.
func (r *Registry) setRouteOnce(id string, enabled bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.routes[id]
	if !ok {
		return fmt.Errorf("route %q: %w", id, ErrNotFound)
	}
	was := e.flag.disabled.Swap(!enabled)
	return r.commit(func() { e.flag.disabled.Store(was) })
}

// RouteFlagOrNew returns the switch of a route, creating it (enabled)
// when the route is not known yet, so that a guard provisioned before the
// app reconciles still shares the flag the API will flip.
// It is O(1): provisioning n routes costs O(n).
func (r *Registry) RouteFlagOrNew(id string) *RouteFlag {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.routes[id]; ok {
		return e.flag
	}
	e := &routeEntry{flag: &RouteFlag{}}
	r.routes[id] = e
	return e.flag
}
