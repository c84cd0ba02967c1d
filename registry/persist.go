package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// stateVersion is the format version of the saved state.
const stateVersion = 1

// ErrPersist is the error of a change that could not be saved: the change
// was not applied.
var ErrPersist = errors.New("the change could not be saved, so it was not applied")

// state is what a Store holds: the API's changes.
type state struct {
	Version   int             `json:"version"`
	Upstreams []stateUpstream `json:"upstreams"`
	Disabled  []string        `json:"disabled_routes,omitempty"`
}

type stateUpstream struct {
	ID           string   `json:"id"`
	Origin       Origin   `json:"origin"`
	Override     []Target `json:"override"`
	OverrideBase []Target `json:"override_base,omitempty"`
	// Replace, set by writers other than the registry (the Kubernetes
	// operator), makes Override the upstream's whole target list,
	// whatever the configuration's targets are: it is applied as if the
	// override had been made on the current configuration. It excludes
	// OverrideBase; the registry saves such an upstream with its
	// override_base.
	Replace bool `json:"replace,omitempty"`
	// Version is the upstream's version (its ETag) when it was saved, so
	// that it survives restarts and is the same on every replica sharing
	// the state.
	Version uint64 `json:"version,omitempty"`
}

// StoreStatus describes the registry's Store and how loading it went.
type StoreStatus struct {
	// Store names the store ("file /path"), empty when there is none
	// and API changes live in memory only.
	Store string `json:"store,omitempty"`
	// Loaded is when the saved state was last read at start.
	Loaded time.Time `json:"loaded,omitzero"`
	// LoadError is why the saved state could not be used at start; the
	// proxy then started from the configuration alone.
	LoadError string `json:"load_error,omitempty"`
	// MovedTo is where the unusable saved state was moved.
	MovedTo string `json:"moved_to,omitempty"`
	// SaveError is why the last change could not be saved (and was not
	// applied); empty once a change was saved again.
	SaveError string `json:"save_error,omitempty"`
	// Revision is the revision of a shared store's state (fleet mode)
	// that the registry applied last.
	Revision int64 `json:"revision,omitempty"`
	// SyncError is why the last state another replica saved to the
	// shared store could not be applied.
	SyncError string `json:"sync_error,omitempty"`
	// Replicas are the live replicas of the fleet (fleet mode with a
	// store that shares them): the revision each has applied and the
	// draining targets each still serves.
	Replicas []ReplicaStatus `json:"replicas,omitempty"`
}

// Snapshot returns the API's changes as the saved state's JSON.
func (r *Registry) Snapshot() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

// snapshotLocked is Snapshot with mu held.
func (r *Registry) snapshotLocked() ([]byte, error) {
	s := state{Version: stateVersion, Upstreams: []stateUpstream{}}
	for _, e := range r.upstreams {
		if e.override == nil || e.staged {
			continue
		}
		s.Upstreams = append(s.Upstreams, stateUpstream{ID: e.id, Origin: e.origin, Override: e.override, OverrideBase: e.overrideBase, Version: e.version})
	}
	for id, e := range r.routes {
		if !e.flag.Enabled() {
			s.Disabled = append(s.Disabled, id)
		}
	}
	sort.Slice(s.Upstreams, func(i, j int) bool { return s.Upstreams[i].ID < s.Upstreams[j].ID })
	sort.Strings(s.Disabled)
	return json.MarshalIndent(s, "", "  ")
}

// commit makes a change made with mu held durable and visible: the state
// is saved to the store (when there is one) and the hot-path snapshot is
// published. When saving fails, undo puts the registry back as it was and
// the error wraps ErrPersist. Called with mu held.
//
// With a SharedStore, the state is saved only on top of the revision the
// registry applied last; when another replica saved in between, the
// registry takes the store's state and commit returns errRefreshed, on
// which the operation runs again (see retry).
func (r *Registry) commit(undo func()) error {
	if r.store != nil {
		data, err := r.snapshotLocked()
		if err == nil {
			if s, ok := r.store.(SharedStore); ok {
				err = r.saveShared(s, data, undo)
				if errors.Is(err, errRefreshed) {
					return err
				}
				undo = func() {} // saveShared undid the change
			} else {
				err = r.store.Save(data)
			}
		}
		if err != nil {
			undo()
			r.status.SaveError = err.Error()
			return fmt.Errorf("%w: saving to %s: %w", ErrPersist, r.store, err)
		}
		r.status.SaveError = ""
	}
	r.rebuild()
	return nil
}

