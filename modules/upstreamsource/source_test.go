package upstreamsource

import (
	"fmt"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sentinel-proxy/sentinel/registry"
)

// testReg is the tests' registry, given to the modules with
// registry.WithRegistry.
var testReg = registry.New()

func TestGetUpstreams(t *testing.T) {
	testReg.Reconcile([]registry.UpstreamSpec{{ID: "src", Targets: []registry.TargetSpec{{Address: "a:1"}, {Address: "b:1"}}}}, nil)
	s := &Source{Upstream: "src"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Provision(registry.WithRegistry(caddy.Context{}, testReg))
	ups, err := s.GetUpstreams(nil)
	if err != nil || len(ups) != 2 || ups[0].Dial != "a:1" || ups[1].Dial != "b:1" {
		t.Fatalf("%v %v", ups, err)
	}
	// Fresh values each call: the proxy writes into them.
	again, _ := s.GetUpstreams(nil)
	if again[0] == ups[0] {
		t.Error("upstream values are shared between requests")
	}
	testReg.Drain("src", "", 0, 0)
	if ups, _ := s.GetUpstreams(nil); len(ups) != 0 {
		t.Errorf("drained targets returned: %v", ups)
	}
	missing := &Source{Upstream: "missing"}
	missing.Provision(registry.WithRegistry(caddy.Context{}, testReg))
	if ups, err := missing.GetUpstreams(nil); err != nil || len(ups) != 0 {
		t.Errorf("unknown upstream: %v %v", ups, err)
	}
	if err := new(Source).Validate(); err == nil {
		t.Error("empty id accepted")
	}
}

func TestCaddyfile(t *testing.T) {
	var s Source
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("sentinel api")); err != nil || s.Upstream != "api" {
		t.Fatal(err)
	}
	for _, bad := range []string{"sentinel", "sentinel a b", "sentinel a {\n x\n}"} {
		if err := new(Source).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestGetUpstreamsAllocs: fresh values for every size of pool (each
// target once, in order, distinct between calls), in one allocation up
// to 8 targets.
func TestGetUpstreamsAllocs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 8, 9, 20} {
		var specs []registry.TargetSpec
		for i := range n {
			specs = append(specs, registry.TargetSpec{Address: fmt.Sprintf("10.2.0.%d:80", i)})
		}
		id := fmt.Sprintf("allocs%d", n)
		testReg.Reconcile([]registry.UpstreamSpec{{ID: id, Targets: specs}}, nil)
		s := &Source{Upstream: id}
		s.Provision(registry.WithRegistry(caddy.Context{}, testReg))
		ups, _ := s.GetUpstreams(nil)
		again, _ := s.GetUpstreams(nil)
		if len(ups) != n || len(again) != n {
			t.Fatalf("%d targets: got %d and %d", n, len(ups), len(again))
		}
		for i := range ups {
			if ups[i].Dial != specs[i].Address || again[i].Dial != specs[i].Address || ups[i] == again[i] {
				t.Fatalf("%d targets: #%d %q %q shared=%v", n, i, ups[i].Dial, again[i].Dial, ups[i] == again[i])
			}
		}
		want := 1.0
		if n > 8 {
			want = 2
		}
		if got := testing.AllocsPerRun(100, func() { s.GetUpstreams(nil) }); got != want {
			t.Errorf("%d targets: %.1f allocations, want %.0f", n, got, want)
		}
	}
}

func BenchmarkGetUpstreams(b *testing.B) {
	for _, n := range []int{3, 100} {
		var specs []registry.TargetSpec
		for i := 0; i < n; i++ {
			specs = append(specs, registry.TargetSpec{Address: "10.1.0." + string(rune('0'+i%10)) + string(rune('0'+i/10)) + ":80"})
		}
		id := "bench" + string(rune('0'+n%10))
		testReg.Reconcile([]registry.UpstreamSpec{{ID: id, Targets: specs}}, nil)
		s := &Source{Upstream: id}
		s.Provision(registry.WithRegistry(caddy.Context{}, testReg))
		b.Run(map[int]string{3: "3-targets", 100: "100-targets"}[n], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.GetUpstreams(nil)
			}
		})
	}
}
