package routeguard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestGuardsShareConfigMetrics: the guards of one config share one set of
// route metrics (built and registered once, not per route), each route
// keeps its own series, and the share goes when the last guard is
// cleaned up.
func TestGuardsShareConfigMetrics(t *testing.T) {
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: t.Context()}, testReg))
	defer cancel()
	reg := ctx.GetMetricsRegistry()
	guards := make([]*Guard, 50)
	for i := range guards {
		guards[i] = &Guard{Route: fmt.Sprintf("shared-%d", i)}
		if err := guards[i].Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if refs, ok := configMetrics.References(reg); !ok || refs != len(guards) {
		t.Fatalf("config metrics references = %d, %v; want %d", refs, ok, len(guards))
	}
	for _, g := range guards[:2] {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error { return nil }))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "sentinel_route_requests_total" {
			series = len(mf.GetMetric())
		}
	}
	if series != 2 {
		t.Errorf("%d request series, want one per route served (2)", series)
	}

	// Provisioning a guard allocates a bounded amount, whatever the
	// number of guards provisioned before (it once built two metric
	// vectors and registered four collectors per route).
	allocs := testing.AllocsPerRun(20, func() {
		g := &Guard{Route: "shared-0"}
		if err := g.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		g.Cleanup()
	})
	if allocs > 15 {
		t.Errorf("provisioning a guard: %.0f allocations, want ≤ 15", allocs)
	}

	for _, g := range guards {
		if err := g.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := configMetrics.References(reg); ok {
		t.Error("config metrics still held after every guard was cleaned up")
	}
}

// TestRouteMetricsConflict: a registry holding other metrics of the same
// names is an error naming what failed, and nothing is kept in the pool.
func TestRouteMetricsConflict(t *testing.T) {
	for _, name := range []string{"sentinel_build_info", "sentinel_route_requests_total"} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "something else"}))
		_, err := routeMetrics(reg, testReg)
		if err == nil || !strings.Contains(err.Error(), "registering") {
			t.Errorf("%s taken: err = %v", name, err)
		}
		if _, ok := configMetrics.References(reg); ok {
			t.Errorf("%s taken: a failed registration is kept", name)
		}
	}
}