// decodeState parses and checks a saved state with the API's rules: ids,
// addresses, weights, states and origins; no target listed twice.
func decodeState(data []byte) (*state, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s state
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a state file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a state file: data after the JSON object")
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("format version %d, expected %d", s.Version, stateVersion)
	}
	seen := map[string]bool{}
	for i, su := range s.Upstreams {
		where := fmt.Sprintf("upstreams[%d]", i)
		switch su.Origin {
		case OriginAPI:
			if err := ValidateID(su.ID); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		case OriginConfig:
			if su.ID == "" {
				return nil, fmt.Errorf("%s: the id is empty", where)
			}
		default:
			return nil, fmt.Errorf("%s: %w", where, invalid("origin", string(su.Origin), "must be %q or %q", OriginConfig, OriginAPI))
		}
		if seen[su.ID] {
			return nil, fmt.Errorf("%s: upstream %q is listed twice", where, su.ID)
		}
		seen[su.ID] = true
		if su.Override == nil {
			return nil, fmt.Errorf("%s: override is missing", where)
		}
		if su.Replace && su.OverrideBase != nil {
			return nil, fmt.Errorf("%s: replace and override_base exclude each other", where)
		}
		for name, ts := range map[string][]Target{"override": su.Override, "override_base": su.OverrideBase} {
			addrs := map[string]bool{}
			for j, t := range ts {
				if t.State == "" || t.Origin == "" {
					return nil, fmt.Errorf("%s.%s[%d]: state and origin are required", where, name, j)
				}
				if err := ValidateTarget(t); err != nil {
					return nil, fmt.Errorf("%s.%s[%d]: %w", where, name, j, err)
				}
				if addrs[t.Address] {
					return nil, fmt.Errorf("%s.%s[%d]: target %s is listed twice", where, name, j, t.Address)
				}
				addrs[t.Address] = true
			}
		}
	}
	return &s, nil
}

// Restore applies a saved state: API upstreams are created, API changes
// of config upstreams are applied (merged with the current config),
// disabled routes stay disabled. Nothing is applied when the state is
// invalid. Call it after the first Reconcile of the process.
func (r *Registry) Restore(data []byte) error {
	s, err := decodeState(data)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restoreLocked(s)
	for _, id := range s.Disabled {
		if e, ok := r.routes[id]; ok {
			e.flag.disabled.Store(true)
		}
	}
	r.rebuild()
	return nil
}

// restoreLocked applies the upstreams of a saved state; an upstream keeps
// the version it was saved with. Called with mu held.
func (r *Registry) restoreLocked(s *state) {
	for _, su := range s.Upstreams {
		e, ok := r.upstreams[su.ID]
		if !ok {
			if su.Origin != OriginAPI {
				continue // left the config
			}
			e = &entry{id: su.ID, origin: OriginAPI, health: map[string]bool{}}
			r.upstreams[su.ID] = e
		}
		e.override, e.overrideBase = su.Override, su.OverrideBase
		if su.Replace {
			e.overrideBase = append([]Target{}, e.base...)
		}
		e.effective = merge(e.base, e.override, e.overrideBase)
		if su.Version == 0 {
			r.bump(e)
			continue
		}
		e.version = su.Version
		r.version = max(r.version, su.Version)
	}
}

// UseStore makes s the home of the API-made state (nil: memory only).
// The first time a store named s.String() is used in this process, its
// saved state is loaded and restored; a saved state that cannot be read
// or used is moved aside (when the store can) and reported by Status, and
// the registry goes on from the configuration alone. Later calls with the
// same store (config reloads) only switch saving to it. It reports the
// load problem, if any, for the caller to log.
//
// A SharedStore's state replaces the registry's API-made state, and the
// registry then follows the store (Watch) until another store is used.
func (r *Registry) UseStore(s Store) error {
	r.mu.Lock()
	if s == nil {
		r.store = nil
		r.status = StoreStatus{}
		r.stopWatchLocked()
		r.mu.Unlock()
		return nil
	}
	name := s.String()
	if r.watch.name != name {
		r.stopWatchLocked()
	}
	first := !r.loaded[name]
	r.loaded[name] = true
	r.store = s
	if !first {
		r.status.Store = name
		r.mu.Unlock()
		return nil
	}
	r.status = StoreStatus{Store: name}
	r.mu.Unlock()

	if shared, ok := s.(SharedStore); ok {
		return r.useShared(shared)
	}
	data, err := s.Load()
	if err == nil && data != nil {
		err = r.Restore(data)
	}
	if err == nil {
		r.mu.Lock()
		r.status.Loaded = time.Now()
		r.mu.Unlock()
		return nil
	}
	st := StoreStatus{Store: name, LoadError: err.Error()}
	if q, ok := s.(Quarantiner); ok && (data != nil || errors.Is(err, ErrUnusable)) {
		if to, qerr := q.Quarantine(); qerr == nil {
			st.MovedTo = to
		} else {
			err = fmt.Errorf("%w; moving it aside failed too: %w", err, qerr)
			st.LoadError = err.Error()
		}
	}
	r.mu.Lock()
	r.status = st
	r.mu.Unlock()
	return fmt.Errorf("the saved control-plane state in %s cannot be used, starting from the configuration: %w", name, err)
}

