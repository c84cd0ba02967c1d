package adaptive

import (
	"errors"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/registry"
)

// targetMetrics is what a policy reports about one target.
type targetMetrics struct {
	selections uint64
	inFlight   int64
	// latency is the policy's latency estimate, in seconds.
	latency float64
	// errorRatio is the policy's failure-ratio estimate (0…1).
	errorRatio float64
	// weight is the effective weight.
	weight float64
	// score is the policy's load or score (lower is better for the
	// load-based policies, higher for adaptive); hasScore is false for
	// the policies that keep none.
	score    float64
	hasScore bool
}

// metricsSource is a live policy that reports its targets.
type metricsSource interface {
	// lbLabels returns the policy and upstream labels.
	lbLabels() (policy, upstream string)
	// lbMetrics calls emit for each target of the current pool.
	lbMetrics(now int64, emit func(target string, m targetMetrics))
	// feedback is the store of the policy's registry.
	feedback() *store
}

// The feedback store's collector (store.lb) is the Prometheus collector of
// every live policy of the registry: policies join it in Provision and
// leave it in Cleanup, and it reads them when scraped (nothing is
// computed on the request path). One collector serves every config, as
// Caddy's reverse-proxy metrics do.

// collector implements prometheus.Collector over the live policies.
type collector struct {
	mu      sync.Mutex
	sources map[metricsSource]struct{}
	// registeredOn is the metrics registry the collector was last
	// registered on: every policy of a config shares its config's
	// registry, so the (costly) AlreadyRegistered path runs once per
	// config, not once per route.
	registeredOn *prometheus.Registry

	selections, inFlight, latency, errorRatio, weight, score *prometheus.Desc
}

func newCollector() *collector {
	// namespace is the upstream's (registry.NamespaceOf), read at scrape
	// time.
	labels := []string{"upstream", "policy", "target", "namespace"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("sentinel", "lb", name), help, labels, nil)
	}
	return &collector{
		sources:    map[metricsSource]struct{}{},
		selections: desc("selections_total", "Times the load-balancing policy chose the target."),
		inFlight:   desc("in_flight", "Requests the target is serving (counted by the sentinel transport)."),
		latency:    desc("latency_seconds", "The policy's latency estimate of the target (time to response headers)."),
		errorRatio: desc("error_ratio", "The policy's estimate of the target's failure ratio (0 to 1)."),
		weight:     desc("weight", "The target's effective weight."),
		score:      desc("score", "The policy's current load (peak_ewma, p2c, weighted_least_connections: lower wins) or score (adaptive: higher wins) of the target."),
	}
}

// registerMetrics adds a policy to the collector and registers the
// collector on the config's metrics registry (once per registry).
func registerMetrics(ctx caddy.Context, src metricsSource) error {
	reg := ctx.GetMetricsRegistry()
	lb := src.feedback().lb
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.sources[src] = struct{}{}
	if reg == nil || lb.registeredOn == reg {
		return nil
	}
	if err := reg.Register(lb); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return err
		}
	}
	lb.registeredOn = reg
	return nil
}

// unregisterMetrics removes a policy from the collector.
func unregisterMetrics(src metricsSource) {
	lb := src.feedback().lb
	lb.mu.Lock()
	delete(lb.sources, src)
	lb.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.selections, c.inFlight, c.latency, c.errorRatio, c.weight, c.score} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Policies with the same policy
// and upstream labels share their state; each target is reported once.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	srcs := make([]metricsSource, 0, len(c.sources))
	for s := range c.sources {
		srcs = append(srcs, s)
	}
	c.mu.Unlock()
	seen := map[[3]string]bool{}
	now := monotime()
	for _, s := range srcs {
		policy, upstream := s.lbLabels()
		s.lbMetrics(now, func(target string, m targetMetrics) {
			key := [3]string{upstream, policy, target}
			if seen[key] {
				return
			}
			seen[key] = true
			labels := [4]string{upstream, policy, target, registry.NamespaceOf(upstream)}
			ch <- prometheus.MustNewConstMetric(c.selections, prometheus.CounterValue, float64(m.selections), labels[:]...)
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(m.inFlight), labels[:]...)
			ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, m.latency, labels[:]...)
			ch <- prometheus.MustNewConstMetric(c.errorRatio, prometheus.GaugeValue, m.errorRatio, labels[:]...)
			ch <- prometheus.MustNewConstMetric(c.weight, prometheus.GaugeValue, m.weight, labels[:]...)
			if m.hasScore {
				ch <- prometheus.MustNewConstMetric(c.score, prometheus.GaugeValue, m.score, labels[:]...)
			}
		})
	}
}

// baselineMetrics fills the metrics every policy has: selections, in
// flight, the transport's baseline latency and error ratio, the weight.
func baselineMetrics(tg *Target, sel uint64, weight float64) targetMetrics {
	lat, errs := tg.base.read()
	return targetMetrics{selections: sel, inFlight: tg.InFlight(), latency: lat / 1e9, errorRatio: errs, weight: weight}
}

// Interface guards
var _ prometheus.Collector = (*collector)(nil)
