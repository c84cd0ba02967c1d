// Package discovery holds the modules of the sentinel.discovery
// namespace: the sources of an upstream's targets besides the declared
// ones (static, dns, dns_srv, file, consul, kubernetes). The `sentinel`
// app (modules/sentinelapp) runs an upstream's discoverer while its
// config runs and gives what it finds to the registry, where the targets
// have the origin "discovery" and get the upstream's health checks and
// load-balancing state like any target (registry.SetDiscovered).
//
// Every discoverer follows the same rules (the loop type): a lookup that
// fails, or finds no target, publishes nothing, so that the last good set
// stays (an upstream never loses its pool because its source failed); it
// is counted in sentinel_discovery_refresh_total and logged when the
// outcome changes, not at every try. docs/discovery.md describes each
// kind.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

// The names of the discovery metrics, as docs/discovery.md cites them:
//
//   - sentinel_discovery_refresh_total{upstream,kind,result}: lookups, by
//     result (success, error, empty);
//   - sentinel_discovery_last_success_timestamp_seconds{upstream,kind}:
//     when a lookup last succeeded (Unix time);
//   - sentinel_discovery_targets{upstream,kind}: the targets of the last
//     good set.
const (
	RefreshName     = "sentinel_discovery_refresh_total"
	LastSuccessName = "sentinel_discovery_last_success_timestamp_seconds"
	TargetsName     = "sentinel_discovery_targets"
)

// The results of sentinel_discovery_refresh_total.
const (
	ResultSuccess = "success"
	ResultError   = "error"
	ResultEmpty   = "empty"
)

// errEmpty is the failure of a lookup that found no target.
var errEmpty = errors.New("the lookup found no target; the last good set stays")

// metrics are the series of one discoverer.
type metrics struct {
	success, failed, empty prometheus.Counter
	lastSuccess, targets   prometheus.Gauge
}

// vecs are the collectors of the discovery metrics.
type vecs struct {
	refresh       *prometheus.CounterVec
	last, targets *prometheus.GaugeVec
}

// newVecs returns the collectors, registered on reg (the ones registered
// before, when they are) or not exported when reg is nil.
func newVecs(reg prometheus.Registerer) (*vecs, error) {
	labels := []string{"upstream", "kind"}
	v := &vecs{
		refresh: prometheus.NewCounterVec(prometheus.CounterOpts{Name: RefreshName,
			Help: "Lookups of the upstreams' discoveries, by result (success, error, empty)."}, append(labels, "result")),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: LastSuccessName,
			Help: "When a lookup of an upstream's discovery last succeeded (Unix time)."}, labels),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: TargetsName,
			Help: "The targets an upstream's discovery found last."}, labels),
	}
	if reg == nil {
		return v, nil
	}
	var err error
	if v.refresh, err = registerVec(reg, v.refresh); err != nil {
		return nil, err
	}
	if v.last, err = registerVec(reg, v.last); err != nil {
		return nil, err
	}
	if v.targets, err = registerVec(reg, v.targets); err != nil {
		return nil, err
	}
	return v, nil
}

// series returns the series of an upstream's discoverer of kind.
func (v *vecs) series(upstream, kind string) *metrics {
	return &metrics{
		success:     v.refresh.WithLabelValues(upstream, kind, ResultSuccess),
		failed:      v.refresh.WithLabelValues(upstream, kind, ResultError),
		empty:       v.refresh.WithLabelValues(upstream, kind, ResultEmpty),
		lastSuccess: v.last.WithLabelValues(upstream, kind),
		targets:     v.targets.WithLabelValues(upstream, kind),
	}
}

// registerVec registers c, or returns the collector of the same
// description registered before.
func registerVec[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering %T: %w", c, err)
}

// loop is what every discoverer shares: it turns lookup outcomes into
// published sets, metrics and log lines.
type loop struct {
	kind     string
	upstream string
	logger   *zap.Logger
	vecs     *vecs
	metrics  *metrics
	// good is the last published set (nil before the first), and
	// lastErr the message of the failure logged last ("" after a
	// success).
	good    []registry.TargetSpec
	hasGood bool
	lastErr string
}

