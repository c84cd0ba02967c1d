package adaptive

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/registry"
)

func pool(addrs ...string) reverseproxy.UpstreamPool {
	var p reverseproxy.UpstreamPool
	for _, a := range addrs {
		p = append(p, &reverseproxy.Upstream{Host: new(reverseproxy.Host), Dial: a})
	}
	return p
}

func newWeighted(t testing.TB, upstream string) *Weighted {
	t.Helper()
	s := &Weighted{Upstream: upstream}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(testCtx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWeightedIsSmooth: weights 5:1:1 interleave (nginx's sequence).
func TestWeightedIsSmooth(t *testing.T) {
	testReg.Reconcile([]registry.UpstreamSpec{{ID: "w-smooth", Targets: []registry.TargetSpec{{Address: "a:1", Weight: 5}, {Address: "b:1"}, {Address: "c:1"}}}}, nil)
	s := newWeighted(t, "w-smooth")
	p := pool("a:1", "b:1", "c:1")
	var seq []string
	for i := 0; i < 7; i++ {
		seq = append(seq, s.Select(p, httptest.NewRequest("GET", "/", nil), nil).Dial[:1])
	}
	if got := strings.Join(seq, ""); got != "aabacaa" {
		t.Errorf("sequence %s, want aabacaa", got)
	}
}

// TestWeightedFollowsRegistry: a weight changed in the registry applies
// to the next selections, and a drained target leaves the pool.
func TestWeightedFollowsRegistry(t *testing.T) {
	testReg.Reconcile([]registry.UpstreamSpec{{ID: "w-live", Targets: []registry.TargetSpec{{Address: "a:1"}, {Address: "b:1"}}}}, nil)
	s := newWeighted(t, "w-live")
	p := pool("a:1", "b:1")
	count := func(n int) map[string]int {
		c := map[string]int{}
		for i := 0; i < n; i++ {
			c[s.Select(p, nil, nil).Dial]++
		}
		return c
	}
	if c := count(100); c["a:1"] != 50 {
		t.Errorf("1:1 → %v", c)
	}
	w := 3
	if _, err := testReg.PatchTarget("w-live", "a:1", registry.TargetPatch{Weight: &w}, 0); err != nil {
		t.Fatal(err)
	}
	if c := count(100); c["a:1"] != 75 {
		t.Errorf("3:1 → %v", c)
	}
	// Weights are 1 or more (registry.ValidateWeight); a drained target
	// is out of the pool.
	draining := registry.StateDraining
	if _, err := testReg.PatchTarget("w-live", "b:1", registry.TargetPatch{State: &draining}, 0); err != nil {
		t.Fatal(err)
	}
	if got := testReg.Pool("w-live").Addresses; len(got) != 1 || got[0] != "a:1" {
		t.Errorf("draining target still in the pool: %v", got)
	}
	// An empty pool selects nothing.
	if s.Select(pool(), nil, nil) != nil {
		t.Error("empty pool")
	}
	// Targets that left the pool are forgotten.
	for i := 0; i < 20; i++ {
		s.Select(pool("n"+string(rune('a'+i))+":1"), nil, nil)
	}
	if n := len(s.views.cur.Load().ext.(*smoothState).current); n != 1 {
		t.Errorf("state of %d targets for a pool of 1", n)
	}
}

func TestWeightedCaddyfile(t *testing.T) {
	var s Weighted
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("sentinel_weighted api")); err != nil || s.Upstream != "api" {
		t.Fatal(err, s.Upstream)
	}
	for _, bad := range []string{"sentinel_weighted", "sentinel_weighted a b"} {
		if err := new(Weighted).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
	if err := new(Weighted).Validate(); err == nil {
		t.Error("missing upstream accepted")
	}
}

// BenchmarkWeightedSelect measures one selection among n targets.
func BenchmarkWeightedSelect(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		b.Run(itoa(n), func(b *testing.B) {
			var specs []registry.TargetSpec
			var addrs []string
			for i := 0; i < n; i++ {
				a := "10.0.0." + itoa(i) + ":80"
				specs = append(specs, registry.TargetSpec{Address: a, Weight: i%3 + 1})
				addrs = append(addrs, a)
			}
			id := "bench-" + itoa(n)
			testReg.Reconcile([]registry.UpstreamSpec{{ID: id, Targets: specs}}, nil)
			s := newWeighted(b, id)
			p := pool(addrs...)
			b.ReportAllocs()
			for b.Loop() {
				s.Select(p, nil, nil)
			}
		})
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// TestWeightedUnavailableAndStale: when the scheduled target is down the
// O(n) path spreads over the others by weight; a pool whose addresses
// changed under the same registry snapshot rebuilds the view; weights too
// large for a cycle use the O(n) path throughout.
func TestWeightedUnavailableAndStale(t *testing.T) {
	testReg.Reconcile([]registry.UpstreamSpec{{ID: "w-down", Targets: []registry.TargetSpec{{Address: "a:1", Weight: 2}, {Address: "b:1", Weight: 1}, {Address: "c:1", Weight: 1}}}}, nil)
	s := newWeighted(t, "w-down")
	p := pool("a:1", "b:1", "c:1")
	setAvailable(p[0], false)
	c := map[string]int{}
	for range 200 {
		c[s.Select(p, nil, nil).Dial]++
	}
	if c["a:1"] != 0 || c["b:1"] != 100 || c["c:1"] != 100 {
		t.Errorf("with a:1 down: %v", c)
	}
	for _, u := range p {
		setAvailable(u, false)
	}
	if s.Select(p, nil, nil) != nil {
		t.Error("a target was selected from a pool with none available")
	}
	// Same length, same snapshot, other addresses: the view is rebuilt.
	q := pool("x:1", "y:1", "z:1")
	if u := s.Select(q, nil, nil); u == nil || !strings.HasSuffix(u.Dial, ":1") || u.Dial[0] < 'x' {
		t.Errorf("stale view: %v", u)
	}

	huge := maxSchedule
	testReg.Reconcile([]registry.UpstreamSpec{{ID: "w-huge", Targets: []registry.TargetSpec{{Address: "a:1", Weight: huge}, {Address: "b:1", Weight: huge}}}}, nil)
	h := newWeighted(t, "w-huge")
	hp := pool("a:1", "b:1")
	c = map[string]int{}
	for range 100 {
		c[h.Select(hp, nil, nil).Dial]++
	}
	if h.views.cur.Load().ext.(*smoothState).sched != nil || c["a:1"] != 50 {
		t.Errorf("weights over the cycle bound: sched=%v %v", h.views.cur.Load().ext.(*smoothState).sched != nil, c)
	}
	if newSchedule([]float64{1.5}, func(int) bool { return true }) != nil {
		t.Error("a fractional weight got a cycle")
	}
}
