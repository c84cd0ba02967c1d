package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestNamespaceLabel: route, upstream and shadow series of a namespace's
// items carry its name in the namespace label, global ones an empty one.
func TestNamespaceLabel(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	upstreams := registry.New()
	upstreams.Reconcile([]registry.UpstreamSpec{
		{ID: "team-a:api", Targets: []registry.TargetSpec{{Address: "127.0.0.1:1"}}},
		{ID: "team-a:billing:db", Targets: []registry.TargetSpec{{Address: "127.0.0.1:3"}}},
		{ID: "common", Targets: []registry.TargetSpec{{Address: "127.0.0.1:2"}}},
	}, nil)
	if err := Register(reg, upstreams); err != nil {
		t.Fatal(err)
	}
	routes, err := NewRoutes(reg)
	if err != nil {
		t.Fatal(err)
	}
	routes.For("team-a:web").Observe(200, time.Millisecond)
	routes.For("team-a:web").Observe(418, time.Millisecond)
	routes.For("web").Observe(200, time.Millisecond)
	sh, err := NewShadow(reg, "team-b:web", "team-b:canary")
	if err != nil {
		t.Fatal(err)
	}
	sh.Sent()
	for name, wants := range map[string][]string{
		RouteRequestsName: {
			`{code="200",namespace="team-a",route="team-a:web"} 1`,
			`{code="418",namespace="team-a",route="team-a:web"} 1`,
			`{code="200",namespace="",route="web"} 1`,
		},
		RouteDurationName: {`_count{namespace="team-a",route="team-a:web"} 2`, `_count{namespace="",route="web"} 1`},
		TargetHealthyName: {
			`{namespace="team-a",target="127.0.0.1:1",upstream="team-a:api"} 1`,
			`{namespace="team-a",target="127.0.0.1:3",upstream="team-a:billing:db"} 1`,
			`{namespace="",target="127.0.0.1:2",upstream="common"} 1`,
		},
		ShadowSentName: {`{namespace="team-b",route="team-b:web",upstream="team-b:canary"} 1`},
	} {
		got := scrape(t, reg, name)
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %s:\n%s", name, w, got)
			}
		}
	}
}
