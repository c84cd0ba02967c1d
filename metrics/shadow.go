package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/registry"
)

// The names of the traffic shadowing metrics (the sentinel_shadow
// handler), as the docs cite them:
//
//   - sentinel_shadow_sent_total{route,upstream}: copies the shadow
//     upstream answered (any status);
//   - sentinel_shadow_failed_total{route,upstream,reason}: copies sent
//     that got no answer: reason "timeout" (timeout-ms ran out) or
//     "error" (no target, connection refused or reset, …);
//   - sentinel_shadow_dropped_total{route,upstream,reason}: requests
//     sampled for shadowing whose copy was not sent: reason "limit" (as
//     many copies in flight as the route allows), "body_too_large" (the
//     body is above max-body-bytes) or "body_error" (reading the body
//     failed);
//   - sentinel_shadow_in_flight{route,upstream}: copies being sent now.
const (
	ShadowSentName     = "sentinel_shadow_sent_total"
	ShadowFailedName   = "sentinel_shadow_failed_total"
	ShadowDroppedName  = "sentinel_shadow_dropped_total"
	ShadowInFlightName = "sentinel_shadow_in_flight"
	shadowSentHelp     = "Shadow copies of requests that the shadow upstream answered (any status)."
	shadowFailedHelp   = "Shadow copies of requests that got no answer, by reason (timeout, error)."
	shadowDroppedHelp  = "Requests sampled for shadowing whose copy was not sent, by reason (limit, body_too_large, body_error)."
	shadowInFlightHelp = "Shadow copies of requests being sent now."
	reasonLabel        = "reason"
)

// The reasons of sentinel_shadow_failed_total and
// sentinel_shadow_dropped_total.
const (
	ShadowTimeout      = "timeout"
	ShadowError        = "error"
	ShadowLimit        = "limit"
	ShadowBodyTooLarge = "body_too_large"
	ShadowBodyError    = "body_error"
)

// Shadow is the shadowing metrics of one route's shadow handler, with
// its series looked up once.
type Shadow struct {
	sent     prometheus.Counter
	inFlight prometheus.Gauge
	failed   map[string]prometheus.Counter
	dropped  map[string]prometheus.Counter
}

// NewShadow returns the shadowing metrics of route's copies to upstream,
// on the collectors registered on reg (registered by the first caller of
// the registry). A nil reg gives metrics that are counted but not
// exported.
func NewShadow(reg prometheus.Registerer, route, upstream string) (*Shadow, error) {
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ShadowSentName, Help: shadowSentHelp}, []string{routeLabel, NamespaceLabel, upstreamLabel})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ShadowFailedName, Help: shadowFailedHelp}, []string{routeLabel, NamespaceLabel, upstreamLabel, reasonLabel})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ShadowDroppedName, Help: shadowDroppedHelp}, []string{routeLabel, NamespaceLabel, upstreamLabel, reasonLabel})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ShadowInFlightName, Help: shadowInFlightHelp}, []string{routeLabel, NamespaceLabel, upstreamLabel})
	if reg != nil {
		var err error
		if sent, err = registerVec(reg, sent); err != nil {
			return nil, err
		}
		if failed, err = registerVec(reg, failed); err != nil {
			return nil, err
		}
		if dropped, err = registerVec(reg, dropped); err != nil {
			return nil, err
		}
		if inFlight, err = registerVec(reg, inFlight); err != nil {
			return nil, err
		}
	}
	ns := registry.NamespaceOf(route) // the route's, once
	s := &Shadow{
		sent:     sent.WithLabelValues(route, ns, upstream),
		inFlight: inFlight.WithLabelValues(route, ns, upstream),
		failed:   make(map[string]prometheus.Counter, 2),
		dropped:  make(map[string]prometheus.Counter, 3),
	}
	for _, r := range []string{ShadowTimeout, ShadowError} {
		s.failed[r] = failed.WithLabelValues(route, ns, upstream, r)
	}
	for _, r := range []string{ShadowLimit, ShadowBodyTooLarge, ShadowBodyError} {
		s.dropped[r] = dropped.WithLabelValues(route, ns, upstream, r)
	}
	return s, nil
}

// Start records a copy being sent.
func (s *Shadow) Start() { s.inFlight.Inc() }

// Sent records a copy the shadow upstream answered.
func (s *Shadow) Sent() {
	s.inFlight.Dec()
	s.sent.Inc()
}

// Failed records a copy that got no answer, for reason ShadowTimeout
// or ShadowError.
func (s *Shadow) Failed(reason string) {
	s.inFlight.Dec()
	s.failed[reason].Inc()
}

// Dropped records a copy not sent, for reason ShadowLimit,
// ShadowBodyTooLarge or ShadowBodyError.
func (s *Shadow) Dropped(reason string) { s.dropped[reason].Inc() }
