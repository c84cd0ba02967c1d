// Package metrics holds Sentinel's own Prometheus metrics, registered on
// the metrics registry of the Caddy config being loaded
// (caddy.Context.GetMetricsRegistry), so that they are served wherever
// Caddy's are (the admin /metrics and the `metrics` handler of the ops
// listener):
//
//   - sentinel_build_info{version,caddy_version,go_version} 1;
//   - sentinel_upstream_target_healthy{upstream,namespace,target}: 1
//     when the target is healthy as the active health checks last saw it
//     (or was never checked), 0 when not, read from the registry at
//     scrape time;
//   - sentinel_route_requests_total{route,namespace,code} and
//     sentinel_route_request_duration_seconds{route,namespace}, observed
//     by the route guard that every Sentinel route starts with;
//   - sentinel_upstream_request_duration_seconds{upstream,namespace},
//     observed by the sentinel transport for each attempt to a target of
//     an upstream of the registry (upstreams.go).
//
// The namespace label is the namespace of the route or upstream id
// (registry.NamespaceOf: "team-a" for "team-a:web", "" for a global
// one), so that `sum by (namespace)` adds a tenant's series up. It is
// computed once per route (Routes.For, at provision) and per scrape for
// the upstreams, never per request.
//
// Like Caddy's own HTTP metrics, the registry and the route counters are
// per config: a reload starts them again.
package metrics

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/internal/buildinfo"
	"github.com/sentinel-proxy/sentinel/registry"
)

// The metric names, as the docs cite them.
const (
	BuildInfoName     = "sentinel_build_info"
	TargetHealthyName = "sentinel_upstream_target_healthy"
	RouteRequestsName = "sentinel_route_requests_total"
	RouteDurationName = "sentinel_route_request_duration_seconds"
	routeDurationHelp = "Time from the start of a request on a Sentinel route until its handlers returned (the response written, or the error that the server's error routes answer)."
	routeRequestsHelp = "Requests handled by a Sentinel route, by route id and status code (a disabled route's 503s included)."
	targetHealthyHelp = "1 when the upstream target is healthy as the active health checks last saw it (or was never checked), 0 when not."
	buildInfoHelp     = "Sentinel's version, the Caddy it is built on and the Go that compiled it; always 1."
	routeLabel        = "route"
	codeLabel         = "code"
	upstreamLabel     = "upstream"
	targetLabel       = "target"
	// NamespaceLabel is the label naming the namespace of a route or
	// upstream series ("" for a global item).
	NamespaceLabel     = "namespace"
	versionLabel       = "version"
	caddyVersionLabel  = "caddy_version"
	goVersionLabel     = "go_version"
	defaultStatusLabel = "200"
)

// Register registers the build information and the per-target health
// collector of upstreams (the process's registry, from the sentinel app)
// on reg. Registering again on the same registry (every route guard of a
// config does) is not an error.
func Register(reg prometheus.Registerer, upstreams *registry.Registry) error {
	if reg == nil {
		return nil
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: BuildInfoName,
		Help: buildInfoHelp,
		ConstLabels: prometheus.Labels{
			versionLabel:      buildinfo.Version(),
			caddyVersionLabel: buildinfo.CaddyVersion(),
			goVersionLabel:    buildinfo.GoVersion(),
		},
	})
	info.Set(1)
	if err := register(reg, info); err != nil {
		return err
	}
	return register(reg, &healthCollector{reg: upstreams, desc: healthDesc})
}

// register registers c, accepting a collector of the same description
// that is there already.
func register(reg prometheus.Registerer, c prometheus.Collector) error {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return nil
	}
	return err
}

// healthDesc describes sentinel_upstream_target_healthy.
var healthDesc = prometheus.NewDesc(TargetHealthyName, targetHealthyHelp, []string{upstreamLabel, NamespaceLabel, targetLabel}, nil)

// healthCollector reads every target's health from the registry when
// scraped, so that the gauge is never stale and needs no updater.
type healthCollector struct {
	reg  *registry.Registry
	desc *prometheus.Desc
}

