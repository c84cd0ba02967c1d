package adaptive

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestStoreForgetsSweptAddresses: when the registry sweeps a former
// target, the feedback store drops its state and selection counters, and
// the address starts afresh (with the registry's new counters) if it
// comes back.
func TestStoreForgetsSweptAddresses(t *testing.T) {
	reg := registry.New()
	s := feedbackOf(reg)
	reg.Reconcile([]registry.UpstreamSpec{{ID: "fg", Targets: []registry.TargetSpec{{Address: "fg:1", Weight: 1}, {Address: "fg:2", Weight: 1}}}}, nil)
	old := s.target("fg:1")
	old.record(1, okSample(5))
	p := s.join(policyKey{kind: "p", upstream: "fg"})
	s.selections(p, "fg:1").Add(3)
	s.selections(p, "fg:2").Add(4)
	reg.Sweep()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "fg", Targets: []registry.TargetSpec{{Address: "fg:2", Weight: 1}}}}, nil)
	reg.Sweep()
	if got := reg.Sweep(); len(got) != 1 || got[0] != "fg:1" {
		t.Fatalf("swept %v", got)
	}
	if _, ok := s.targets.Load("fg:1"); ok {
		t.Error("the store kept fg:1")
	}
	if _, ok := p.addrs["fg:1"]; ok {
		t.Error("the selection counter of fg:1 survived")
	}
	if got := s.selections(p, "fg:2").Load(); got != 4 {
		t.Errorf("fg:2's counter is %d, want 4", got)
	}
	if nt := s.target("fg:1"); nt == old || nt.stats != reg.Stats("fg:1") {
		t.Error("a returning address must start afresh with the registry's counters")
	}
}

// TestForgetTouchesOnlyItsPolicies: forgetting an address visits the
// policy states that keep something of it (through the address index),
// not every state: the others keep their maps untouched, and the index
// holds exactly the states of each address.
func TestForgetTouchesOnlyItsPolicies(t *testing.T) {
	reg := registry.New()
	s := feedbackOf(reg)
	a := s.join(policyKey{kind: "a", upstream: "u"})
	b := s.join(policyKey{kind: "b", upstream: "u"})
	c := s.join(policyKey{kind: "c", upstream: "u"})
	s.selections(a, "x:1")
	s.selections(b, "y:1")
	s.selections(c, "x:1")
	s.selections(c, "y:1")
	if got := s.byAddr["x:1"]; len(got) != 2 || !has(got, a) || !has(got, c) {
		t.Fatalf("x:1 is indexed under %v, want a and c", got)
	}
	s.forget("x:1")
	if len(a.addrs) != 0 || len(c.addrs) != 1 || c.addrs["y:1"] == nil || len(b.addrs) != 1 {
		t.Errorf("after forgetting x:1: a %v, b %v, c %v", a.addrs, b.addrs, c.addrs)
	}
	if _, ok := s.byAddr["x:1"]; ok {
		t.Error("x:1 is still indexed")
	}
	// A state dropped by its last user leaves the index.
	s.leave(policyKey{kind: "c", upstream: "u"})
	if got := s.byAddr["y:1"]; len(got) != 1 || !has(got, b) {
		t.Errorf("y:1 is indexed under %v after c left, want b", got)
	}
}

func has(set map[*policyState]struct{}, p *policyState) bool {
	_, ok := set[p]
	return ok
}

// TestTunablesChangeDoesNotLeakGroup: config reloads with Caddy's order
// (the new config is provisioned before the old one is cleaned up) keep
// one adaptive group while the tunables stay and drop the old group,
// with its estimators on the targets, when they change: after any number
// of reloads, one group and one estimator per target are left.
func TestTunablesChangeDoesNotLeakGroup(t *testing.T) {
	reg := registry.New()
	fb := feedbackOf(reg)
	base := registry.WithRegistry(caddy.Context{Context: context.Background()}, reg)
	pool := testPool("tl:1", "tl:2")
	req := httptest.NewRequest("GET", "/", nil)
	load := func(interval string) (*Adaptive, context.CancelFunc) {
		t.Helper()
		ctx, cancel := caddy.NewContext(base)
		m, err := ctx.LoadModuleByID("http.reverse_proxy.selection_policies.adaptive", json.RawMessage(`{"upstream":"tl","adjustment_interval":"`+interval+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		s := m.(*Adaptive)
		s.Select(pool, req, nil) // attaches the estimators
		return s, cancel
	}
	observers := func(addr string) int {
		p := fb.target(addr).obs.Load()
		if p == nil {
			return 0
		}
		return len(*p)
	}
	intervals := []string{"1s", "1s", "2s", "3s", "3s", "1s"}
	cur, cancel := load("1s")
	group, prev := cur.group, "1s"
	for i, interval := range intervals {
		next, cancelNext := load(interval)
		cancel() // the old config's Cleanup
		same := interval == prev
		prev = interval
		if same != (next.group == group) {
			t.Errorf("reload %d (%s): group kept = %v, want %v", i+1, interval, next.group == group, same)
		}
		if n := fb.policyCount(); n != 1 {
			t.Errorf("reload %d (%s): %d policy states, want 1", i+1, interval, n)
		}
		for _, a := range []string{"tl:1", "tl:2"} {
			if n := observers(a); n != 1 {
				t.Errorf("reload %d (%s): %s has %d estimators, want 1", i+1, interval, a, n)
			}
		}
		group, cancel = next.group, cancelNext
	}
	cancel()
	if n := fb.policyCount(); n != 0 {
		t.Errorf("%d policy states after the last config, want 0", n)
	}
	if len(fb.byAddr) != 0 {
		t.Errorf("the address index kept %d addresses", len(fb.byAddr))
	}
	if n := observers("tl:1"); n != 0 {
		t.Errorf("tl:1 kept %d estimators", n)
	}
}

// policyCount returns the number of policy states alive .
func (s *store) policyCount() int {
	n := 0
	s.policies.Range(func(any, any) bool { n++; return true })
	return n
}
