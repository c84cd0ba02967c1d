package ratelimit

import (
	"errors"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The metric names, as docs/rate-limiting.md cites them. Each has the
// label `zone` (the limit's zone; from KDL `route:<route>/filter:<filter>`,
// `global`, `limits-global`, …).
const (
	// MetricRequests counts the requests a limit decided, by result:
	// `admitted` (at once or after a delay) or `limited` (over the
	// limit: rejected, or let through in log-only mode).
	MetricRequests = "sentinel_ratelimit_requests_total"
	// MetricFallback counts the requests decided by this process's
	// buckets because the shared store could not be used (or failed with
	// 503, without fallback).
	MetricFallback = "sentinel_ratelimit_fallback_total"
	// MetricStoreUp is 1 while a shared store (Redis, memcached) is used,
	// 0 while it is considered down; zones with a shared backend only.
	MetricStoreUp = "sentinel_ratelimit_store_up"
)

// zoneCounters are a zone's counters, read when the metrics are scraped.
type zoneCounters struct {
	admitted, limited, fallback atomic.Int64
}

// collector reports every zone of the process (the zones outlive
// configs, as their buckets do); zones of one name are summed.
type collector struct {
	requests, fallback, up *prometheus.Desc
}

// newCollector returns the collector. Its descriptions are fixed: every
// handler registers it, and registering it again is AlreadyRegistered,
// which registerMetrics ignores.
func newCollector() *collector {
	return &collector{
		requests: prometheus.NewDesc(MetricRequests, "Requests decided by a rate limit, by result: admitted (at once or delayed) or limited (rejected, or passed in log-only mode).", []string{"zone", "result"}, nil),
		fallback: prometheus.NewDesc(MetricFallback, "Requests decided without the shared store (Redis, memcached) because it could not be used.", []string{"zone"}, nil),
		up:       prometheus.NewDesc(MetricStoreUp, "1 while the zone's shared store is used, 0 while it is considered down.", []string{"zone"}, nil),
	}
}

// registerMetrics registers the collector on the config's registry.
func registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(newCollector())
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return nil
	}
	return err
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.fallback
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	type sums struct {
		admitted, limited, fallback int64
		shared, up                  bool
	}
	byName := map[string]*sums{}
	var order []string
	zones.Range(func(_, v any) bool {
		z := v.(*zone)
		s := byName[z.name]
		if s == nil {
			s = &sums{up: true}
			byName[z.name] = s
			order = append(order, z.name)
		}
		s.admitted += z.counters.admitted.Load()
		s.limited += z.counters.limited.Load()
		s.fallback += z.counters.fallback.Load()
		if z.redis != nil || z.memcached != nil {
			s.shared = true
			s.up = s.up && z.storeUp()
		}
		return true
	})
	for _, name := range order {
		s := byName[name]
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.admitted), name, "admitted")
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.limited), name, "limited")
		ch <- prometheus.MustNewConstMetric(c.fallback, prometheus.CounterValue, float64(s.fallback), name)
		if s.shared {
			up := 0.0
			if s.up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, name)
		}
	}
}

// storeUp reports whether the zone's shared store is considered usable.
func (z *zone) storeUp() bool {
	switch {
	case z.redis != nil:
		return z.redis.store.Health.Up()
	case z.memcached != nil:
		return z.memcached.store.Health.Up()
	}
	return true
}

// Interface guard
var _ prometheus.Collector = (*collector)(nil)