// useShared reads a shared store's state, makes it the registry's and
// follows the store from there. When the store cannot be read, the
// registry goes on from the configuration and keeps trying in the
// background (a replica started while etcd is down converges when it is
// back); when its state cannot be used, the next change made through the
// API replaces it.
func (r *Registry) useShared(s SharedStore) error {
	name := s.String()
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	data, rev, readErr := s.LoadRevision(ctx)
	cancel()
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.mu.Lock()
	r.watch = watchState{name: name, stop: stop, done: done}
	var err error
	if readErr != nil {
		r.status.LoadError = readErr.Error()
		err = fmt.Errorf("the shared control-plane state in %s cannot be read, starting from the configuration (trying again in the background): %w", name, readErr)
	} else if useErr := r.applyLoadedLocked(data, rev); useErr != nil {
		err = fmt.Errorf("the shared control-plane state in %s cannot be used, starting from the configuration: %w", name, useErr)
	}
	r.mu.Unlock()
	go func() {
		defer close(done)
		if readErr != nil {
			var ok bool
			if rev, ok = r.retryLoad(wctx, s); !ok {
				return
			}
		}
		if fs, ok := s.(FleetStore); ok {
			fleetDone := make(chan struct{})
			go func() { defer close(fleetDone); r.followFleet(wctx, fs) }()
			defer func() { <-fleetDone }()
		}
		r.watchShared(wctx, s, rev, func(err error) {
			r.mu.Lock()
			r.status.SyncError = err.Error()
			r.mu.Unlock()
		})
	}()
	return err
}

// applyLoadedLocked makes a state read from a shared store the
// registry's, or records why it cannot be used (the revision is still
// the one to save against). Called with mu held.
func (r *Registry) applyLoadedLocked(data []byte, rev int64) error {
	if err := r.replaceLocked(data, rev); err != nil {
		r.rev = rev
		r.status.LoadError = err.Error()
		return err
	}
	r.status.LoadError = ""
	r.status.Loaded = time.Now()
	return nil
}

// retryLoad reads the shared store's state until it can, with a growing
// pause (up to 5 s), and applies it; false when ctx ended first.
func (r *Registry) retryLoad(ctx context.Context, s SharedStore) (int64, bool) {
	pause := 250 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(pause):
		}
		lctx, cancel := context.WithTimeout(ctx, sharedTimeout)
		data, rev, err := s.LoadRevision(lctx)
		cancel()
		r.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				r.status.LoadError = err.Error()
			}
			r.mu.Unlock()
			pause = min(2*pause, 5*time.Second)
			continue
		}
		_ = r.applyLoadedLocked(data, rev) // a state that cannot be used is reported in the status
		r.mu.Unlock()
		return rev, true
	}
}

// watchState is the registry's watch of a shared store.
type watchState struct {
	name string
	stop context.CancelFunc
	done chan struct{}
}

// stopWatchLocked stops following a shared store; the next UseStore of
// it reads its state again. Called with mu held.
func (r *Registry) stopWatchLocked() {
	if r.watch.stop == nil {
		return
	}
	r.watch.stop()
	delete(r.loaded, r.watch.name)
	r.watch = watchState{}
	r.rev = 0
}

// Status describes the store and how loading it went.
func (r *Registry) Status() StoreStatus {
	r.mu.Lock()
	st := r.status
	st.Revision = r.rev
	r.mu.Unlock()
	st.Replicas = r.replicas()
	return st
}
