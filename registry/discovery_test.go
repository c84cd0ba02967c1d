package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func found(addrs ...string) []TargetSpec {
	var ts []TargetSpec
	for _, a := range addrs {
		ts = append(ts, TargetSpec{Address: a})
	}
	return ts
}

func poolOf(r *Registry, id string) string { return strings.Join(r.Pool(id).Addresses, ",") }

// discovered sets a registry with upstream u (config target c:1, a
// discovery) committed at generation gen.
func discovered(t *testing.T) (*Registry, uint64) {
	t.Helper()
	r := New()
	s := UpstreamSpec{ID: "u", Targets: []TargetSpec{{Address: "c:1"}}, Discovery: true}
	gen := r.Prepare([]UpstreamSpec{s})
	if r.SetDiscovered(gen, "u", found("a:1")) {
		t.Fatal("a set applied before the commit")
	}
	r.Commit(gen)
	r.Reconcile([]UpstreamSpec{s}, nil)
	if !r.SetDiscovered(gen, "u", found("b:1", "a:1", "a:1", "c:1")) {
		t.Fatal("the running config's set was refused")
	}
	return r, gen
}

func TestSetDiscovered(t *testing.T) {
	r, gen := discovered(t)
	u, _ := r.Get("u")
	if addrs(u.Targets) != "c:1,a:1,b:1" || u.Targets[0].Origin != OriginConfig || u.Targets[1].Origin != OriginDiscovery {
		t.Fatalf("targets %+v", u.Targets)
	}
	if r.SetDiscovered(gen+1, "u", nil) || r.SetDiscovered(gen, "nope", nil) {
		t.Error("a set of another generation or upstream applied")
	}
	v := u.Version
	r.SetDiscovered(gen, "u", found("c:1", "a:1", "b:1"))
	if u, _ := r.Get("u"); u.Version != v {
		t.Error("the same set changed the version")
	}
	r.SetDiscovered(gen, "u", []TargetSpec{{Address: "d:1", Weight: 5}})
	if got := poolOf(r, "u"); got != "c:1,d:1" || r.Pool("u").Weight("d:1") != 5 {
		t.Errorf("pool %s", got)
	}
	// Health checks take a discovered target out of the pool like any.
	r.SetHealth("u", "d:1", false)
	if got := poolOf(r, "u"); got != "c:1" {
		t.Errorf("unhealthy discovered target in the pool: %s", got)
	}
	r.SetHealth("u", "d:1", true)
	// A reload that keeps the discovery keeps the set; one without drops it.
	s := UpstreamSpec{ID: "u", Targets: []TargetSpec{{Address: "c:1"}}, Discovery: true}
	r.Reconcile([]UpstreamSpec{s}, nil)
	if got := poolOf(r, "u"); got != "c:1,d:1" {
		t.Errorf("reload emptied the discovered set: %s", got)
	}
	s.Discovery = false
	r.Reconcile([]UpstreamSpec{s}, nil)
	if got := poolOf(r, "u"); got != "c:1" {
		t.Errorf("discovery removed from the config, pool %s", got)
	}
	if r.SetDiscovered(gen, "u", found("e:1")) {
		t.Error("a set applied to an upstream without discovery")
	}
}

func TestDiscoveredAPIChanges(t *testing.T) {
	r, gen := discovered(t)
	// Weight and drain of a discovered target persist by address.
	w := 7
	if _, err := r.PatchTarget("u", "a:1", TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Drain("u", "b:1", time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	r.SetDiscovered(gen, "u", found("a:1", "b:1", "x:1"))
	if got := poolOf(r, "u"); got != "c:1,a:1,x:1" || r.Pool("u").Weight("a:1") != 7 {
		t.Errorf("pool %s, weight %d", got, r.Pool("u").Weight("a:1"))
	}
	// A drain timeout does not remove a discovered target.
	if gone, err := r.Expire(time.Now().Add(time.Second)); err != nil || len(gone) != 0 {
		t.Errorf("expire removed %v (%v)", gone, err)
	}
	// The API cannot remove discovered targets.
	if _, err := r.RemoveTarget("u", "x:1", 0); !errors.Is(err, ErrDiscovered) {
		t.Errorf("remove: %v", err)
	}
	if _, err := r.PutTargets("u", []Target{{Address: "c:1", Weight: 1}, {Address: "a:1", Weight: 1}}, 0); !errors.Is(err, ErrDiscovered) || !strings.Contains(err.Error(), "b:1") {
		t.Errorf("put without discovered targets: %v", err)
	}
	if _, err := r.AddTarget("u", Target{Address: "y:1", Weight: 1, Origin: OriginDiscovery}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("add with origin discovery: %v", err)
	}
	if _, err := r.PutTargets("u", []Target{{Address: "y:1", Weight: 1, Origin: OriginDiscovery}}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("put with origin discovery: %v", err)
	}
	// The API may remove config targets and add its own; a put keeps
	// the origin of discovered targets.
	u, err := r.PutTargets("u", []Target{{Address: "a:1", Weight: 7, Origin: OriginAPI}, {Address: "b:1", Weight: 1}, {Address: "x:1", Weight: 1}, {Address: "z:1", Weight: 1}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.Targets[0].Origin != OriginDiscovery || u.Targets[3].Origin != OriginAPI {
		t.Errorf("origins %+v", u.Targets)
	}
	// Discovery drops a target: it leaves, draining or not; the API's
	// target stays; a target discovery finds again comes back (with what
	// the API made of it).
	r.SetDiscovered(gen, "u", found("a:1", "q:1"))
	if got := poolOf(r, "u"); got != "a:1,z:1,q:1" || r.Pool("u").Weight("a:1") != 7 {
		t.Errorf("after discovery change: %s", got)
	}
	r.SetDiscovered(gen, "u", found("a:1", "q:1", "b:1"))
	if got := poolOf(r, "u"); got != "a:1,b:1,z:1,q:1" { // b:1 as the API left it
		t.Errorf("re-found target: %s", got)
	}
	// Fewer changes without discovery: the API list applies as is.
	if _, err := r.RemoveTarget("u", "z:1", 0); err != nil {
		t.Errorf("remove of an API target: %v", err)
	}
}

func TestMergeWithoutDiscovered(t *testing.T) {
	base := []Target{{Address: "a:1", Weight: 1, State: StateActive, Origin: OriginConfig}}
	over := []Target{{Address: "b:1", Weight: 1, State: StateActive, Origin: OriginAPI}}
	if got := addrs(merge(base, over, base)); got != "b:1" {
		t.Errorf("merge %s", got)
	}
}
