package framing

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// newMetrics returns the counter of refused requests, one per reason,
// registered on reg (once per registry: the wrappers of every listener of
// a config share it).
func newMetrics(reg prometheus.Registerer) ([numReasons]prometheus.Counter, error) {
	var out [numReasons]prometheus.Counter
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sentinel",
		Subsystem: "http",
		Name:      "malformed_requests_total",
		Help:      "HTTP/1.x requests refused (400, connection closed) or connections closed for malformed framing, by reason.",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return out, err
			}
			existing, ok := already.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return out, err
			}
			vec = existing
		}
	}
	for r := reasonNone + 1; r < numReasons; r++ {
		out[r] = vec.WithLabelValues(reasonNames[r])
	}
	return out, nil
}
