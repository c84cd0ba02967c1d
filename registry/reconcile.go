package registry

// UpstreamSpec is an upstream as the configuration declares it.
type UpstreamSpec struct {
	// ID is the upstream id.
	ID string `json:"id"`
	// Targets are the declared targets.
	Targets []TargetSpec `json:"targets"`
	// Discovery says that a discoverer adds targets to the upstream (see
	// SetDiscovered); without it, discovered targets are dropped.
	Discovery bool `json:"discovery,omitempty"`
}

// TargetSpec is a declared target.
type TargetSpec struct {
	// Address is host:port.
	Address string `json:"address"`
	// Weight is the target's weight (0 or absent: 1).
	Weight int `json:"weight,omitempty"`
}

// Prepare stages the upstreams of a configuration being provisioned that
// the registry does not know yet, so that the new configuration's routes
// find them as soon as its servers start. It changes nothing that exists:
// whether the new configuration is applied is only known once it has
// started, when its app calls Reconcile; a configuration that fails to
// load calls Discard with the returned generation, which removes what
// Prepare staged for it. Staged upstreams are not listed, changed through
// the API or saved.
func (r *Registry) Prepare(specs []UpstreamSpec) (generation uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.generation++
	generation = r.generation
	added := false
	for _, s := range specs {
		if _, ok := r.upstreams[s.ID]; ok {
			continue
		}
		e := &entry{id: s.ID, origin: OriginConfig, staged: true, stagedBy: generation, health: map[string]bool{}, discovery: s.Discovery}
		e.config = baseTargets(s)
		e.base = e.config
		e.effective = append([]Target(nil), e.base...)
		r.upstreams[s.ID] = e
		r.bump(e)
		added = true
	}
	if added {
		r.rebuild()
	}
	return generation
}

// Discard removes what Prepare staged for a configuration that will not
// be committed (it failed to start, or was only validated).
func (r *Registry) Discard(generation uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	removed := false
	for id, e := range r.upstreams {
		if e.staged && e.stagedBy == generation {
			delete(r.upstreams, id)
			removed = true
		}
	}
	if removed {
		r.rebuild()
	}
}

func baseTargets(s UpstreamSpec) []Target {
	base := make([]Target, 0, len(s.Targets))
	for _, t := range s.Targets {
		w := t.Weight
		if w <= 0 {
			w = 1
		}
		base = append(base, Target{Address: t.Address, Weight: w, State: StateActive, Origin: OriginConfig})
	}
	return base
}

// Reconcile makes the configuration's upstreams the base of the registry:
// upstreams that left the configuration are forgotten with their API
// changes; upstreams that stay keep the changes made through the API
// (merged with what changed in the configuration since); API-created
// upstreams stay. routes lists the configured route ids.
func (r *Registry) Reconcile(specs []UpstreamSpec, routes []string) {
	r.mu.Lock()
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		seen[s.ID] = true
		base := baseTargets(s)
		e, ok := r.upstreams[s.ID]
		if !ok || e.staged || e.origin == OriginAPI && !e.inConfig {
			// New to the config (an API upstream of the same id is taken
			// over by the config).
			e = &entry{id: s.ID, health: map[string]bool{}}
			r.upstreams[s.ID] = e
			r.bump(e) // version 0 means "no If-Match": never used
		}
		e.origin, e.inConfig, e.discovery = OriginConfig, true, s.Discovery
		if !s.Discovery {
			// The last discovered set stays while the upstream has a
			// discovery (a reload does not empty its pool).
			e.discovered = nil
		}
		e.config = base
		if base = combine(base, e.discovered); !sameTargets(e.base, base) {
			e.base = base
			r.bump(e)
		}
		e.effective = merge(e.base, e.override, e.overrideBase)
	}
	for id, e := range r.upstreams {
		if e.origin == OriginConfig && !seen[id] && !e.staged {
			delete(r.upstreams, id)
		}
	}
	r.reconcileRoutes(routes)
	r.rebuild()
	r.mu.Unlock()
}

// bump gives e a new version. Called with mu held.
func (r *Registry) bump(e *entry) {
	r.version++
	e.version = r.version
}

// merge applies the API's target list (override, made against the base
// overrideBase) to the current base (config and discovered targets):
// targets the base added since are added, targets it removed are removed
// unless the API added them, and base weights that changed are taken
// unless the API changed them too. A discovered target is always there
// while discovery reports it: the API changes its weight and state, not
// its presence.
func merge(base, override, overrideBase []Target) []Target {
	if override == nil {
		return append([]Target(nil), base...)
	}
	if sameTargets(base, overrideBase) && !hasDiscovered(base) {
		return append([]Target(nil), override...)
	}
	oldBase := index(overrideBase)
	newBase := index(base)
	out := make([]Target, 0, len(override)+len(base))
	present := map[string]bool{}
	for _, t := range override {
		ob, wasBase := oldBase[t.Address]
		nb, isBase := newBase[t.Address]
		switch {
		case wasBase && !isBase && t.Origin != OriginAPI:
			continue // the config or the discovery removed it
		case wasBase && isBase && t.Weight == ob.Weight:
			t.Weight = nb.Weight // the API left the weight alone
		}
		out = append(out, t)
		present[t.Address] = true
	}
	for _, t := range base {
		if _, wasBase := oldBase[t.Address]; (!wasBase || t.Origin == OriginDiscovery) && !present[t.Address] {
			out = append(out, t)
		}
	}
	return out
}

func hasDiscovered(ts []Target) bool {
	for _, t := range ts {
		if t.Origin == OriginDiscovery {
			return true
		}
	}
	return false
}

func index(ts []Target) map[string]Target {
	m := make(map[string]Target, len(ts))
	for _, t := range ts {
		m[t.Address] = t
	}
	return m
}

func sameTargets(a, b []Target) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
