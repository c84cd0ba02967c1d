// Package registry is the type of Sentinel's upstream registry: the
// upstreams and their targets (address, weight, state, health, origin),
// the per-target traffic counters and the route enable flags. The request
// path reads it without locks (atomic snapshots, copy-on-write; writers
// take a mutex).
//
// The package holds no state. The process's registry belongs to the
// `sentinel` app (modules/sentinelapp), which keeps one for the whole
// process so that it outlives config loads: each config's app reconciles
// it, and the control-plane API changes it in place. Modules get it from
// their config's app in Provision with From.
package registry

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Origin says where a target or upstream comes from.
type Origin string

// The origins.
const (
	// OriginConfig marks what the configuration declares.
	OriginConfig Origin = "config"
	// OriginAPI marks what the control-plane API added.
	OriginAPI Origin = "api"
)

// State is the administrative state of a target.
type State string

// The states of a target. Drained is reported, never set: a draining
// target with no request in flight is drained.
const (
	// StateActive targets receive new requests (when healthy).
	StateActive State = "active"
	// StateDraining targets receive no new request; the ones in flight
	// finish.
	StateDraining State = "draining"
	// StateDrained is a draining target with nothing in flight.
	StateDrained State = "drained"
)

// Target is one backend of an upstream, as configured or changed through
// the API.
type Target struct {
	// Address is host:port.
	Address string `json:"address"`
	// Weight is the target's share for weighted policies (default 1).
	Weight int `json:"weight"`
	// State is active or draining.
	State State `json:"state"`
	// Origin is config, api or discovery.
	Origin Origin `json:"origin"`
	// DrainDeadline, when set, is when a draining target is removed.
	DrainDeadline time.Time `json:"drain_deadline,omitzero"`
}

// Upstream is an upstream with its effective targets.
type Upstream struct {
	// ID is the upstream id.
	ID string `json:"id"`
	// Origin is config or api.
	Origin Origin `json:"origin"`
	// Targets are the effective targets, in order.
	Targets []Target `json:"targets"`
	// Version changes with every change of the upstream (the ETag).
	Version uint64 `json:"version"`
}

// Errors of registry operations.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrConflict      = errors.New("version mismatch")
	ErrConfigDefined = errors.New("defined in the configuration")
	ErrInvalid       = errors.New("invalid")
)

// Registry is the state store. The zero value is not usable; call New.
type Registry struct {
	mu        sync.Mutex
	upstreams map[string]*entry
	routes    map[string]*routeEntry
	// pools is the hot-path snapshot: upstream id → eligible targets.
	pools atomic.Pointer[map[string]*Pool]
	stats sync.Map // address → *TargetStats
	// sweep is what Sweep needs to forget the counters of old addresses.
	sweep sweepState
	// store, when set, saves every change made through an operation
	// before it is acknowledged (see commit).
	store Store
	// loaded are the stores whose saved state this process has read.
	loaded map[string]bool
	status StoreStatus
	// rev is the revision of the shared store's state applied last, and
	// watch the registry's watch of that store (see SharedStore).
	rev   int64
	watch watchState
	// fleet is what the other replicas of a fleet report (FleetStore).
	fleet fleetState
	// generation counts the configurations reconciled (see Prepare).
	generation uint64
	// live is the generation of the running configuration (see Commit).
	live    uint64
	version uint64
	// attached is what packages attach to the registry (see Attached).
	attached sync.Map
	attachMu sync.Mutex
	// guard is the dial-time check of the API's targets (see CheckDial).
	guard dialGuard
}

// entry is the stored state of one upstream.
type entry struct {
	id     string
	origin Origin
	// base is what the config declares and discovery found (nil for
	// API upstreams): config, then discovered (see combine).
	base []Target
	// config are the targets the config declares, and discovered the
	// ones the upstream's discovery found last (see SetDiscovered);
	// discovery says whether the config gives the upstream a discovery.
	config     []Target
	discovered []Target
	discovery  bool
	// override is the target list as last changed through the API, and
	// overrideBase the config base it was made against; nil when the API
	// never changed this upstream.
	override     []Target
	overrideBase []Target
	// effective is base with the override merged in.
	effective []Target
	health    map[string]bool // address → healthy (missing = healthy)
	version   uint64
	inConfig  bool
	// staged marks an upstream added by Prepare for a configuration that
	// has not been committed (Reconcile) yet; stagedBy is that
	// configuration's generation.
	staged   bool
	stagedBy uint64
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{upstreams: map[string]*entry{}, routes: map[string]*routeEntry{}, loaded: map[string]bool{}}
	empty := map[string]*Pool{}
	r.pools.Store(&empty)
	return r
}

// Pool is the hot-path view of an upstream: the targets that may receive
// new requests (active and healthy), with their weights.
type Pool struct {
	// Addresses of the eligible targets, in order.
	Addresses []string
	// Weights of the eligible targets, parallel to Addresses.
	Weights []int

	weight map[string]int
}

// Weight returns the weight of an eligible target (1 when unknown).
func (p *Pool) Weight(address string) int {
	if p != nil {
		if w, ok := p.weight[address]; ok {
			return w
		}
	}
	return 1
}

// Pool returns the eligible targets of an upstream, or nil when the
// upstream is unknown. It takes no lock.
func (r *Registry) Pool(id string) *Pool {
	return (*r.pools.Load())[id]
}

// rebuild publishes a new snapshot of the pools. Called with mu held.
func (r *Registry) rebuild() {
	pools := make(map[string]*Pool, len(r.upstreams))
	for id, e := range r.upstreams {
		p := &Pool{weight: make(map[string]int, len(e.effective))}
		for _, t := range e.effective {
			if t.State != StateActive {
				continue
			}
			if healthy, known := e.health[t.Address]; known && !healthy {
				continue
			}
			p.Addresses = append(p.Addresses, t.Address)
			p.Weights = append(p.Weights, t.Weight)
			p.weight[t.Address] = t.Weight
		}
		pools[id] = p
	}
	r.pools.Store(&pools)
	r.rebuildGuarded()
}

// Upstreams lists every upstream, sorted by id.
func (r *Registry) Upstreams() []Upstream {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Upstream, 0, len(r.upstreams))
	for _, e := range r.upstreams {
		if !e.staged {
			out = append(out, e.view())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns one upstream.
func (r *Registry) Get(id string) (Upstream, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.upstreams[id]
	if !ok || e.staged {
		return Upstream{}, false
	}
	return e.view(), true
}

func (e *entry) view() Upstream {
	return Upstream{ID: e.id, Origin: e.origin, Targets: append([]Target(nil), e.effective...), Version: e.version}
}

// Healthy reports the health of a target as the active checks last saw
// it (true when never checked).
func (r *Registry) Healthy(id, address string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.upstreams[id]
	if !ok {
		return false
	}
	h, known := e.health[address]
	return !known || h
}

// SetHealth records the result of a health check. It reports whether the
// health changed.
func (r *Registry) SetHealth(id, address string, healthy bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.upstreams[id]
	if !ok {
		return false
	}
	old, known := e.health[address]
	if known && old == healthy || !known && healthy {
		if !known {
			e.health[address] = healthy
		}
		return false
	}
	e.health[address] = healthy
	r.rebuild()
	return true
}
