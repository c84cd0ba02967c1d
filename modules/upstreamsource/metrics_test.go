package upstreamsource

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sentinel-proxy/sentinel/metrics"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestSourceUpstreamMetrics: the sources of a config share one
// registration of the per-upstream duration histogram on the config's
// metrics registry, each with its upstream's series; the last Cleanup
// releases it.
func TestSourceUpstreamMetrics(t *testing.T) {
	testReg.Reconcile([]registry.UpstreamSpec{
		{ID: "m1", Targets: []registry.TargetSpec{{Address: "a:1"}}},
		{ID: "m2", Targets: []registry.TargetSpec{{Address: "b:1"}}},
	}, nil)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	ctx = registry.WithRegistry(ctx, testReg)
	var sources []*Source
	for _, id := range []string{"m1", "m2", "m1"} {
		s := &Source{Upstream: id}
		if err := s.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if s.observe == nil {
			t.Fatalf("source of %s has no observer", id)
		}
		sources = append(sources, s)
	}
	sources[0].observe.Observe(0.01)
	sources[2].observe.Observe(0.02)
	sources[1].observe.Observe(0.03)
	reg := ctx.GetMetricsRegistry()
	if n, err := testutil.GatherAndCount(reg, metrics.UpstreamDurationName); err != nil || n != 2 {
		t.Fatalf("%d series of %s (%v), want 2 (one per upstream)", n, metrics.UpstreamDurationName, err)
	}
	if _, ok := configMetrics.References(reg); !ok {
		t.Fatal("no shared metrics for the config's registry")
	}
	for _, s := range sources {
		if err := s.Cleanup(); err != nil {
			t.Fatal(err)
		}
		_ = s.Cleanup() // twice: released once
	}
	if n, ok := configMetrics.References(reg); ok {
		t.Errorf("shared metrics still referenced %d times after every Cleanup", n)
	}
}
