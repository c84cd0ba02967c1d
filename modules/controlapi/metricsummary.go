package controlapi

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/sentinel-proxy/sentinel/metrics"
)

// routeMetrics is one route's counters in GET /api/v1/metrics/summary:
// cumulative since the config was loaded, so that a poller gets rates
// and windowed percentiles from the differences between two calls.
type routeMetrics struct {
	// Route is the route's id.
	Route string `json:"route"`
	// Requests is how many requests the route answered.
	Requests uint64 `json:"requests"`
	// Errors is how many of them were answered 5xx.
	Errors uint64 `json:"errors"`
	// Buckets is the histogram of their durations: how many took at most
	// le seconds, cumulative, ascending (the last le is +Inf, written
	// as null).
	Buckets []bucket `json:"buckets"`
}

// bucket is a cumulative histogram bucket.
type bucket struct {
	// LE is the bucket's upper bound in seconds (null: +Inf).
	LE *float64 `json:"le"`
	// Count is how many observations are at most LE.
	Count uint64 `json:"count"`
}

// metricsSummary is the answer of GET /api/v1/metrics/summary.
type metricsSummary struct {
	// Routes are the routes that answered a request, sorted by id.
	Routes []routeMetrics `json:"routes"`
}

// metricsSummary serves GET /api/v1/metrics/summary: the route request,
// error and duration series of the Prometheus registry, as JSON (the
// admin UI's charts).
func (s *Server) metricsSummary(*call) (metricsSummary, error) {
	if s.hooks.Metrics == nil {
		return metricsSummary{}, newError(http.StatusNotImplemented, "metrics are not available")
	}
	g := s.hooks.Metrics()
	if g == nil {
		return metricsSummary{Routes: []routeMetrics{}}, nil
	}
	families, err := g.Gather()
	if err != nil && len(families) == 0 {
		return metricsSummary{}, newError(http.StatusInternalServerError, "gathering metrics: %v", err)
	}
	byRoute := map[string]*routeMetrics{}
	get := func(id string) *routeMetrics {
		r := byRoute[id]
		if r == nil {
			r = &routeMetrics{Route: id, Buckets: []bucket{}}
			byRoute[id] = r
		}
		return r
	}
	for _, mf := range families {
		switch mf.GetName() {
		case metrics.RouteRequestsName:
			for _, m := range mf.GetMetric() {
				var route, code string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "route":
						route = l.GetValue()
					case "code":
						code = l.GetValue()
					}
				}
				n := uint64(m.GetCounter().GetValue())
				r := get(route)
				r.Requests += n
				if c, err := strconv.Atoi(code); err == nil && c >= 500 {
					r.Errors += n
				}
			}
		case metrics.RouteDurationName:
			for _, m := range mf.GetMetric() {
				var route string
				for _, l := range m.GetLabel() {
					if l.GetName() == "route" {
						route = l.GetValue()
					}
				}
				r := get(route)
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					le := b.GetUpperBound()
					r.Buckets = append(r.Buckets, bucket{LE: &le, Count: b.GetCumulativeCount()})
				}
				r.Buckets = append(r.Buckets, bucket{Count: h.GetSampleCount()})
			}
		}
	}
	out := metricsSummary{Routes: make([]routeMetrics, 0, len(byRoute))}
	for _, r := range byRoute {
		out.Routes = append(out.Routes, *r)
	}
	slices.SortFunc(out.Routes, func(a, b routeMetrics) int {
		if a.Route < b.Route {
			return -1
		}
		if a.Route > b.Route {
			return 1
		}
		return 0
	})
	return out, nil
}
