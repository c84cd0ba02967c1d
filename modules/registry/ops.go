package registry

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// checkVersion compares an If-Match version (0 = none).
func checkVersion(e *entry, ifMatch uint64) error {
	if ifMatch != 0 && ifMatch != e.version {
		return fmt.Errorf("upstream %q is at version %d, not %d: %w", e.id, e.version, ifMatch, ErrConflict)
	}
	return nil
}

// ValidateTarget checks a target's address and weight.
func ValidateTarget(t Target) error {
	host, port, err := net.SplitHostPort(t.Address)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("address %q must be host:port: %w", t.Address, ErrInvalid)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port must be 1-65535: %w", t.Address, ErrInvalid)
	}
	if t.Weight < 0 || t.Weight > 1<<20 {
		return fmt.Errorf("weight %d must be between 0 and 1048576: %w", t.Weight, ErrInvalid)
	}
	switch t.State {
	case "", StateActive, StateDraining:
	default:
		return fmt.Errorf("state %q must be active or draining: %w", t.State, ErrInvalid)
	}
	return nil
}

// normalize fills defaults and checks a target list.
func normalize(ts []Target, origin Origin) ([]Target, error) {
	seen := map[string]bool{}
	out := make([]Target, 0, len(ts))
	for _, t := range ts {
		if t.Weight == 0 {
			t.Weight = 1
		}
		if t.State == "" {
			t.State = StateActive
		}
		if t.Origin == "" {
			t.Origin = origin
		}
		if err := ValidateTarget(t); err != nil {
			return nil, err
		}
		if seen[t.Address] {
			return nil, fmt.Errorf("target %s listed twice: %w", t.Address, ErrInvalid)
		}
		seen[t.Address] = true
		out = append(out, t)
	}
	return out, nil
}

// setTargets records an API change of e's targets. Called with mu held.
func (r *Registry) setTargets(e *entry, ts []Target) {
	e.override = ts
	e.overrideBase = append([]Target(nil), e.base...)
	e.effective = merge(e.base, e.override, e.overrideBase)
	r.bump(e)
	r.rebuild()
}

// mutate runs f on upstream id under the lock, then notifies.
func (r *Registry) mutate(id string, ifMatch uint64, f func(e *entry) error) (Upstream, error) {
	r.mu.Lock()
	e, ok := r.upstreams[id]
	if !ok {
		r.mu.Unlock()
		return Upstream{}, fmt.Errorf("upstream %q: %w", id, ErrNotFound)
	}
	if err := checkVersion(e, ifMatch); err != nil {
		r.mu.Unlock()
		return Upstream{}, err
	}
	if err := f(e); err != nil {
		r.mu.Unlock()
		return Upstream{}, err
	}
	v := e.view()
	r.mu.Unlock()
	r.changed()
	return v, nil
}

// CreateUpstream adds an upstream through the API.
func (r *Registry) CreateUpstream(id string, targets []Target) (Upstream, error) {
	if id == "" {
		return Upstream{}, fmt.Errorf("upstream id is empty: %w", ErrInvalid)
	}
	ts, err := normalize(targets, OriginAPI)
	if err != nil {
		return Upstream{}, err
	}
	r.mu.Lock()
	if _, ok := r.upstreams[id]; ok {
		r.mu.Unlock()
		return Upstream{}, fmt.Errorf("upstream %q: %w", id, ErrExists)
	}
	e := &entry{id: id, origin: OriginAPI, health: map[string]bool{}}
	r.upstreams[id] = e
	r.setTargets(e, ts)
	v := e.view()
	r.mu.Unlock()
	r.changed()
	return v, nil
}