// newLoop returns the loop of one discoverer of kind; bind names its
// upstream.
func newLoop(ctx caddy.Context, kind string) (*loop, error) {
	v, err := newVecs(ctx.GetMetricsRegistry())
	if err != nil {
		return nil, err
	}
	return &loop{kind: kind, logger: ctx.Logger(), vecs: v}, nil
}

// bind names the upstream of the loop's series and log lines.
func (l *loop) bind(upstream string) {
	l.upstream = upstream
	l.metrics = l.vecs.series(upstream, l.kind)
}

// report handles the outcome of one lookup: a non-empty set is published
// when it changed; a failure or an empty set keeps the last good set. It
// reports whether the lookup succeeded.
func (l *loop) report(ts []registry.TargetSpec, err error, publish func([]registry.TargetSpec)) bool {
	if err == nil && len(ts) == 0 {
		err = errEmpty
	}
	if err != nil {
		if errors.Is(err, errEmpty) {
			l.metrics.empty.Inc()
		} else {
			l.metrics.failed.Inc()
		}
		if msg := err.Error(); msg != l.lastErr {
			l.lastErr = msg
			l.logger.Warn("discovery lookup failed; the last good set of targets stays",
				zap.String("upstream", l.upstream), zap.String("kind", l.kind),
				zap.Int("targets", len(l.good)), zap.Error(err))
		}
		return false
	}
	l.metrics.success.Inc()
	l.metrics.lastSuccess.SetToCurrentTime()
	if l.lastErr != "" {
		l.logger.Info("discovery lookup succeeded again", zap.String("upstream", l.upstream), zap.String("kind", l.kind))
		l.lastErr = ""
	}
	sortTargets(ts)
	if l.hasGood && slices.Equal(ts, l.good) {
		return true
	}
	l.good, l.hasGood = ts, true
	l.metrics.targets.Set(float64(len(ts)))
	l.logger.Info("discovered targets", zap.String("upstream", l.upstream), zap.String("kind", l.kind), zap.Int("targets", len(ts)))
	publish(slices.Clone(ts))
	return true
}

// sortTargets sorts a set by address (then weight), so that equal sets
// compare equal.
func sortTargets(ts []registry.TargetSpec) {
	slices.SortFunc(ts, func(a, b registry.TargetSpec) int {
		if a.Address != b.Address {
			if a.Address < b.Address {
				return -1
			}
			return 1
		}
		return a.Weight - b.Weight
	})
}

// lookupFunc is one lookup: the set found, and how long it may be kept
// (0: the refresh interval).
type lookupFunc func(ctx context.Context) ([]registry.TargetSpec, time.Duration, error)

// minRefresh is the shortest wait between two lookups (a TTL of 0 does
// not make a busy loop).
const minRefresh = time.Second

// poll runs lookup every interval (sooner when a lookup says its answer
// expires sooner, as a DNS TTL) until ctx ends.
func (l *loop) poll(ctx context.Context, interval time.Duration, lookup lookupFunc, publish func([]registry.TargetSpec)) {
	l.pollWake(ctx, interval, lookup, publish, nil)
}

// wakeDelay is how long a wake-up waits for the change to settle (an
// editor's truncate-then-write) before the lookup.
const wakeDelay = 100 * time.Millisecond

// pollWake is poll, also looking up shortly after each wake-up (a file
// watcher's event).
func (l *loop) pollWake(ctx context.Context, interval time.Duration, lookup lookupFunc, publish func([]registry.TargetSpec), wake <-chan struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(wakeDelay):
			}
		}
		ts, ttl, err := lookup(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := interval
		if l.report(ts, err, publish) && ttl > 0 && ttl < wait {
			wait = max(ttl, min(minRefresh, interval))
		}
		t.Reset(wait)
	}
}

// interval returns d, or def when d is not set.
func interval(d caddy.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// checkTargets validates discovered addresses with the registry's rules.
func checkTargets(ts []registry.TargetSpec) error {
	for _, t := range ts {
		if err := registry.ValidateAddress(t.Address); err != nil {
			return err
		}
		if t.Weight != 0 {
			if err := registry.ValidateWeight(t.Weight); err != nil {
				return fmt.Errorf("target %s: %w", t.Address, err)
			}
		}
	}
	return nil
}
