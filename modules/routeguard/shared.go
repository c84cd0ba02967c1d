package routeguard

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/metrics"
	"github.com/sentinel-proxy/sentinel/registry"
)

// configMetrics holds the route metrics of one config's metrics registry,
// shared by all the config's guards: a config of 10,000 routes on two
// listeners provisions 20,000 guards, and building and registering the
// metric vectors for each was most of a guard's provisioning.
var configMetrics = caddy.NewUsagePool()

// sharedMetrics is a value of configMetrics.
type sharedMetrics struct{ routes *metrics.Routes }

// Destruct implements caddy.Destructor; the metrics go with their
// registry.
func (*sharedMetrics) Destruct() error { return nil }

// routeMetrics returns the route metrics registered on reg (registering
// them, and Sentinel's other metrics, for the first guard of a config).
// Each call holds a reference that releaseMetrics drops.
func routeMetrics(reg prometheus.Registerer, routes *registry.Registry) (*metrics.Routes, error) {
	v, _, err := configMetrics.LoadOrNew(reg, func() (caddy.Destructor, error) {
		if err := metrics.Register(reg, routes); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
		m, err := metrics.NewRoutes(reg)
		if err != nil {
			return nil, fmt.Errorf("registering route metrics: %w", err)
		}
		return &sharedMetrics{routes: m}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sharedMetrics).routes, nil
}

// releaseMetrics drops a reference taken by routeMetrics.
func releaseMetrics(reg prometheus.Registerer) {
	_, _ = configMetrics.Delete(reg)
}
