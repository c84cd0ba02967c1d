package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUpstreams: registering the per-upstream metrics twice on a registry
// shares them; the series are per upstream; a nil registry gives metrics
// that work unexported, and a nil Upstreams gives no observer.
func TestUpstreams(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a, err := NewUpstreams(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewUpstreams(reg)
	if err != nil {
		t.Fatal(err)
	}
	a.For("web").Observe(0.001)
	b.For("web").Observe(0.002)
	b.For("api").Observe(3)
	if n := testutil.CollectAndCount(a.duration); n != 2 {
		t.Errorf("%d series, want 2 (web, api)", n)
	}
	if n, err := testutil.GatherAndCount(reg, UpstreamDurationName); err != nil || n != 2 {
		t.Errorf("gathered %d series (%v)", n, err)
	}
	un, err := NewUpstreams(nil)
	if err != nil || un.For("x") == nil {
		t.Errorf("unexported metrics: %v", err)
	}
	var none *Upstreams
	if none.For("x") != nil {
		t.Error("a nil Upstreams gave an observer")
	}
}
