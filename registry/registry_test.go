package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func spec(id string, addrs ...string) UpstreamSpec {
	s := UpstreamSpec{ID: id}
	for _, a := range addrs {
		s.Targets = append(s.Targets, TargetSpec{Address: a})
	}
	return s
}

func addrs(ts []Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Address)
	}
	return strings.Join(out, ",")
}

func TestReconcileAndPool(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{{ID: "u", Targets: []TargetSpec{{Address: "a:1", Weight: 3}, {Address: "b:1"}}}}, nil)
	p := r.Pool("u")
	if strings.Join(p.Addresses, ",") != "a:1,b:1" || p.Weights[0] != 3 || p.Weight("b:1") != 1 || p.Weight("zz:1") != 1 {
		t.Fatalf("pool %+v", p)
	}
	if r.Pool("missing") != nil {
		t.Error("unknown upstream has a pool")
	}
	v1, _ := r.Get("u")
	r.Reconcile([]UpstreamSpec{{ID: "u", Targets: []TargetSpec{{Address: "a:1", Weight: 3}, {Address: "b:1"}}}}, nil)
	if v2, _ := r.Get("u"); v2.Version != v1.Version {
		t.Error("unchanged config changed the version")
	}
	// Health takes targets out of the pool and back.
	if !r.SetHealth("u", "a:1", false) || r.SetHealth("u", "a:1", false) {
		t.Error("SetHealth change reporting")
	}
	if got := strings.Join(r.Pool("u").Addresses, ","); got != "b:1" || r.Healthy("u", "a:1") {
		t.Errorf("unhealthy target in pool: %s", got)
	}
	r.SetHealth("u", "a:1", true)
	if got := strings.Join(r.Pool("u").Addresses, ","); got != "a:1,b:1" {
		t.Errorf("healed target not back: %s", got)
	}
	if r.SetHealth("nope", "a:1", true) || r.Healthy("nope", "a:1") {
		t.Error("health of an unknown upstream")
	}
	// Leaving the config forgets the upstream.
	r.Reconcile(nil, nil)
	if _, ok := r.Get("u"); ok || len(r.Upstreams()) != 0 {
		t.Error("upstream that left the config is still there")
	}
}

