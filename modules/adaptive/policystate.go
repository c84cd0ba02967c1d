package adaptive

import (
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
)

// policyKey identifies the shared state of a policy: its kind, upstream
// and the parameters that shape the state (a comparable value, nil when
// none do).
type policyKey struct {
	kind     string
	upstream string
	params   any
}

// policyState is the state the policies of one kind, upstream and
// parameters share, across configs: the selection counters of each
// target, the estimators attached to the targets under it, and the
// policy's own shared state (the adaptive group). It lives in the feedback
// store's policies pool while a config uses it.
type policyState struct {
	fb *store
	// shared is the policy's own shared state, made once (see sharedOr).
	shared atomic.Value
	// addrs, guarded by fb.mu, is what the state keeps of each address.
	addrs map[string]*addrState
}

// addrState is what a policy state keeps of one address.
type addrState struct {
	selections *atomic.Uint64
	// target is the feedback state the policy attached an estimator to
	// (nil when none).
	target *Target
}

// join returns the shared state of key, creating it, and counts a
// reference to it.
func (s *store) join(key policyKey) *policyState {
	v, _, _ := s.policies.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &policyState{fb: s, addrs: map[string]*addrState{}}, nil
	})
	return v.(*policyState)
}

// leave releases a reference to the shared state of key; the last one
// drops it (see Destruct).
func (s *store) leave(key policyKey) {
	_, _ = s.policies.Delete(key)
}

// Destruct forgets the state: its estimators are detached from their
// targets and it leaves the address index.
func (p *policyState) Destruct() error {
	s := p.fb
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, a := range p.addrs {
		if a.target != nil {
			a.target.detach(p)
		}
		if set := s.byAddr[addr]; set != nil {
			delete(set, p)
			if len(set) == 0 {
				delete(s.byAddr, addr)
			}
		}
	}
	p.addrs = nil
	return nil
}

// sharedOr returns the policy's own shared state, making it with mk the
// first time.
func (p *policyState) sharedOr(mk func() any) any {
	if v := p.shared.Load(); v != nil {
		return v.(sharedBox).v
	}
	p.fb.mu.Lock()
	defer p.fb.mu.Unlock()
	if v := p.shared.Load(); v != nil {
		return v.(sharedBox).v
	}
	v := mk()
	p.shared.Store(sharedBox{v})
	return v
}

// sharedBox lets atomic.Value hold values of any type.
type sharedBox struct{ v any }

// addr returns what p keeps of addr, indexing it. Called with s.mu held.
func (s *store) addr(p *policyState, addr string) *addrState {
	a := p.addrs[addr]
	if a != nil {
		return a
	}
	a = new(addrState)
	if p.addrs == nil { // destructed: a policy being cleaned up
		return a
	}
	p.addrs[addr] = a
	set := s.byAddr[addr]
	if set == nil {
		set = map[*policyState]struct{}{}
		s.byAddr[addr] = set
	}
	set[p] = struct{}{}
	return a
}

// selections returns the selection counter of a target for the policy
// state p.
func (s *store) selections(p *policyState, addr string) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addr(p, addr)
	if a.selections == nil {
		a.selections = new(atomic.Uint64)
	}
	return a.selections
}

// attach returns the estimator attached to a target under the policy
// state p, attaching mk() if there is none.
func (s *store) attach(p *policyState, tg *Target, mk func() observer) observer {
	s.mu.Lock()
	a := s.addr(p, tg.addr)
	a.target = tg
	s.mu.Unlock()
	return tg.attach(p, mk)
}
