package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// SharedStore is a Store that several processes share: a fleet's
// replicas keep their API-made state in one place (etcd, the Kubernetes
// API) and each applies the others' changes without a reload.
//
// Saving is conditional: SaveIf writes only when the stored state is
// still the one this process last applied (its revision), so that two
// replicas changing the state at once cannot overwrite each other
// silently. The registry then refreshes and runs the change again (see
// commit).
type SharedStore interface {
	Store
	// LoadRevision returns the stored state and its revision: nil and the
	// store's revision when nothing was saved yet.
	LoadRevision(ctx context.Context) (data []byte, rev int64, err error)
	// SaveIf replaces the stored state with data when its revision is
	// still rev (0: nothing saved yet) and returns the new revision. It
	// returns an error wrapping ErrStale when another process saved in
	// between.
	SaveIf(ctx context.Context, data []byte, rev int64) (int64, error)
	// Watch calls apply with every state saved after revision from, in
	// order, until ctx is done. A watch that falls behind (compaction,
	// reconnection) reads the current state again and goes on from there;
	// apply is then called with it.
	Watch(ctx context.Context, from int64, apply func(data []byte, rev int64))
}

// ErrStale is the error of SaveIf when the stored state changed since
// the revision given.
var ErrStale = errors.New("the shared state changed in between")

// sharedTimeout bounds one round trip to a shared store.
const sharedTimeout = 5 * time.Second

// staleRetryTime bounds how long a change is run again on a fresh state
// while other replicas keep saving in between. A fleet changing the state
// at a high rate (a deployment tool adding a thousand targets at once,
// spread over the replicas) loses many rounds in a row: bounding the
// time rather than the tries lets such a change through instead of
// failing it after a fixed count.
const staleRetryTime = 10 * time.Second

// errRefreshed is the error of commit after a stale save: the registry
// now holds the shared state, and the operation can run again.
var errRefreshed = errors.New("refreshed from the shared store")

// staleBackoffMax bounds the random pause before a try after a stale
// save: replicas that collide wait different times, so that they do not
// collide again in lockstep.
const staleBackoffMax = 64 * time.Millisecond

// retry runs op again while it ends with a stale save, which left the
// registry refreshed to the store's current state, for at most
// staleRetryTime. Between tries it waits a random time that grows with
// each collision (the registry's lock is not held then).
func retry[T any](op func() (T, error)) (T, error) {
	start := time.Now()
	for i := 1; ; i++ {
		v, err := op()
		if !errors.Is(err, errRefreshed) {
			return v, err
		}
		if time.Since(start) >= staleRetryTime {
			return v, fmt.Errorf("%w: other replicas kept changing the shared state (%d tries in %v): %w",
				ErrPersist, i, time.Since(start).Round(time.Millisecond), ErrStale)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(i, 10), staleBackoffMax)))))
	}
}

// retryErr is retry for an operation that returns only an error.
func retryErr(op func() error) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, op() })
	return err
}

// saveShared is commit's save to a shared store, with mu held: the state
// is saved on top of the revision this registry applied last. When
// another replica saved in between, the registry takes the store's
// current state and the error is errRefreshed.
func (r *Registry) saveShared(s SharedStore, data []byte, undo func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	rev, err := s.SaveIf(ctx, data, r.rev)
	if err == nil {
		r.rev = rev
		return nil
	}
	undo()
	if !errors.Is(err, ErrStale) {
		return err
	}
	cur, rev, lerr := s.LoadRevision(ctx)
	if lerr != nil {
		return fmt.Errorf("%w; reading it again: %w", err, lerr)
	}
	if aerr := r.replaceLocked(cur, rev); aerr != nil {
		return fmt.Errorf("%w; the stored state cannot be used: %w", err, aerr)
	}
	return errRefreshed
}

// applyShared applies a state another replica saved (a Watch callback).
// A revision this registry already has is ignored.
func (r *Registry) applyShared(data []byte, rev int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev {
		return nil
	}
	if err := r.replaceLocked(data, rev); err != nil {
		r.rev = rev // the next change made through the API replaces it
		return err
	}
	r.status.SyncError = ""
	return nil
}

// replaceLocked makes the shared state at revision rev the registry's
// API-made state: upstreams and route switches it does not list lose
// their API changes (API upstreams are removed). Nothing changes when the
// state is invalid. Called with mu held.
func (r *Registry) replaceLocked(data []byte, rev int64) error {
	s := &state{Version: stateVersion}
	if data != nil {
		var err error
		if s, err = decodeState(data); err != nil {
			return err
		}
	}
	listed := make(map[string]stateUpstream, len(s.Upstreams))
	for _, su := range s.Upstreams {
		listed[su.ID] = su
	}
	for id, e := range r.upstreams {
		if e.staged {
			continue
		}
		if _, ok := listed[id]; ok || e.override == nil {
			continue
		}
		if !e.inConfig {
			delete(r.upstreams, id)
			continue
		}
		e.override, e.overrideBase = nil, nil
		e.effective = merge(e.base, nil, nil)
		r.bump(e)
	}
	r.restoreLocked(s)
	disabled := make(map[string]bool, len(s.Disabled))
	for _, id := range s.Disabled {
		disabled[id] = true
	}
	for id, e := range r.routes {
		e.flag.disabled.Store(disabled[id])
	}
	r.rev = rev
	r.rebuild()
	return nil
}

// watchShared follows s until ctx is done, applying what other replicas
// save; report receives the states that cannot be used.
func (r *Registry) watchShared(ctx context.Context, s SharedStore, from int64, report func(error)) {
	s.Watch(ctx, from, func(data []byte, rev int64) {
		if err := r.applyShared(data, rev); err != nil && report != nil {
			report(fmt.Errorf("the shared state at revision %d in %s cannot be used: %w", rev, s, err))
		}
	})
}
