package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/registry"
)

// UpstreamDurationName is the name of the per-upstream attempt duration
// histogram, as the docs cite it.
const UpstreamDurationName = "sentinel_upstream_request_duration_seconds"

const upstreamDurationHelp = "Time from sending a proxied request to a target of the upstream until its response headers arrived, or the attempt failed (every attempt counts, retries included; an attempt the client canceled does not)."

// UpstreamBuckets are the bounds of sentinel_upstream_request_duration_seconds,
// in seconds: Prometheus' default buckets with finer steps below 5 ms,
// where a healthy upstream on the same network answers.
var UpstreamBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Upstreams are the per-upstream attempt metrics of one config, shared by
// all its upstream sources. The labels are the upstream's id and its
// namespace (not the target), so the series grow with the config's
// upstreams only.
type Upstreams struct {
	duration *prometheus.HistogramVec
}

// NewUpstreams returns the per-upstream metrics registered on reg, the
// ones registered before when there are (one set per registry). A nil reg
// gives metrics that are not exported.
func NewUpstreams(reg prometheus.Registerer) (*Upstreams, error) {
	u := &Upstreams{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: UpstreamDurationName, Help: upstreamDurationHelp, Buckets: UpstreamBuckets,
		}, []string{upstreamLabel, NamespaceLabel}),
	}
	if reg == nil {
		return u, nil
	}
	var err error
	if u.duration, err = registerVec(reg, u.duration); err != nil {
		return nil, err
	}
	return u, nil
}

// For returns the duration observer of one upstream: look it up once (at
// provisioning) and observe on it per attempt, which allocates nothing.
// A nil Upstreams gives nil.
func (u *Upstreams) For(upstream string) prometheus.Observer {
	if u == nil {
		return nil
	}
	return u.duration.WithLabelValues(upstream, registry.NamespaceOf(upstream))
}