func TestAPIChangesSurviveReload(t *testing.T) {
	r := New()
	cfg := []UpstreamSpec{spec("u", "a:1", "b:1")}
	r.Reconcile(cfg, nil)
	if _, err := r.AddTarget("u", Target{Address: "c:1", Weight: 2}, 0); err != nil {
		t.Fatal(err)
	}
	w := 5
	if _, err := r.PatchTarget("u", "a:1", TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	// Same config again (a PATCH of an unrelated part): changes stay.
	r.Reconcile(cfg, nil)
	u, _ := r.Get("u")
	if addrs(u.Targets) != "a:1,b:1,c:1" || u.Targets[0].Weight != 5 || u.Targets[2].Origin != OriginAPI {
		t.Fatalf("after reload: %+v", u.Targets)
	}
	// The config changes: b removed, d added, a's weight changed (the API
	// changed it too: the API wins), c stays (added by the API).
	r.Reconcile([]UpstreamSpec{{ID: "u", Targets: []TargetSpec{{Address: "a:1", Weight: 9}, {Address: "d:1"}}}}, nil)
	u, _ = r.Get("u")
	if addrs(u.Targets) != "a:1,c:1,d:1" || u.Targets[0].Weight != 5 {
		t.Fatalf("three-way merge: %+v", u.Targets)
	}
	// A config weight the API did not touch follows the config.
	r.Reconcile([]UpstreamSpec{{ID: "u", Targets: []TargetSpec{{Address: "a:1", Weight: 9}, {Address: "d:1", Weight: 4}}}}, nil)
	u, _ = r.Get("u")
	if u.Targets[2].Weight != 4 {
		t.Fatalf("config weight not taken: %+v", u.Targets)
	}
}

func TestOperations(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("cfg", "a:1")}, []string{"route"})
	store := &memStore{}
	if err := r.UseStore(store); err != nil {
		t.Fatal(err)
	}

	if _, err := r.CreateUpstream("cfg", nil); !errors.Is(err, ErrExists) {
		t.Errorf("create existing: %v", err)
	}
	if _, err := r.CreateUpstream("", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("create empty id: %v", err)
	}
	up, err := r.CreateUpstream("api", []Target{{Address: "x:1", Weight: 1}})
	if err != nil || up.Origin != OriginAPI || up.Targets[0].Weight != 1 || up.Targets[0].State != StateActive {
		t.Fatalf("create: %+v %v", up, err)
	}
	if _, err := r.PutTargets("api", []Target{{Address: "y:1", Weight: 1}, {Address: "y:1", Weight: 1}}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate target: %v", err)
	}
	for _, bad := range []Target{{Address: "nohost", Weight: 1}, {Address: "h:0", Weight: 1}, {Address: "h:1", Weight: -1}, {Address: "h:1", State: "sleeping"}} {
		if _, err := r.PutTargets("api", []Target{bad}, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := r.PutTargets("api", []Target{{Address: "y:1", Weight: 1}}, up.Version+100); !errors.Is(err, ErrConflict) {
		t.Errorf("stale If-Match: %v", err)
	}
	up, err = r.PutTargets("api", []Target{{Address: "y:1", Weight: 1}, {Address: "z:1", Weight: 1}}, up.Version)
	if err != nil || addrs(up.Targets) != "y:1,z:1" {
		t.Fatalf("put: %+v %v", up, err)
	}
	up, err = r.PutTargets("cfg", []Target{{Address: "a:1", Weight: 1}, {Address: "n:1", Weight: 1}}, 0)
	if err != nil || up.Targets[0].Origin != OriginConfig || up.Targets[1].Origin != OriginAPI {
		t.Fatalf("put keeps config origin: %+v %v", up, err)
	}
	if _, err := r.RemoveTarget("api", "nope:1", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove unknown: %v", err)
	}
	if up, err = r.RemoveTarget("api", "z:1", 0); err != nil || addrs(up.Targets) != "y:1" {
		t.Fatalf("remove: %+v %v", up, err)
	}
	st := StateDraining
	if _, err := r.PatchTarget("api", "y:1", TargetPatch{State: &st}, 0); err != nil {
		t.Fatal(err)
	}
	if p := r.Pool("api"); len(p.Addresses) != 0 {
		t.Error("draining target still gets requests")
	}
	active := StateActive
	if _, err := r.PatchTarget("api", "y:1", TargetPatch{State: &active}, 0); err != nil || len(r.Pool("api").Addresses) != 1 {
		t.Error("reactivation")
	}
	bad := State("bogus")
	if _, err := r.PatchTarget("api", "y:1", TargetPatch{State: &bad}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad state: %v", err)
	}
	if _, err := r.PatchTarget("api", "q:1", TargetPatch{}, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("patch unknown: %v", err)
	}
	if _, err := r.PatchTarget("nope", "q:1", TargetPatch{}, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("patch unknown upstream: %v", err)
	}
	if err := r.DeleteUpstream("cfg", 0); !errors.Is(err, ErrConfigDefined) {
		t.Errorf("delete config upstream: %v", err)
	}
	if err := r.DeleteUpstream("api", 999999); !errors.Is(err, ErrConflict) {
		t.Errorf("delete stale: %v", err)
	}
	if err := r.DeleteUpstream("api", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteUpstream("api", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	if store.saves == 0 {
		t.Error("no change was saved")
	}
}

func TestDrainAndExpire(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("u", "d1:1", "d2:1")}, nil)
	up, err := r.Drain("u", "d1:1", 0, 0)
	if err != nil || up.Targets[0].State != StateDraining {
		t.Fatal(up, err)
	}
	st := r.Stats("d1:1")
	st.Start()
	if r.TargetState(up.Targets[0]) != StateDraining || st.InFlight() != 1 {
		t.Error("in-flight draining target reported drained")
	}
	st.Done(true)
	if r.TargetState(up.Targets[0]) != StateDrained || st.Requests() != 1 || st.Failures() != 1 {
		t.Error("drained target")
	}
	if _, err := r.Drain("u", "zz:1", 0, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("drain unknown: %v", err)
	}
	if _, err := r.Drain("u", "", time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if gone, err := r.Expire(time.Now().Add(time.Second)); len(gone) != 2 || err != nil {
		t.Errorf("expired %v %v", gone, err)
	}
	if u, _ := r.Get("u"); len(u.Targets) != 0 {
		t.Errorf("targets left: %+v", u.Targets)
	}
}

func TestRoutes(t *testing.T) {
	r := New()
	early := r.RouteFlagOrNew("b") // a guard provisioned before the app
	r.Reconcile(nil, []string{"a", "b"})
	if r.RouteFlag("b") != early || r.RouteFlagOrNew("b") != early {
		t.Error("flag not shared")
	}
	if err := r.SetRouteEnabled("a", false); err != nil || r.RouteFlag("a").Enabled() {
		t.Fatal("disable")
	}
	if err := r.SetRouteEnabled("zz", false); !errors.Is(err, ErrNotFound) {
		t.Error(err)
	}
	routes := r.Routes()
	if len(routes) != 2 || routes[0].ID != "a" || routes[0].Enabled {
		t.Errorf("%+v", routes)
	}
	r.Reconcile(nil, []string{"a"})
	if r.RouteFlag("a").Enabled() || r.RouteFlag("b") != nil {
		t.Error("reload lost a flag or kept a removed route")
	}
	var nilFlag *RouteFlag
	if !nilFlag.Enabled() {
		t.Error("unknown route must count as enabled")
	}
}

func TestPersistence(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("cfg", "a:1"), spec("gone", "g:1")}, []string{"r1", "r2"})
	r.AddTarget("cfg", Target{Address: "b:1", Weight: 7}, 0)
	r.AddTarget("gone", Target{Address: "h:1", Weight: 1}, 0)
	r.CreateUpstream("api", []Target{{Address: "x:1", Weight: 1}})
	r.SetRouteEnabled("r2", false)
	data, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	if err := WriteFile(path, data); err != nil {
		t.Fatal(err)
	}
	back, _ := os.ReadFile(path)

	// A new process: the config no longer has "gone".
	r2 := New()
	r2.Reconcile([]UpstreamSpec{spec("cfg", "a:1")}, []string{"r1", "r2"})
	if err := r2.Restore(back); err != nil {
		t.Fatal(err)
	}
	u, _ := r2.Get("cfg")
	if addrs(u.Targets) != "a:1,b:1" || u.Targets[1].Weight != 7 {
		t.Errorf("cfg after restart: %+v", u.Targets)
	}
	if _, ok := r2.Get("api"); !ok {
		t.Error("API upstream lost")
	}
	if _, ok := r2.Get("gone"); ok {
		t.Error("upstream that left the config came back")
	}
	if r2.RouteFlag("r2").Enabled() {
		t.Error("disabled route re-enabled")
	}
	for _, bad := range []string{"{", `{"version":99}`} {
		if err := r2.Restore([]byte(bad)); err == nil {
			t.Errorf("%s: expected an error", bad)
		}
	}
	if err := WriteFile(filepath.Join(path, "cannot"), data); err == nil {
		t.Error("writing below a file: expected an error")
	}
}

func TestConcurrentReadsAndWrites(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("u", "a:1", "b:1")}, nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					if p := r.Pool("u"); p == nil {
						t.Error("pool vanished")
						return
					}
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		w := i%5 + 1
		r.PatchTarget("u", "a:1", TargetPatch{Weight: &w}, 0)
		r.SetHealth("u", "b:1", i%2 == 0)
	}
	close(stop)
	wg.Wait()
}

func TestValidateTarget(t *testing.T) {
	if err := ValidateTarget(Target{Address: "[::1]:80", Weight: 1}); err != nil {
		t.Error(err)
	}
	if err := ValidateTarget(Target{Address: "h:99999"}); err == nil {
		t.Error("port out of range accepted")
	}
}

func TestMergeEdgeCases(t *testing.T) {
	base := []Target{{Address: "a:1", Weight: 1, State: StateActive, Origin: OriginConfig}}
	if got := merge(base, nil, nil); addrs(got) != "a:1" {
		t.Error(got)
	}
	if sameTargets(base, nil) || !sameTargets(nil, nil) {
		t.Error("sameTargets")
	}
}
