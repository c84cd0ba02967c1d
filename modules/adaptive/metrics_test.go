package adaptive

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"
)

// TestMetrics: every policy reports its targets on the config's metrics
// registry; a second instance reuses the registered collector; a target
// is reported once per policy and upstream; Cleanup removes the policy.
func TestMetrics(t *testing.T) {
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	reg := ctx.GetMetricsRegistry()
	reconcile(t, "mx", map[string]int{"mx-a:1": 2, "mx-b:1": 1})
	pool := testPool("mx-a:1", "mx-b:1")
	mods := []interface {
		policy
		caddy.CleanerUpper
	}{
		&PeakEWMA{Upstream: "mx"}, &PeakEWMA{Upstream: "mx"}, &Adaptive{Upstream: "mx"}, &P2C{Upstream: "mx"},
		&WeightedLeastConnections{Upstream: "mx"}, &ConsistentHash{Upstream: "mx"}, &Maglev{Upstream: "mx"},
		&LocalityAware{Upstream: "mx"}, &DeterministicSubset{Upstream: "mx"}, &Weighted{Upstream: "mx"},
	}
	for _, m := range mods {
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		// Before any request: nothing to report.
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			m.Select(pool, reqFrom("1.1.1.1"), nil)
		}
	}
	feed("mx-a:1", monotime(), okSample(ms(4)))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	for _, name := range []string{"sentinel_lb_selections_total", "sentinel_lb_in_flight", "sentinel_lb_latency_seconds", "sentinel_lb_error_ratio", "sentinel_lb_weight", "sentinel_lb_score"} {
		if byName[name] == nil {
			t.Fatalf("missing %s", name)
		}
	}
	sel := map[string]float64{}
	for _, m := range byName["sentinel_lb_selections_total"].Metric {
		l := map[string]string{}
		for _, p := range m.Label {
			l[p.GetName()] = p.GetValue()
		}
		if l["upstream"] != "mx" {
			continue
		}
		sel[l["policy"]] += m.GetCounter().GetValue()
	}
	want := map[string]float64{"peak_ewma": 6, "adaptive": 3, "p2c": 3, "weighted_least_connections": 3, "consistent_hash": 3, "maglev": 3, "locality_aware": 3, "deterministic_subset": 3, "sentinel_weighted": 3}
	for p, n := range want {
		if sel[p] < n {
			t.Errorf("%s: %v selections reported, want %v", p, sel[p], n)
		}
	}
	for _, m := range byName["sentinel_lb_latency_seconds"].Metric {
		l := map[string]string{}
		for _, p := range m.Label {
			l[p.GetName()] = p.GetValue()
		}
		if l["upstream"] == "mx" && l["policy"] == "peak_ewma" && l["target"] == "mx-a:1" && !near(m.GetGauge().GetValue(), 0.004, 1e-3) {
			t.Errorf("peak_ewma latency of a: %v", m.GetGauge().GetValue())
		}
	}
	for _, m := range mods {
		m.Cleanup()
	}
	testFeedback.lb.mu.Lock()
	defer testFeedback.lb.mu.Unlock()
	for _, m := range mods {
		if _, ok := testFeedback.lb.sources[m.(metricsSource)]; ok {
			t.Errorf("%T left in the collector after cleanup", m)
		}
	}
}
