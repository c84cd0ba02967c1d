package adaptive

import (
	"testing"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestStoreForgetsSweptAddresses: when the registry sweeps a former
// target, the feedback store drops its state and selection counters, and
// the address starts afresh (with the registry's new counters) if it
// comes back.
func TestStoreForgetsSweptAddresses(t *testing.T) {
	reg := registry.New()
	s := newStore(reg)
	reg.Reconcile([]registry.UpstreamSpec{{ID: "fg", Targets: []registry.TargetSpec{{Address: "fg:1", Weight: 1}, {Address: "fg:2", Weight: 1}}}}, nil)
	old := s.target("fg:1")
	old.record(1, okSample(5))
	s.group(selectionKey{"p", "fg", "fg:1"}, func() any { return new(int) })
	s.group(selectionKey{"p", "fg", "fg:2"}, func() any { return new(int) })
	reg.Sweep()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "fg", Targets: []registry.TargetSpec{{Address: "fg:2", Weight: 1}}}}, nil)
	reg.Sweep()
	if got := reg.Sweep(); len(got) != 1 || got[0] != "fg:1" {
		t.Fatalf("swept %v", got)
	}
	if _, ok := s.targets.Load("fg:1"); ok {
		t.Error("the store kept fg:1")
	}
	if _, ok := s.groups.Load(selectionKey{"p", "fg", "fg:1"}); ok {
		t.Error("the selection counter of fg:1 survived")
	}
	if _, ok := s.groups.Load(selectionKey{"p", "fg", "fg:2"}); !ok {
		t.Error("fg:2's counter was dropped")
	}
	if nt := s.target("fg:1"); nt == old || nt.stats != reg.Stats("fg:1") {
		t.Error("a returning address must start afresh with the registry's counters")
	}
}
