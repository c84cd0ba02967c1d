package registry

import (
	"slices"
	"testing"
)

// TestSweep: a removed target is forgotten after a whole idle interval,
// not while it serves or receives requests, and not when it comes back;
// an address that was never a target is kept; the hooks hear of it.
func TestSweep(t *testing.T) {
	r := New()
	var heard []string
	r.OnForget(func(a string) { heard = append(heard, a) })
	spec := func(addrs ...string) []UpstreamSpec {
		s := UpstreamSpec{ID: "u"}
		for _, a := range addrs {
			s.Targets = append(s.Targets, TargetSpec{Address: a, Weight: 1})
		}
		return []UpstreamSpec{s}
	}
	r.Reconcile(spec("a:1", "b:1", "c:1"), nil)
	r.Stats("a:1").Start()
	r.Stats("a:1").Done(false)
	r.Stats("b:1").Start() // b stays in flight
	r.Stats("c:1").Start()
	r.Stats("c:1").Done(false)
	r.Stats("static:1").Start() // never a registry target
	r.Stats("static:1").Done(false)
	if got := r.Sweep(); len(got) != 0 {
		t.Fatalf("first sweep forgot %v", got)
	}

	r.Reconcile(spec(), nil) // every target removed
	if got := r.Sweep(); len(got) != 0 {
		t.Fatalf("forgotten at once: %v", got)
	}
	r.Stats("c:1").Start() // c still gets a request during the interval
	r.Stats("c:1").Done(false)
	got := r.Sweep()
	if !slices.Equal(got, []string{"a:1"}) || !slices.Equal(heard, []string{"a:1"}) {
		t.Fatalf("forgot %v, hooks heard %v; want a:1", got, heard)
	}
	if r.Stats("a:1").Requests() != 0 {
		t.Error("a:1's counters survived")
	}
	r.Stats("a:1") // recreated by a read; not a former target any more

	r.Reconcile(spec("c:1"), nil) // c comes back before it is forgotten
	r.Stats("b:1").Done(false)
	if got := r.Sweep(); len(got) != 0 {
		t.Fatalf("forgot %v (b was still idle only one interval; c is back)", got)
	}
	got = r.Sweep()
	if !slices.Equal(got, []string{"b:1"}) {
		t.Fatalf("forgot %v, want b:1", got)
	}
	if r.Stats("c:1").Requests() != 2 || r.Stats("static:1").Requests() != 1 {
		t.Error("a target in use or a static address lost its counters")
	}
	for range 3 {
		if got := r.Sweep(); len(got) != 0 {
			t.Fatalf("later sweep forgot %v", got)
		}
	}
}
