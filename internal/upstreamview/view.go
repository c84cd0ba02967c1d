// Package upstreamview renders the upstream registry for people and tools:
// the control-plane API (`/api/v1/upstreams`) and the `upstreams` builtin
// handler show the same JSON, built here.
package upstreamview

import (
	"time"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
	"github.com/sentinel-proxy/sentinel/registry"
)

// Target is a target with its live counters and what the load balancers
// estimate of it.
type Target struct {
	// Address is host:port.
	Address string `json:"address"`
	// Weight is the target's configured weight.
	Weight int `json:"weight"`
	// State is active, draining, or drained (draining with nothing in
	// flight).
	State registry.State `json:"state"`
	// Origin is config or api.
	Origin registry.Origin `json:"origin"`
	// Healthy is the health the active checks last saw (true if never
	// checked).
	Healthy bool `json:"healthy"`
	// InFlight is the number of requests being served.
	InFlight int64 `json:"in_flight"`
	// Requests is the number of requests sent.
	Requests uint64 `json:"requests"`
	// Failures is the number of failed requests.
	Failures uint64 `json:"failures"`
	// DrainDeadline is when a draining target is removed; absent when
	// none.
	DrainDeadline *time.Time `json:"drain_deadline,omitempty"`
	// Balancing holds, per live selection policy of the upstream, its
	// latency and error estimates, effective weight and score of the
	// target; absent when no Sentinel policy balances the upstream.
	Balancing []adaptive.Estimate `json:"balancing,omitempty"`
}

// Upstream is an upstream with its targets.
type Upstream struct {
	// ID is the upstream id.
	ID string `json:"id"`
	// Origin is config or api.
	Origin registry.Origin `json:"origin"`
	// Version is the upstream's version, its ETag in the API.
	Version uint64 `json:"version"`
	// HealthyTargets counts the active targets the health checks see
	// healthy.
	HealthyTargets int `json:"healthy_targets"`
	// Targets are the targets, in order.
	Targets []Target `json:"targets"`
}

// Of returns the view of u, read from reg.
func Of(reg *registry.Registry, u registry.Upstream) Upstream {
	v := Upstream{ID: u.ID, Origin: u.Origin, Version: u.Version, Targets: make([]Target, 0, len(u.Targets))}
	est := adaptive.Estimates(reg, u.ID)
	for _, t := range u.Targets {
		st := reg.Stats(t.Address)
		tv := Target{
			Address:   t.Address,
			Weight:    t.Weight,
			State:     reg.TargetState(t),
			Origin:    t.Origin,
			Healthy:   reg.Healthy(u.ID, t.Address),
			InFlight:  st.InFlight(),
			Requests:  st.Requests(),
			Failures:  st.Failures(),
			Balancing: est[t.Address],
		}
		if tv.Healthy && t.State == registry.StateActive {
			v.HealthyTargets++
		}
		if !t.DrainDeadline.IsZero() {
			d := t.DrainDeadline.UTC()
			tv.DrainDeadline = &d
		}
		v.Targets = append(v.Targets, tv)
	}
	return v
}

// All returns the views of every upstream of reg, in the registry's order.
func All(reg *registry.Registry) []Upstream {
	ups := reg.Upstreams()
	out := make([]Upstream, 0, len(ups))
	for _, u := range ups {
		out = append(out, Of(reg, u))
	}
	return out
}
