package registry_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/etcdstore"
	"github.com/sentinel-proxy/sentinel/registry"
)

// Fleet-wide drains (fleet.go) with the real shared store, etcd: an
// external test package, as modules/etcdstore imports this one.

// replica is one registry of a fleet on etcd.
func replica(t *testing.T, endpoint, prefix string) *registry.Registry {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	e := &etcdstore.Etcd{Endpoints: []string{endpoint}, Prefix: prefix, DialTimeout: caddy.Duration(2 * time.Second)}
	if err := e.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Cleanup() })
	r := registry.New()
	r.Reconcile([]registry.UpstreamSpec{{ID: "web", Targets: []registry.TargetSpec{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}}, []string{"r1"})
	if err := r.UseStore(e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.UseStore(nil) })
	return r
}

// eventually waits up to d for ok.
func eventually(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// stateOf is the reported state of a target on r.
func stateOf(r *registry.Registry, id, addr string) registry.State {
	u, ok := r.Get(id)
	if !ok {
		return ""
	}
	for _, t := range u.Targets {
		if t.Address == addr {
			return r.TargetState(t)
		}
	}
	return ""
}

// TestFleetWideDrain drains a target on one replica while another still
// has a request in flight to it: the drain is reported drained on every
// replica only once that request has ended; a replica that leaves the
// fleet no longer holds a drain; GET /api/v1/state's replicas list them.
func TestFleetWideDrain(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	a, b := replica(t, etcd.Endpoint, "/drain/"), replica(t, etcd.Endpoint, "/drain/")
	eventually(t, 3*time.Second, "both replicas see each other", func() bool {
		return len(a.Status().Replicas) == 2 && len(b.Status().Replicas) == 2
	})

	const addr = "10.0.0.1:80"
	req := b.Stats(addr)
	req.Start() // a request on replica b, in flight
	if _, err := a.Drain("web", addr, 0, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b applies the drain", func() bool { return stateOf(b, "web", addr) != registry.StateActive })
	// a has nothing in flight, but b has: draining on both, for as long
	// as b's request lasts.
	time.Sleep(600 * time.Millisecond)
	for name, r := range map[string]*registry.Registry{"a": a, "b": b} {
		if st := stateOf(r, "web", addr); st != registry.StateDraining {
			t.Fatalf("replica %s reports %q while b serves a request to the target", name, st)
		}
	}
	busy := false
	for _, rs := range a.Status().Replicas {
		busy = busy || (!rs.Self && slices.Contains(rs.Busy, addr))
	}
	if !busy {
		t.Fatalf("a's status does not show b busy with %s: %+v", addr, a.Status().Replicas)
	}
	req.Done(false)
	took := eventually(t, 2*time.Second, "a reports the drain done once b's request ended", func() bool {
		return stateOf(a, "web", addr) == registry.StateDrained && stateOf(b, "web", addr) == registry.StateDrained
	})
	t.Logf("drained on every replica %v after the last request ended", took)

	// A replica that leaves the fleet does not hold a drain.
	const addr2 = "10.0.0.2:80"
	b.Stats(addr2).Start()
	if _, err := a.Drain("web", addr2, 0, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b applies the second drain", func() bool { return stateOf(b, "web", addr2) == registry.StateDraining })
	time.Sleep(500 * time.Millisecond)
	if st := stateOf(a, "web", addr2); st != registry.StateDraining {
		t.Fatalf("second drain: a reports %q while b serves", st)
	}
	if err := b.UseStore(nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "b's withdrawal ends the drain on a", func() bool { return stateOf(a, "web", addr2) == registry.StateDrained })
	if n := len(a.Status().Replicas); n != 1 {
		t.Errorf("%d replicas listed after b left, want 1", n)
	}
}
