package upstreamsource

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/metrics"
)

// configMetrics holds the per-upstream metrics of each config's metrics
// registry, registered once per config: a config of 10,000 routes
// registers the histogram once, not per route. Like Caddy's own pools,
// it is process-wide; each source holds a reference until its Cleanup.
var configMetrics = caddy.NewUsagePool()

// sharedUpstreams is a config's per-upstream metrics in configMetrics.
type sharedUpstreams struct{ m *metrics.Upstreams }

// Destruct implements caddy.Destructor; the metrics go with their
// registry.
func (*sharedUpstreams) Destruct() error { return nil }

// upstreamMetrics returns the per-upstream metrics registered on reg,
// registering them for the first source of a config. Each call holds a
// reference that Cleanup drops.
func upstreamMetrics(reg prometheus.Registerer) (*metrics.Upstreams, error) {
	v, _, err := configMetrics.LoadOrNew(reg, func() (caddy.Destructor, error) {
		m, err := metrics.NewUpstreams(reg)
		if err != nil {
			return nil, fmt.Errorf("registering upstream metrics: %w", err)
		}
		return &sharedUpstreams{m: m}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sharedUpstreams).m, nil
}
