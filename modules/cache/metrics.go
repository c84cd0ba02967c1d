package cache

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The metric names, as the docs cite them. Each has the label `storage`
// (the storage's name).
const (
	MetricRequests = "sentinel_cache_requests_total"
	MetricStores   = "sentinel_cache_stores_total"
	MetricEntries  = "sentinel_cache_entries"
	MetricBytes    = "sentinel_cache_bytes"
	MetricEvicted  = "sentinel_cache_evictions_total"
	// MetricRedisUp and MetricRedisFallbacks are exported by the redis
	// backend only.
	MetricRedisUp        = "sentinel_cache_redis_up"
	MetricRedisFallbacks = "sentinel_cache_redis_fallbacks_total"
)

// collector reports a storage's counters when scraped.
type collector struct {
	s                                      *shared
	requests, stores, entries, bytes, evic *prometheus.Desc
	redisUp, redisFallbacks                *prometheus.Desc
}

// registerMetrics registers the storage's collector on the config's
// metrics registry; registering it again (every handler of the storage
// does) is not an error.
func registerMetrics(ctx caddy.Context, name string, s *shared) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(newCollector(name, s))
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return nil
	}
	return err
}

// newCollector returns the collector of the storage name.
func newCollector(name string, s *shared) *collector {
	labels := prometheus.Labels{"storage": name}
	return &collector{
		s:              s,
		requests:       prometheus.NewDesc(MetricRequests, "Requests the cache saw, by result: hit (fresh or stale served), miss (went upstream), bypass (not cacheable).", []string{"result"}, labels),
		stores:         prometheus.NewDesc(MetricStores, "Responses stored in the cache.", nil, labels),
		entries:        prometheus.NewDesc(MetricEntries, "Entries in the cache storage.", nil, labels),
		bytes:          prometheus.NewDesc(MetricBytes, "Bytes used by the cache storage.", nil, labels),
		evic:           prometheus.NewDesc(MetricEvicted, "Entries evicted to keep the storage within its size.", nil, labels),
		redisUp:        prometheus.NewDesc(MetricRedisUp, "1 while the redis backend's server is used, 0 while the local store stands in.", nil, labels),
		redisFallbacks: prometheus.NewDesc(MetricRedisFallbacks, "Operations served by the local store because Redis could not be used.", nil, labels),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.stores
	ch <- c.entries
	ch <- c.bytes
	ch <- c.evic
	ch <- c.redisUp
	ch <- c.redisFallbacks
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := &c.s.stats
	u := c.s.store.Usage()
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.misses.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.bypass.Load()), "bypass")
	ch <- prometheus.MustNewConstMetric(c.stores, prometheus.CounterValue, float64(st.stores.Load()))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(u.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(u.Bytes))
	ch <- prometheus.MustNewConstMetric(c.evic, prometheus.CounterValue, float64(u.Evictions))
	if rs, ok := c.s.store.(*redisStore); ok {
		st := rs.redisStats()
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.redisUp, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(c.redisFallbacks, prometheus.CounterValue, float64(st.Fallbacks))
	}
}
