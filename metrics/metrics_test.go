package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/sentinel-proxy/sentinel/internal/buildinfo"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestRegisterTwice: every route guard of a config registers on the same
// registry; the second time is not an error and shares the metrics.
func TestRegisterTwice(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for range 2 {
		if err := Register(reg, registry.New()); err != nil {
			t.Fatal(err)
		}
	}
	a, err := NewRoutes(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRoutes(reg)
	if err != nil || a.requests != b.requests || a.duration != b.duration {
		t.Fatalf("not shared: %v", err)
	}
	a.Observe("api", 0, time.Millisecond)
	b.Observe("api", 503, 2*time.Millisecond)
	want := `
# HELP sentinel_route_requests_total ` + routeRequestsHelp + `
# TYPE sentinel_route_requests_total counter
sentinel_route_requests_total{code="200",namespace="",route="api"} 1
sentinel_route_requests_total{code="503",namespace="",route="api"} 1
`
	if err := compare(t, reg, want, RouteRequestsName); err != nil {
		t.Error(err)
	}
	if got := scrape(t, reg, RouteDurationName); !strings.Contains(got, `sentinel_route_request_duration_seconds_count{namespace="",route="api"} 2`) {
		t.Errorf("duration:\n%s", got)
	}
	info := `
# HELP sentinel_build_info ` + buildInfoHelp + `
# TYPE sentinel_build_info gauge
sentinel_build_info{caddy_version="` + buildinfo.CaddyVersion() + `",go_version="` + buildinfo.GoVersion() + `",version="` + buildinfo.Version() + `"} 1
`
	if err := compare(t, reg, info, BuildInfoName); err != nil {
		t.Error(err)
	}
	if err := Register(nil, nil); err != nil {
		t.Error(err)
	}
	if r, err := NewRoutes(nil); err != nil || r == nil {
		t.Error("nil registry")
	}
	var none *Routes
	none.Observe("x", 200, 0) // no panic
	var noRoute *Route
	noRoute.Observe(200, 0)
}

// TestTargetHealth: the gauge reads the registry at scrape time.
func TestTargetHealth(t *testing.T) {
	upstreams := registry.New()
	upstreams.Reconcile([]registry.UpstreamSpec{{ID: "metrics-test", Targets: []registry.TargetSpec{{Address: "127.0.0.1:1"}, {Address: "127.0.0.1:2"}}}}, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, upstreams); err != nil {
		t.Fatal(err)
	}
	upstreams.SetHealth("metrics-test", "127.0.0.1:2", false)
	want := `
# HELP sentinel_upstream_target_healthy ` + targetHealthyHelp + `
# TYPE sentinel_upstream_target_healthy gauge
sentinel_upstream_target_healthy{namespace="",target="127.0.0.1:1",upstream="metrics-test"} 1
sentinel_upstream_target_healthy{namespace="",target="127.0.0.1:2",upstream="metrics-test"} 0
`
	if err := compare(t, reg, want, TargetHealthyName); err != nil {
		t.Error(err)
	}
	upstreams.SetHealth("metrics-test", "127.0.0.1:2", true)
	if err := compare(t, reg, strings.Replace(want, `upstream="metrics-test"} 0`, `upstream="metrics-test"} 1`, 1), TargetHealthyName); err != nil {
		t.Error(err)
	}
}

// scrape returns the text exposition of the named family.
func scrape(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if mf.GetName() == name {
			if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.String()
}

// compare returns an error when the named family differs from want.
func compare(t *testing.T, reg *prometheus.Registry, want, name string) error {
	t.Helper()
	if got := scrape(t, reg, name); strings.TrimSpace(got) != strings.TrimSpace(want) {
		return &mismatch{got: got, want: want}
	}
	return nil
}

type mismatch struct{ got, want string }

func (m *mismatch) Error() string { return "got:\n" + m.got + "\nwant:\n" + m.want }

// TestRouteCounters: a Route counts each status code on its own series,
// the common codes through the counters it keeps at hand (0 as 200), the
// others looked up every time; two Routes of the same route share the
// series. Counting a common code does not allocate.
func TestRouteCounters(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	rs, err := NewRoutes(reg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := rs.For("api"), rs.For("api")
	for _, code := range []int{0, 200, 200, 504, 418, 418, 302} {
		a.Observe(code, time.Millisecond)
	}
	b.Observe(200, time.Millisecond)
	b.Observe(599, time.Millisecond)
	want := `
# HELP sentinel_route_requests_total ` + routeRequestsHelp + `
# TYPE sentinel_route_requests_total counter
sentinel_route_requests_total{code="200",namespace="",route="api"} 4
sentinel_route_requests_total{code="302",namespace="",route="api"} 1
sentinel_route_requests_total{code="418",namespace="",route="api"} 2
sentinel_route_requests_total{code="504",namespace="",route="api"} 1
sentinel_route_requests_total{code="599",namespace="",route="api"} 1
`
	if err := compare(t, reg, want, RouteRequestsName); err != nil {
		t.Error(err)
	}
	for i, code := range commonCodes {
		if commonIndex(code) != i {
			t.Errorf("commonIndex(%d) = %d, want %d", code, commonIndex(code), i)
		}
	}
	if n := testing.AllocsPerRun(100, func() { a.Observe(404, time.Millisecond) }); n != 0 {
		t.Errorf("Observe of a common code allocates %v", n)
	}
	if a.common[commonIndex(404)].Load() == nil || a.common[commonIndex(200)].Load() == nil {
		t.Error("the counters of common codes are looked up on every request")
	}
}
