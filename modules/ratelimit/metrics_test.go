package ratelimit

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
)

// TestMetrics: the requests a zone admits and limits, the decisions of
// the local fallback and the shared store's state are exported per zone;
// zones of one name are summed; log-only requests over the limit count
// as limited.
func TestMetrics(t *testing.T) {
	srv := storetest.Redis(t)
	local := provision(t, &Handler{Zone: "m-local", MaxRPS: 1, Burst: 2})
	logOnly := provision(t, &Handler{Zone: "m-local", MaxRPS: 1, Burst: 2, OnLimit: "log-only"}) // other settings: another zone of the same name
	shared := provision(t, &Handler{Zone: "m-redis", MaxRPS: 1000, Burst: 100, Backend: "redis", Redis: &sharedstore.RedisConfig{URL: srv.URL(), Timeout: 300 * 1e6}})
	for range 3 {
		do(t, local, "192.0.2.1", "/", nil)
		do(t, logOnly, "192.0.2.1", "/", nil)
		do(t, shared, "192.0.2.1", "/", nil)
	}
	srv.Stop()
	for range 2 {
		if w := do(t, shared, "192.0.2.1", "/", nil); w.Code != 200 {
			t.Fatalf("Redis down, fallback on: %d", w.Code)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Other tests' zones may be alive: ours only.
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			ours := false
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
				ours = ours || l.GetName() == "zone" && strings.HasPrefix(l.GetValue(), "m-")
			}
			if ours {
				got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		MetricRequests + "{result=admitted,zone=m-local}": 4, // 2 + 2 of the two handlers' buckets
		MetricRequests + "{result=limited,zone=m-local}":  2,
		MetricRequests + "{result=admitted,zone=m-redis}": 5,
		MetricRequests + "{result=limited,zone=m-redis}":  0,
		MetricFallback + "{zone=m-local}":                 0,
		MetricFallback + "{zone=m-redis}":                 2,
		MetricStoreUp + "{zone=m-redis}":                  0,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
