package registry

import (
	"fmt"
	"time"
)

// checkVersion compares an If-Match version (0 = none).
func checkVersion(e *entry, ifMatch uint64) error {
	if ifMatch != 0 && ifMatch != e.version {
		return fmt.Errorf("upstream %q is at version %d, not %d: %w", e.id, e.version, ifMatch, ErrConflict)
	}
	return nil
}

// normalize fills defaults (state active, the given origin) and checks a
// target list with ValidateTarget.
func normalize(ts []Target, origin Origin) ([]Target, error) {
	seen := map[string]bool{}
	out := make([]Target, 0, len(ts))
	for _, t := range ts {
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

// setTargets records an API change of e's targets. Called with mu held;
// the change is published by commit.
func (r *Registry) setTargets(e *entry, ts []Target) {
	e.override = ts
	e.overrideBase = append([]Target(nil), e.base...)
	e.effective = merge(e.base, e.override, e.overrideBase)
	r.bump(e)
}

// mutate runs f on upstream id under the lock and commits the change:
// saved, then published; undone when saving fails.
func (r *Registry) mutate(id string, ifMatch uint64, f func(e *entry) error) (Upstream, error) {
	return retry(func() (Upstream, error) { return r.mutateOnce(id, ifMatch, f) })
}

// mutateOnce is one try of mutate.
func (r *Registry) mutateOnce(id string, ifMatch uint64, f func(e *entry) error) (Upstream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.upstreams[id]
	if !ok || e.staged {
		return Upstream{}, fmt.Errorf("upstream %q: %w", id, ErrNotFound)
	}
	if err := checkVersion(e, ifMatch); err != nil {
		return Upstream{}, err
	}
	saved := *e
	if err := f(e); err != nil {
		*e = saved
		return Upstream{}, err
	}
	if err := r.commit(func() { *e = saved }); err != nil {
		return Upstream{}, err
	}
	return e.view(), nil
}

// CreateUpstream adds an upstream through the API.
func (r *Registry) CreateUpstream(id string, targets []Target) (Upstream, error) {
	if err := ValidateID(id); err != nil {
		return Upstream{}, err
	}
	ts, err := normalize(targets, OriginAPI)
	if err != nil {
		return Upstream{}, err
	}
	return retry(func() (Upstream, error) { return r.createOnce(id, ts) })
}

// createOnce is one try of CreateUpstream.
func (r *Registry) createOnce(id string, ts []Target) (Upstream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.upstreams[id]; ok && !e.staged {
		return Upstream{}, fmt.Errorf("upstream %q: %w", id, ErrExists)
	}
	old, hadOld := r.upstreams[id]
	e := &entry{id: id, origin: OriginAPI, health: map[string]bool{}}
	r.upstreams[id] = e
	r.setTargets(e, ts)
	err := r.commit(func() {
		if hadOld {
			r.upstreams[id] = old
		} else {
			delete(r.upstreams, id)
		}
	})
	if err != nil {
		return Upstream{}, err
	}
	return e.view(), nil
}

// DeleteUpstream removes an API-created upstream.
func (r *Registry) DeleteUpstream(id string, ifMatch uint64) error {
	return retryErr(func() error { return r.deleteOnce(id, ifMatch) })
}

// deleteOnce is one try of DeleteUpstream.
func (r *Registry) deleteOnce(id string, ifMatch uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.upstreams[id]
	switch {
	case !ok || e.staged:
		return fmt.Errorf("upstream %q: %w", id, ErrNotFound)
	case e.inConfig:
		return fmt.Errorf("upstream %q is %w; remove it there", id, ErrConfigDefined)
	}
	if err := checkVersion(e, ifMatch); err != nil {
		return err
	}
	delete(r.upstreams, id)
	return r.commit(func() { r.upstreams[id] = e })
}

// PutTargets replaces the targets of an upstream.
func (r *Registry) PutTargets(id string, targets []Target, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		// A target the config declares or discovery found keeps its
		// origin.
		base := index(e.base)
		for i := range targets {
			b, ok := base[targets[i].Address]
			switch {
			case ok && (targets[i].Origin == "" || b.Origin == OriginDiscovery):
				targets[i].Origin = b.Origin
			case !ok && targets[i].Origin == OriginDiscovery:
				return fmt.Errorf("target %s: %w", targets[i].Address, invalid("origin", string(OriginDiscovery), "only the upstream's discovery adds discovered targets"))
			}
		}
		ts, err := normalize(targets, OriginAPI)
		if err != nil {
			return err
		}
		if err := checkDiscovered(e, ts); err != nil {
			return err
		}
		r.setTargets(e, ts)
		return nil
	})
}

// AddTarget adds one target.
func (r *Registry) AddTarget(id string, t Target, ifMatch uint64) (Upstream, error) {
	return r.mutate(id, ifMatch, func(e *entry) error {
		if t.Origin == OriginDiscovery {
			return fmt.Errorf("target %s: %w", t.Address, invalid("origin", string(OriginDiscovery), "only the upstream's discovery adds discovered targets"))
		}
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
		ts = append(ts[:i], ts[i+1:]...)
		if err := checkDiscovered(e, ts); err != nil {
			return err
		}
		r.setTargets(e, ts)
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

// Expired is a target that Expire removed.
type Expired struct {
	// Upstream is the upstream id.
	Upstream string `json:"upstream"`
	// Target is the target as it was, with its drain deadline.
	Target Target `json:"target"`
}

// Expire removes the draining targets whose drain deadline passed, and
// returns them. When the change cannot be saved, nothing is removed and
// the error says why (the next call tries again).
func (r *Registry) Expire(now time.Time) ([]Expired, error) {
	return retry(func() ([]Expired, error) { return r.expireOnce(now) })
}

// expireOnce is one try of Expire.
func (r *Registry) expireOnce(now time.Time) ([]Expired, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var removed []Expired
	saved := map[*entry]entry{}
	for _, e := range r.upstreams {
		ts := e.effective[:0:0]
		for _, t := range e.effective {
			// A discovered target stays (draining) until discovery drops it.
			if t.State == StateDraining && !t.DrainDeadline.IsZero() && now.After(t.DrainDeadline) && t.Origin != OriginDiscovery {
				removed = append(removed, Expired{Upstream: e.id, Target: t})
				continue
			}
			ts = append(ts, t)
		}
		if len(ts) != len(e.effective) {
			saved[e] = *e
			r.setTargets(e, ts)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	err := r.commit(func() {
		for e, old := range saved {
			*e = old
		}
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

func find(ts []Target, address string) int {
	for i, t := range ts {
		if t.Address == address {
			return i
		}
	}
	return -1
}
