package agents

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// agentMetrics are the process's agent metrics: counters and histograms
// updated on the call path, and gauges read from the live pools when
// scraped. One set serves every config (as Caddy's own metrics do); it
// is registered on each config's registry.
type agentMetrics struct {
	latency   *prometheus.HistogramVec
	calls     *prometheus.CounterVec
	decisions *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	gauges    *poolCollector
}

// metrics is the documented process-level metrics registry of the package.
var metrics = newAgentMetrics()

func newAgentMetrics() *agentMetrics {
	return &agentMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sentinel", Subsystem: "agent", Name: "call_duration_seconds",
			Help:    "Time of agent calls, from the queue to the answer (or failure).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"agent", "event"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "agent", Name: "calls_total",
			Help: "Agent calls by outcome: ok, timeout, error, breaker_open, queue_full, unavailable, canceled.",
		}, []string{"agent", "event", "outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "agent", Name: "decisions_total",
			Help: "Agent decisions by kind: allow, block, redirect, challenge.",
		}, []string{"agent", "event", "decision"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "agent", Name: "skipped_total",
			Help: "Agents skipped by fail-open, by reason (failure, too_large).",
		}, []string{"agent", "event", "reason"}),
		gauges: &poolCollector{
			inFlight:  prometheus.NewDesc("sentinel_agent_in_flight", "Agent calls in flight.", []string{"agent"}, nil),
			queue:     prometheus.NewDesc("sentinel_agent_queue_depth", "Agent calls waiting for a free slot.", []string{"agent"}, nil),
			breaker:   prometheus.NewDesc("sentinel_agent_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", []string{"agent"}, nil),
			connected: prometheus.NewDesc("sentinel_agent_connections", "Live connections to the agent.", []string{"agent"}, nil),
		},
	}
}

// register adds the metrics to the config's registry, reusing them when
// they are already there.
func (m *agentMetrics) register(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.latency, m.calls, m.decisions, m.skipped, m.gauges} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// poolCollector reports the gauges of the pools in use.
type poolCollector struct {
	inFlight, queue, breaker, connected *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inFlight
	ch <- c.queue
	ch <- c.breaker
	ch <- c.connected
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, p := range reg.pools() {
		if seen[p.s.id] {
			continue
		}
		seen[p.s.id] = true
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(p.lim.inFlight()), p.s.id)
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(p.lim.queueDepth()), p.s.id)
		ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, float64(p.brk.current()), p.s.id)
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, float64(p.connected()), p.s.id)
	}
}
