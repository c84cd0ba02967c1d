package wasm

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the per-plugin Prometheus collectors, shared by every
// handler registered on the same registry.
type metrics struct {
	calls     *prometheus.CounterVec
	decisions *prometheus.CounterVec
	traps     *prometheus.CounterVec
	timeouts  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// newMetrics registers the collectors on reg, reusing the ones a previous
// config already registered. A nil reg gives unregistered collectors.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "wasm", Name: "plugin_calls_total",
			Help: "Calls of WASM plugin hooks, by plugin and phase.",
		}, []string{"plugin", "phase"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "wasm", Name: "plugin_decisions_total",
			Help: "Decisions of WASM plugins (allow, block, redirect, failure_open, failure_closed), by plugin.",
		}, []string{"plugin", "decision"}),
		traps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "wasm", Name: "plugin_traps_total",
			Help: "WASM plugin calls or instantiations that trapped or exited, by plugin.",
		}, []string{"plugin"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sentinel", Subsystem: "wasm", Name: "plugin_timeouts_total",
			Help: "WASM plugin calls interrupted by their deadline, by plugin.",
		}, []string{"plugin"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sentinel", Subsystem: "wasm", Name: "plugin_call_duration_seconds",
			Help:    "Duration of WASM plugin hook calls, by plugin and phase.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 1e-2, 0.1},
		}, []string{"plugin", "phase"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.calls, err = register(reg, m.calls); err != nil {
		return nil, err
	}
	if m.decisions, err = register(reg, m.decisions); err != nil {
		return nil, err
	}
	if m.traps, err = register(reg, m.traps); err != nil {
		return nil, err
	}
	if m.timeouts, err = register(reg, m.timeouts); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector already registered
// under the same description.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// Phases of a hook call, indexes of Plugin.calls.
const (
	phaseRequestHeaders = iota
	phaseRequestBody
	phaseResponseHeaders
	phaseResponseBody
	numPhases
)

// phaseNames are the phase labels, and hookNames the hooks, by phase.
var (
	phaseNames = [numPhases]string{"request_headers", "request_body", "response_headers", "response_body"}
	hookNames  = [numPhases]string{hookRequestHeaders, hookRequestBody, hookResponseHeaders, hookResponseBody}
)

// Decisions, indexes of Plugin.decisions.
const (
	decisionAllowIdx = iota
	decisionBlockIdx
	decisionRedirectIdx
	decisionFailureOpen
	decisionFailureClosed
)

var decisionNames = [5]string{"allow", "block", "redirect", "failure_open", "failure_closed"}

// callMetrics are the collectors of one plugin's hook, bound to its labels.
type callMetrics struct {
	calls   prometheus.Counter
	latency prometheus.Observer
}

// initMetrics binds the plugin's collectors to its labels, so that a
// request does not look them up.
func (p *Plugin) initMetrics() {
	m := p.metrics
	for i, name := range phaseNames {
		p.calls[i] = callMetrics{
			calls:   m.calls.WithLabelValues(p.ID, name),
			latency: m.latency.WithLabelValues(p.ID, name),
		}
	}
	for i, name := range decisionNames {
		p.decisions[i] = m.decisions.WithLabelValues(p.ID, name)
	}
	p.traps = m.traps.WithLabelValues(p.ID)
	p.timeouts = m.timeouts.WithLabelValues(p.ID)
}
