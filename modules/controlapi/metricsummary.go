package controlapi

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"

	dto "github.com/prometheus/client_model/go"

	"github.com/sentinel-proxy/sentinel/metrics"
)

// The agent series the summary reads (modules/agents registers them).
const (
	agentCallsName     = "sentinel_agent_calls_total"
	agentDecisionsName = "sentinel_agent_decisions_total"
	agentDurationName  = "sentinel_agent_call_duration_seconds"
	agentSkippedName   = "sentinel_agent_skipped_total"
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

// upstreamMetrics is one upstream's attempt durations in GET
// /api/v1/metrics/summary (sentinel_upstream_request_duration_seconds),
// cumulative since the config was loaded.
type upstreamMetrics struct {
	// Upstream is the upstream's id.
	Upstream string `json:"upstream"`
	// Attempts is how many attempts were sent to its targets (retries
	// included).
	Attempts uint64 `json:"attempts"`
	// Buckets is the histogram of the attempts' times to the response
	// headers, as a route's.
	Buckets []bucket `json:"buckets"`
}

// agentMetrics is one agent's counters in GET /api/v1/metrics/summary,
// summed over the events it receives, cumulative since the process
// started.
type agentMetrics struct {
	// Agent is the agent's id.
	Agent string `json:"agent"`
	// Decisions counts its answers by decision: allow, block, redirect,
	// challenge.
	Decisions map[string]uint64 `json:"decisions"`
	// Calls counts its calls by outcome: ok, timeout, error,
	// breaker_open, queue_full, unavailable, canceled.
	Calls map[string]uint64 `json:"calls"`
	// Failures is how many calls did not end ok (canceled ones aside:
	// the client went away).
	Failures uint64 `json:"failures"`
	// Skipped is how many times it was skipped by fail-open.
	Skipped uint64 `json:"skipped"`
	// Buckets is the histogram of its call durations, as a route's.
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
	// Upstreams are the upstreams that were sent a request, sorted by id.
	Upstreams []upstreamMetrics `json:"upstreams"`
	// Agents are the agents that were called, sorted by id.
	Agents []agentMetrics `json:"agents"`
}

// metricsSummary serves GET /api/v1/metrics/summary: the route, upstream
// and agent series of the Prometheus registry, as JSON (the admin UI's
// charts).
func (s *Server) metricsSummary(*call) (metricsSummary, error) {
	if s.hooks.Metrics == nil {
		return metricsSummary{}, newError(http.StatusNotImplemented, "metrics are not available")
	}
	out := metricsSummary{Routes: []routeMetrics{}, Upstreams: []upstreamMetrics{}, Agents: []agentMetrics{}}
	g := s.hooks.Metrics()
	if g == nil {
		return out, nil
	}
	families, err := g.Gather()
	if err != nil && len(families) == 0 {
		return metricsSummary{}, newError(http.StatusInternalServerError, "gathering metrics: %v", err)
	}
	routes := map[string]*routeMetrics{}
	route := func(m *dto.Metric) *routeMetrics {
		id := label(m, "route")
		r := routes[id]
		if r == nil {
			r = &routeMetrics{Route: id, Buckets: []bucket{}}
			routes[id] = r
		}
		return r
	}
	agents := map[string]*agentMetrics{}
	agent := func(m *dto.Metric) *agentMetrics {
		id := label(m, "agent")
		a := agents[id]
		if a == nil {
			a = &agentMetrics{Agent: id, Decisions: map[string]uint64{}, Calls: map[string]uint64{}, Buckets: []bucket{}}
			agents[id] = a
		}
		return a
	}
	for _, mf := range families {
		switch mf.GetName() {
		case metrics.RouteRequestsName:
			for _, m := range mf.GetMetric() {
				n := uint64(m.GetCounter().GetValue())
				r := route(m)
				r.Requests += n
				if c, err := strconv.Atoi(label(m, "code")); err == nil && c >= 500 {
					r.Errors += n
				}
			}
		case metrics.RouteDurationName:
			for _, m := range mf.GetMetric() {
				r := route(m)
				r.Buckets = addBuckets(r.Buckets, m.GetHistogram())
			}
		case metrics.UpstreamDurationName:
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				out.Upstreams = append(out.Upstreams, upstreamMetrics{
					Upstream: label(m, "upstream"), Attempts: h.GetSampleCount(), Buckets: addBuckets(nil, h),
				})
			}
		case agentDecisionsName:
			for _, m := range mf.GetMetric() {
				agent(m).Decisions[label(m, "decision")] += uint64(m.GetCounter().GetValue())
			}
		case agentCallsName:
			for _, m := range mf.GetMetric() {
				a, outcome, n := agent(m), label(m, "outcome"), uint64(m.GetCounter().GetValue())
				a.Calls[outcome] += n
				if outcome != "ok" && outcome != "canceled" {
					a.Failures += n
				}
			}
		case agentSkippedName:
			for _, m := range mf.GetMetric() {
				agent(m).Skipped += uint64(m.GetCounter().GetValue())
			}
		case agentDurationName:
			for _, m := range mf.GetMetric() {
				a := agent(m)
				a.Buckets = addBuckets(a.Buckets, m.GetHistogram())
			}
		}
	}
	for _, r := range routes {
		out.Routes = append(out.Routes, *r)
	}
	for _, a := range agents {
		out.Agents = append(out.Agents, *a)
	}
	slices.SortFunc(out.Routes, func(a, b routeMetrics) int { return cmp.Compare(a.Route, b.Route) })
	slices.SortFunc(out.Upstreams, func(a, b upstreamMetrics) int { return cmp.Compare(a.Upstream, b.Upstream) })
	slices.SortFunc(out.Agents, func(a, b agentMetrics) int { return cmp.Compare(a.Agent, b.Agent) })
	return out, nil
}

// label is the value of a metric's label name ("" when it has none).
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// addBuckets adds the cumulative buckets of h (and its +Inf bucket) to
// sum: the buckets of one series, or of several series with the same
// bounds (an agent's events). A histogram with other bounds than sum's
// replaces nothing and is left out.
func addBuckets(sum []bucket, h *dto.Histogram) []bucket {
	hb := h.GetBucket()
	if len(sum) == 0 {
		sum = make([]bucket, 0, len(hb)+1)
		for _, b := range hb {
			le := b.GetUpperBound()
			sum = append(sum, bucket{LE: &le, Count: b.GetCumulativeCount()})
		}
		return append(sum, bucket{Count: h.GetSampleCount()})
	}
	if len(sum) != len(hb)+1 {
		return sum
	}
	for i, b := range hb {
		if *sum[i].LE != b.GetUpperBound() {
			return sum
		}
	}
	for i, b := range hb {
		sum[i].Count += b.GetCumulativeCount()
	}
	sum[len(hb)].Count += h.GetSampleCount()
	return sum
}
