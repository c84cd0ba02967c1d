package render

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

func testProxy() *v1alpha1.SentinelProxy {
	return &v1alpha1.SentinelProxy{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: "web"},
		Spec: v1alpha1.SentinelProxySpec{
			Image: "ghcr.io/sentinel-proxy/sentinel:1",
			Listeners: []v1alpha1.Listener{
				{Name: "main", Port: 8080},
				{Name: "main-tls", Port: 8443, Protocol: "https", TLSSecretName: "edge-tls"},
			},
			Config:   `upstreams { upstream "static" { target "10.0.0.9:80"; } }`,
			AdminAPI: v1alpha1.AdminAPI{TLSSecretName: "edge-admin-tls"},
		},
	}
}

func TestKDL(t *testing.T) {
	p := testProxy()
	ups := []v1alpha1.SentinelUpstream{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "web"}, Spec: v1alpha1.SentinelUpstreamSpec{Service: &v1alpha1.ServiceTargets{Name: "web", Port: ptr.To[int32](80)}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "web"}, Spec: v1alpha1.SentinelUpstreamSpec{Targets: []v1alpha1.Target{{Address: "10.0.0.1:8080"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "named", Namespace: "web"}, Spec: v1alpha1.SentinelUpstreamSpec{Service: &v1alpha1.ServiceTargets{Name: "web", PortName: ptr.To("http")}}},
	}
	agents := []v1alpha1.SentinelAgent{{ObjectMeta: metav1.ObjectMeta{Name: "waf"}, Spec: v1alpha1.SentinelAgentSpec{
		Type: "waf", UnixSocket: "/run/waf.sock", Events: []string{"request_headers", "request_complete"},
		TimeoutMilliseconds: ptr.To[int32](200), FailureMode: "closed", MaxRequestBodyBytes: ptr.To[int64](1024),
	}}, {ObjectMeta: metav1.ObjectMeta{Name: "auth"}, Spec: v1alpha1.SentinelAgentSpec{GRPC: "http://auth:50051"}}}
	routes := []v1alpha1.SentinelRoute{
		{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1alpha1.SentinelRouteSpec{
			Priority: ptr.To[int32](100), Upstream: "web", Agents: []string{"waf"}, TimeoutSeconds: ptr.To[int32](5),
			Matches: v1alpha1.RouteMatch{PathPrefix: "/", Hosts: []string{"a.example", "*.b.example"}, Methods: []string{"GET"},
				Headers: []v1alpha1.HeaderMatch{{Name: "X-Env", Value: ptr.To(`pr"od ${HOME}`)}, {Name: "X-Present"}}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "status"}, Spec: v1alpha1.SentinelRouteSpec{RouteID: "st", BuiltinHandler: "status", Matches: v1alpha1.RouteMatch{Path: "/status"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "static"}, Spec: v1alpha1.SentinelRouteSpec{Upstream: "static", Filters: []string{}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: v1alpha1.SentinelRouteSpec{Upstream: "nowhere"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "bad-agent"}, Spec: v1alpha1.SentinelRouteSpec{Upstream: "web", Agents: []string{"missing"}}},
	}
	c, err := KDL(p, ups, agents, routes)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Log(c.Text)
	}
	if strings.Join(c.Routes, ",") != "status,static,web" {
		t.Errorf("routes %v", c.Routes)
	}
	if len(c.Rejected) != 2 || c.Rejected[0].Name != "bad" || !strings.Contains(c.Rejected[0].Err.Error(), `upstream "nowhere" is not defined`) || c.Rejected[1].Name != "bad-agent" {
		t.Errorf("rejected %v", c.Rejected)
	}
	if len(c.Agents) != 2 || len(c.Upstreams) != 3 || len(c.Revision) != 16 || c.Revision != Revision(c.Text) {
		t.Errorf("%v %v %q", c.Agents, c.Upstreams, c.Revision)
	}
	for _, want := range []string{`header "X-Env" "pr\"od $${HOME}"`, `target "web.web.svc:80"`, `target "127.0.0.1:1"`, `"${SENTINEL_LISTEN_MAIN_TLS:-0.0.0.0:8443}"`, `filters "waf"`, `events "request_headers" "log"`} {
		if !strings.Contains(c.Text, want) {
			t.Errorf("missing %s", want)
		}
	}
	// The proxy's own config invalid: an error naming it.
	p.Spec.Config = "routes { route \"x\" { upstream \"none\"; } }"
	if _, err := KDL(p, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "SentinelProxy web/edge: its configuration is invalid") {
		t.Errorf("invalid base: %v", err)
	}
	// Includes read nothing of the operator's files.
	p.Spec.Config = `include "/etc/passwd"`
	if _, err := KDL(p, nil, nil, nil); err != nil && strings.Contains(err.Error(), "root:") {
		t.Errorf("include: %v", err)
	}
	if _, err := (noFiles{}).ReadFile("/etc/passwd"); err == nil {
		t.Error("noFiles read a file")
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{"a": `"a"`, "a\"b\\": `"a\"b\\"`, "x\ny\t\r\x01": `"x\ny\t\r\u{1}"`, "${X}": `"$${X}"`, "$x": `"$x"`} {
		if got := q(in); got != want {
			t.Errorf("q(%q) = %s, want %s", in, got, want)
		}
	}
}