// DeleteUpstream removes an API-created upstream.
func (r *Registry) DeleteUpstream(id string, ifMatch uint64) error {
	r.mu.Lock()
	e, ok := r.upstreams[id]
	switch {
	case !ok:
		r.mu.Unlock()
		return fmt.Errorf("upstream %q: %w", id, ErrNotFound)
	case e.inConfig:
		r.mu.Unlock()
		return fmt.Errorf("upstream %q is %w; remove it there", id, ErrConfigDefined)
	}
	if err := checkVersion(e, ifMatch); err != nil {
		r.mu.Unlock()
		return err
	}
	delete(r.upstreams, id)
	r.rebuild()
	r.mu.Unlock()
	r.changed()
	return nil
}

// PutTargets replaces the targets of an upstream.
func (r *Registry) PutTargets(id string, targets []Target, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		// A target the config declares keeps its config origin.
		base := index(e.base)
		for i := range targets {
			if _, ok := base[targets[i].Address]; ok && targets[i].Origin == "" {
				targets[i].Origin = OriginConfig
			}
		}
		ts, err := normalize(targets, OriginAPI)
		if err != nil {
			return err
		}
		r.setTargets(e, ts)
		return nil
	})
}

// AddTarget adds one target.
func (r *Registry) AddTarget(id string, t Target, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		ts, err := normalize(append(append([]Target(nil), e.effective...), t), OriginAPI)
		if err != nil {
			return err
		}
		r.setTargets(e, ts)
		return nil
	})
}

// TargetPatch changes a target; nil fields are left alone.
type TargetPatch struct {
	// Weight, when set, is the new weight.
	Weight *int `json:"weight,omitempty"`
	// State, when set, is active or draining.
	State *State `json:"state,omitempty"`
}

// PatchTarget changes the weight or state of one target.
func (r *Registry) PatchTarget(id, address string, p TargetPatch, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		ts := append([]Target(nil), e.effective...)
		i := find(ts, address)
		if i < 0 {
			return fmt.Errorf("target %s of upstream %q: %w", address, id, ErrNotFound)
		}
		if p.Weight != nil {
			ts[i].Weight = *p.Weight
		}
		if p.State != nil {
			ts[i].State = *p.State
			if *p.State == StateActive {
				ts[i].DrainDeadline = time.Time{}
			}
		}
		if err := ValidateTarget(ts[i]); err != nil {
			return err
		}
		r.setTargets(e, ts)
		return nil
	})
}

// RemoveTarget removes one target.
func (r *Registry) RemoveTarget(id, address string, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		ts := append([]Target(nil), e.effective...)
		i := find(ts, address)
		if i < 0 {
			return fmt.Errorf("target %s of upstream %q: %w", address, id, ErrNotFound)
		}
		r.setTargets(e, append(ts[:i], ts[i+1:]...))
		return nil
	})
}

// Drain sets targets of an upstream draining: the one at address, or all
// when address is "". With a timeout, they are removed when it expires
// (see Expire).
func (r *Registry) Drain(id, address string, timeout time.Duration, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		ts := append([]Target(nil), e.effective...)
		found := false
		for i := range ts {
			if address != "" && ts[i].Address != address {
				continue
			}
			found = true
			ts[i].State = StateDraining
			if timeout > 0 {
				ts[i].DrainDeadline = time.Now().Add(timeout)
			}
		}
		if !found && address != "" {
			return fmt.Errorf("target %s of upstream %q: %w", address, id, ErrNotFound)
		}
		r.setTargets(e, ts)
		return nil
	})
}

// Expire removes the draining targets whose drain deadline passed. It
// reports how many it removed.
func (r *Registry) Expire(now time.Time) int {
	r.mu.Lock()
	removed := 0
	for _, e := range r.upstreams {
		ts := e.effective[:0:0]
		for _, t := range e.effective {
			if t.State == StateDraining && !t.DrainDeadline.IsZero() && now.After(t.DrainDeadline) {
				removed++
				continue
			}
			ts = append(ts, t)
		}
		if len(ts) != len(e.effective) {
			r.setTargets(e, ts)
		}
	}
	r.mu.Unlock()
	if removed > 0 {
		r.changed()
	}
	return removed
}

func find(ts []Target, address string) int {
	for i, t := range ts {
		if t.Address == address {
			return i
		}
	}
	return -1
}
