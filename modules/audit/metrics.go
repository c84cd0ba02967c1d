package audit

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The metric names (docs/audit.md).
const (
	// MetricEvents counts events by sink and result: `delivered`,
	// `failed` (a delivery attempt failed; the events are retried),
	// `rejected` (the destination will never accept them),
	// `dropped_newest`, `dropped_oldest`, `refused` (spool full), and, for
	// sink `*`, `refused` (events refused while a fail_closed sink's
	// spool is full).
	MetricEvents = "sentinel_audit_events_total"
	// MetricSpoolBytes is the bytes of events not yet delivered, by sink.
	MetricSpoolBytes = "sentinel_audit_spool_bytes"
)

// collector reports the app's counters when scraped.
type collector struct {
	app           *App
	events, spool *prometheus.Desc
}

func registerMetrics(ctx caddy.Context, a *App) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(&collector{
		app:    a,
		events: prometheus.NewDesc(MetricEvents, "Audit events by sink and result.", []string{"sink", "result"}, nil),
		spool:  prometheus.NewDesc(MetricSpoolBytes, "Bytes of audit events in a sink's spool, not yet delivered.", []string{"sink"}, nil),
	})
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return nil
	}
	return err
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.spool
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(sink, result string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(v), sink, result)
	}
	counter("*", "refused", c.app.refused.Load())
	for _, sc := range c.app.Sinks {
		counter(sc.Name, "delivered", sc.c.delivered.Load())
		counter(sc.Name, "failed", sc.c.failed.Load())
		counter(sc.Name, "rejected", sc.c.rejected.Load())
		counter(sc.Name, "dropped_newest", sc.c.droppedNewest.Load())
		counter(sc.Name, "dropped_oldest", sc.c.droppedOldest.Load())
		counter(sc.Name, "refused", sc.c.refused.Load())
		if sc.spool != nil {
			ch <- prometheus.MustNewConstMetric(c.spool, prometheus.GaugeValue, float64(sc.spool.bytes()), sc.Name)
		}
	}
}
