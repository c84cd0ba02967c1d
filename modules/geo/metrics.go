package geo

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The names of the GeoIP metrics, as docs/geoip.md cites them (the
// label "filter" is the handler's name: the filter's id in a KDL
// config):
//
//   - sentinel_geo_allowed_total{filter}: requests let through (log-only
//     and fail-open ones included);
//   - sentinel_geo_blocked_total{filter,reason}: requests answered with
//     the handler's status: reason "country" (the action's decision) or
//     "lookup_failure" (on_failure closed);
//   - sentinel_geo_lookup_failures_total{filter,reason}: lookups without
//     a country: reason "not_found" (the address is not in the database
//     or has no country) or "error" (a database error, or no usable
//     client address).
const (
	AllowedName        = "sentinel_geo_allowed_total"
	BlockedName        = "sentinel_geo_blocked_total"
	LookupFailuresName = "sentinel_geo_lookup_failures_total"
	allowedHelp        = "Requests a GeoIP filter let through (log-only and fail-open ones included)."
	blockedHelp        = "Requests a GeoIP filter answered with its status, by reason (country, lookup_failure)."
	lookupFailuresHelp = "GeoIP lookups that found no country, by reason (not_found, error)."
	filterLabel        = "filter"
	reasonLabel        = "reason"
)

// The reasons of the metrics.
const (
	ReasonCountry       = "country"
	ReasonLookupFailure = "lookup_failure"
	ReasonNotFound      = "not_found"
	ReasonError         = "error"
)

// metrics are one handler's counters, with their series looked up once.
type metrics struct {
	allowed                   prometheus.Counter
	blockedCountry            prometheus.Counter
	blockedFailure            prometheus.Counter
	failedNotFound, failedErr prometheus.Counter
}

// newMetrics returns the counters of filter, on the collectors registered
// on reg (registered by the first handler of the registry). A nil reg
// gives counters that are not exported.
func newMetrics(reg prometheus.Registerer, filter string) (*metrics, error) {
	allowed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: AllowedName, Help: allowedHelp}, []string{filterLabel})
	blocked := prometheus.NewCounterVec(prometheus.CounterOpts{Name: BlockedName, Help: blockedHelp}, []string{filterLabel, reasonLabel})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{Name: LookupFailuresName, Help: lookupFailuresHelp}, []string{filterLabel, reasonLabel})
	if reg != nil {
		var err error
		if allowed, err = registerVec(reg, allowed); err != nil {
			return nil, err
		}
		if blocked, err = registerVec(reg, blocked); err != nil {
			return nil, err
		}
		if failures, err = registerVec(reg, failures); err != nil {
			return nil, err
		}
	}
	return &metrics{
		allowed:        allowed.WithLabelValues(filter),
		blockedCountry: blocked.WithLabelValues(filter, ReasonCountry),
		blockedFailure: blocked.WithLabelValues(filter, ReasonLookupFailure),
		failedNotFound: failures.WithLabelValues(filter, ReasonNotFound),
		failedErr:      failures.WithLabelValues(filter, ReasonError),
	}, nil
}

// registerVec registers c, or returns the collector of the same
// description registered before.
func registerVec[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