// Describe sends the gauge's description.
func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends one sample per target of every upstream.
func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.reg.Upstreams() {
		for _, t := range u.Targets {
			v := 0.0
			if c.reg.Healthy(u.ID, t.Address) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, u.ID, registry.NamespaceOf(u.ID), t.Address)
		}
	}
}

// Routes are the per-route request metrics of one config, shared by all
// its route guards.
type Routes struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRoutes returns the per-route request metrics registered on reg, the
// ones registered before when there are (one set per registry). A nil reg
// gives metrics that are not exported.
func NewRoutes(reg prometheus.Registerer) (*Routes, error) {
	r := &Routes{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: RouteRequestsName, Help: routeRequestsHelp}, []string{routeLabel, NamespaceLabel, codeLabel}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: RouteDurationName, Help: routeDurationHelp, Buckets: prometheus.DefBuckets}, []string{routeLabel, NamespaceLabel}),
	}
	if reg == nil {
		return r, nil
	}
	var err error
	if r.requests, err = registerVec(reg, r.requests); err != nil {
		return nil, err
	}
	if r.duration, err = registerVec(reg, r.duration); err != nil {
		return nil, err
	}
	return r, nil
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

// Observe records one request of route that ended with status code
// (0 when nothing was written: the server then answers 200) after d.
func (r *Routes) Observe(route string, code int, d time.Duration) {
	r.For(route).Observe(code, d)
}

// Route is the request metrics of one route, with its duration series
// looked up once.
type Route struct {
	route    string
	ns       string // the route's namespace label
	requests *prometheus.CounterVec
	duration prometheus.Observer
	// common holds the request counters of the common status codes
	// (commonCodes), looked up on first use: WithLabelValues hashes and
	// checks the labels and takes the vector's lock on every call, a
	// third of the route guard's time per request. The vector never
	// deletes a series, so a counter once looked up stays the one
	// exported.
	common [len(commonCodes)]atomic.Pointer[prometheus.Counter]
}

// commonCodes are the status codes whose counters a Route keeps at hand.
var commonCodes = [...]int{200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504}

// commonIndex returns the index of code in commonCodes, or -1.
func commonIndex(code int) int {
	switch code {
	case 0, 200: // 0: nothing was written, the server answers 200
		return 0
	case 201:
		return 1
	case 204:
		return 2
	case 206:
		return 3
	case 301:
		return 4
	case 302:
		return 5
	case 304:
		return 6
	case 400:
		return 7
	case 401:
		return 8
	case 403:
		return 9
	case 404:
		return 10
	case 429:
		return 11
	case 500:
		return 12
	case 502:
		return 13
	case 503:
		return 14
	case 504:
		return 15
	}
	return -1
}

// For returns the metrics of one route.
func (r *Routes) For(route string) *Route {
	if r == nil {
		return nil
	}
	ns := registry.NamespaceOf(route)
	return &Route{route: route, ns: ns, requests: r.requests, duration: r.duration.WithLabelValues(route, ns)}
}

// Observe records one request that ended with status code (0 when
// nothing was written: the server then answers 200) after d.
func (r *Route) Observe(code int, d time.Duration) {
	if r == nil {
		return
	}
	r.counter(code).Inc()
	r.duration.Observe(d.Seconds())
}

// counter returns the request counter of the route for status code.
func (r *Route) counter(code int) prometheus.Counter {
	i := commonIndex(code)
	if i < 0 {
		return r.requests.WithLabelValues(r.route, r.ns, statusLabel(code))
	}
	if c := r.common[i].Load(); c != nil {
		return *c
	}
	c := r.requests.WithLabelValues(r.route, r.ns, statusLabel(code))
	r.common[i].Store(&c)
	return c
}

// statusLabels are the labels of the status codes 0–599, computed once:
// strconv.Itoa allocates for numbers of three digits, and Observe runs on
// every request.
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	l[0] = defaultStatusLabel
	return l
}()

// statusLabel is the code label of a status code (0: nothing was written,
// the server answers 200).
func statusLabel(code int) string {
	if code <= 0 {
		return defaultStatusLabel
	}
	if code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}
