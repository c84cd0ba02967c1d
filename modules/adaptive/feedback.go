package adaptive

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

// feedbackKey is the key of the feedback store attached to a registry.
type feedbackKey struct{}

// feedbackOf returns the feedback store of a registry: what the sentinel
// transport learns about each target address — the registry's counters
// (in flight, requests, failures), a time-decayed latency and error
// ratio, and the estimators the selection policies attach to the address
// (peak EWMA, adaptive weights, …). It is attached to the registry
// (registry.Attached), so it lives as long as the process's registry, held
// by the sentinel app: a reload keeps what was learned.
func feedbackOf(reg *registry.Registry) *store {
	return reg.Attached(feedbackKey{}, func() any { return newStore(reg) }).(*store)
}

// baselineDecay is the time constant of every target's baseline latency
// and error-ratio averages (the metrics of the policies that keep none).
const baselineDecay = 10 * time.Second

// store holds one *Target per address, the state the policies share
// across configs, and the http transports shared by the routes of a
// config.
type store struct {
	reg     *registry.Registry
	targets sync.Map // address → *Target

	// policies holds the state shared by the policies of the same kind,
	// upstream and parameters (see policyState), counted by reference:
	// a config's policies join in Provision and leave in Cleanup, so a
	// reload that keeps a policy keeps its state, and the state of a
	// policy whose tunables changed goes with the old config.
	policies *caddy.UsagePool // policyKey → *policyState

	// transports holds the inner http transports shared by the routes of
	// a configuration (like Caddy's reverse proxy shares its hosts),
	// counted by reference: the last route's Cleanup closes the
	// transport.
	transports *caddy.UsagePool // transportKey → *sharedTransport

	// lb is the collector of the live policies' metrics and estimates.
	lb *collector

	// mu guards byAddr and the address sets of the policy states.
	mu sync.Mutex
	// byAddr indexes the policy states that keep something of an address,
	// so that forgetting an address touches only them.
	byAddr map[string]map[*policyState]struct{}
}

func newStore(reg *registry.Registry) *store {
	s := &store{
		reg:        reg,
		policies:   caddy.NewUsagePool(),
		transports: caddy.NewUsagePool(),
		byAddr:     map[string]map[*policyState]struct{}{},
		lb:         newCollector(),
	}
	reg.OnForget(s.forget)
	return s
}

// forget drops what was learned about an address the registry forgot (a
// former target, idle for a sweep interval): its feedback state (with the
// estimators attached to it) and the policies' state of it — only in the
// policy states that have some.
func (s *store) forget(addr string) {
	s.targets.Delete(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.byAddr[addr] {
		delete(p.addrs, addr)
	}
	delete(s.byAddr, addr)
}

// target returns the state of an address, creating it.
func (s *store) target(addr string) *Target {
	if t, ok := s.targets.Load(addr); ok {
		return t.(*Target)
	}
	t, _ := s.targets.LoadOrStore(addr, &Target{
		addr:  addr,
		stats: s.reg.Stats(addr),
		base:  newMeanEstimator(float64(baselineDecay)),
	})
	return t.(*Target)
}

// sample is one request's outcome as the transport saw it.
type sample struct {
	// rtt is the time from sending the request to the response headers
	// (or to the error), in nanoseconds.
	rtt int64
	// status is the response status; 0 when no response came
	// (connection refused or reset, timeout).
	status int
	// retryAfter is the Retry-After of a 429 or 503, in nanoseconds (0
	// when absent).
	retryAfter int64
}

// failed reports a failure as the original counts it: no response, or a
// 5xx.
func (s sample) failed() bool { return s.status == 0 || s.status >= 500 }

// overloaded reports what the failure penalty of peak EWMA applies to: a
// failure or a 429 (Linkerd's load biaser).
func (s sample) overloaded() bool { return s.failed() || s.status == 429 }

// observer is an estimator fed with every outcome of its address.
type observer interface {
	observe(now int64, s sample)
}

// attached is an observer with the key it was attached under.
type attached struct {
	key any
	obs observer
}

// Target is the feedback state of one target address.
type Target struct {
	addr  string
	stats *registry.TargetStats
	base  *meanEstimator

	mu  sync.Mutex // serializes attach
	obs atomic.Pointer[[]attached]
}

// attach returns the observer attached under key, attaching mk() if there
// is none: policies with the same parameters share their estimators,
// across config loads too.
func (t *Target) attach(key any, mk func() observer) observer {
	if p := t.obs.Load(); p != nil {
		for _, a := range *p {
			if a.key == key {
				return a.obs
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var cur []attached
	if p := t.obs.Load(); p != nil {
		cur = *p
		for _, a := range cur {
			if a.key == key {
				return a.obs
			}
		}
	}
	o := mk()
	next := append(append(make([]attached, 0, len(cur)+1), cur...), attached{key, o})
	t.obs.Store(&next)
	return o
}

// detach removes the observer attached under key, if any.
func (t *Target) detach(key any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.obs.Load()
	if p == nil {
		return
	}
	next := make([]attached, 0, len(*p))
	for _, a := range *p {
		if a.key != key {
			next = append(next, a)
		}
	}
	if len(next) != len(*p) {
		t.obs.Store(&next)
	}
}

// record feeds an outcome to the baseline and every attached estimator.
func (t *Target) record(now int64, s sample) {
	t.base.observe(now, s)
	if p := t.obs.Load(); p != nil {
		for _, a := range *p {
			a.obs.observe(now, s)
		}
	}
}

// InFlight is the number of requests the target is serving.
func (t *Target) InFlight() int64 { return t.stats.InFlight() }

// meanEstimator is a time-decayed average of the latency and of the
// failure ratio: each sample weighs 1-exp(-Δt/τ), Δt the time since the
// previous one. A target never sampled reads 0.
type meanEstimator struct {
	tau float64 // ns
	// penalty, when positive, is the latency a failure or 429 counts as
	// at least (Retry-After, up to maxRetryAfter, when longer).
	penalty, maxRetryAfter float64

	mu      sync.Mutex
	latency float64 // ns
	errs    float64 // 0…1
	stamp   int64
	seen    bool
}

func newMeanEstimator(tau float64) *meanEstimator { return &meanEstimator{tau: tau} }

func (m *meanEstimator) observe(now int64, s sample) {
	failed := 0.0
	if s.failed() {
		failed = 1
	}
	rtt := float64(s.rtt)
	if m.penalty > 0 && s.overloaded() {
		rtt = max(rtt, m.penalty, min(float64(s.retryAfter), m.maxRetryAfter))
	}
	m.mu.Lock()
	if !m.seen {
		m.latency, m.errs, m.seen = rtt, failed, true
	} else {
		w := decay(now-m.stamp, m.tau)
		m.latency = m.latency*w + rtt*(1-w)
		m.errs = m.errs*w + failed*(1-w)
	}
	m.stamp = now
	m.mu.Unlock()
}

// read returns the average latency (ns) and failure ratio.
func (m *meanEstimator) read() (latency, errs float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latency, m.errs
}

// latencyAt returns the average latency projected to now: without new
// samples it fades toward 0 with the same time constant, as a time
// window empties, so a target that was slow is tried again.
func (m *meanEstimator) latencyAt(now int64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latency * decay(now-m.stamp, m.tau)
}

// decay is exp(-Δt/τ), 1 for Δt ≤ 0.
func decay(dt int64, tau float64) float64 {
	if dt <= 0 {
		return 1
	}
	return math.Exp(-float64(dt) / tau)
}
