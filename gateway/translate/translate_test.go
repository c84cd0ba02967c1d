package translate

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	_ "github.com/sentinel-proxy/sentinel/modules/shadow"
	_ "github.com/sentinel-proxy/sentinel/modules/timeout"
)

func hn(s string) *gwv1.Hostname { h := gwv1.Hostname(s); return &h }

func TestIntersectHostnames(t *testing.T) {
	for _, c := range []struct {
		listener *gwv1.Hostname
		route    []gwv1.Hostname
		want     []string
	}{
		{nil, nil, []string{""}},
		{nil, []gwv1.Hostname{"A.example.com"}, []string{"a.example.com"}},
		{hn("a.example.com"), nil, []string{"a.example.com"}},
		{hn("a.example.com"), []gwv1.Hostname{"a.example.com", "b.example.com"}, []string{"a.example.com"}},
		{hn("*.example.com"), []gwv1.Hostname{"a.example.com", "x.a.example.com", "example.com"}, []string{"a.example.com", "x.a.example.com"}},
		{hn("a.example.com"), []gwv1.Hostname{"*.example.com"}, []string{"a.example.com"}},
		{hn("*.example.com"), []gwv1.Hostname{"*.a.example.com"}, []string{"*.a.example.com"}},
		{hn("*.a.example.com"), []gwv1.Hostname{"*.example.com"}, []string{"*.a.example.com"}},
		{hn("a.example.com"), []gwv1.Hostname{"b.example.com"}, nil},
		{hn("*.example.com"), []gwv1.Hostname{"*.example.org"}, nil},
	} {
		if got := intersectHostnames(c.listener, c.route); !reflect.DeepEqual(got, c.want) {
			t.Errorf("listener %v, route %v: %q, want %q", hostOf(c.listener), c.route, got, c.want)
		}
	}
}

func pm(t gwv1.PathMatchType, v string) *gwv1.HTTPPathMatch {
	return &gwv1.HTTPPathMatch{Type: &t, Value: &v}
}

// TestPrecedence: the spec's order (hostname, path, method, headers,
// query, age, rule order).
func TestPrecedence(t *testing.T) {
	old := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "a", CreationTimestamp: metav1.NewTime(time.Unix(100, 0))}}
	young := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "young", Namespace: "a", CreationTimestamp: metav1.NewTime(time.Unix(200, 0))}}
	get := gwv1.HTTPMethodGet
	want := []*entry{
		{route: young, hostname: "long.example.com", match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/")}},
		{route: young, hostname: "a.example.com", match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/")}},
		{route: young, hostname: "*.wildcard.example.com", match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/")}},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchExact, "/a")}},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/abc")}},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a"), Method: &get}},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a"), Headers: []gwv1.HTTPHeaderMatch{{Name: "a"}, {Name: "b"}}}},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a"), Headers: []gwv1.HTTPHeaderMatch{{Name: "a"}}}},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a"), QueryParams: []gwv1.HTTPQueryParamMatch{{Name: "q"}}}},
		{route: old, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a")}, rule: 1},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a")}, rule: 0},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a")}, rule: 1, index: 0},
		{route: young, match: gwv1.HTTPRouteMatch{Path: pm(gwv1.PathMatchPathPrefix, "/a")}, rule: 1, index: 1},
		{route: young, match: gwv1.HTTPRouteMatch{}},
	}
	for i := range want {
		for j := range want {
			if got := precedes(want[i], want[j]); got != (i < j) {
				t.Errorf("precedes(#%d, #%d) = %v", i, j, got)
			}
		}
	}
}

// base is an Input with one Gateway (listener "http" on 80, routes from
// all namespaces) and Service web (port 8080, two endpoints).
func base() *Input {
	all := gwv1.NamespacesFromAll
	ready := true
	port := int32(3000)
	name := "http"
	return &Input{
		ControllerName: "test/controller",
		Gateway: &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: "edge", Generation: 3}, Spec: gwv1.GatewaySpec{
			Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}}}},
		}},
		Namespaces: map[string]map[string]string{"gw": {}, "app": {"team": "a"}},
		Services: map[types.NamespacedName]*corev1.Service{
			{Namespace: "app", Name: "web"}:  {ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}},
			{Namespace: "gw", Name: "local"}: {ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: "local"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}},
		},
		EndpointSlices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{
			{Namespace: "app", Name: "web"}: {{
				Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}, {Addresses: []string{"10.0.0.2"}}},
				Ports:     []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			}},
			{Namespace: "gw", Name: "local"}: {{
				Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}}},
				Ports:     []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			}},
		},
		Secrets: map[types.NamespacedName]*corev1.Secret{},
	}
}

func route(ns, name string, rules ...gwv1.HTTPRouteRule) *gwv1.HTTPRoute {
	return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 2}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", Namespace: ptr(gwv1.Namespace("gw"))}}},
		Rules:           rules,
	}}
}

func ref(ns, name string, port int32) gwv1.HTTPBackendRef {
	r := gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port}}}
	if ns != "" {
		r.Namespace = ptr(gwv1.Namespace(ns))
	}
	return r
}

func conds(cs []metav1.Condition) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Type+"="+string(c.Status)+"/"+c.Reason)
	}
	return strings.Join(out, " ")
}

// TestBackendRefs: each kind of unresolvable backendRef gets its
// ResolvedRefs reason and a 500; a resolvable one proxies to the ready
// endpoints, and the config provisions in Caddy.
func TestBackendRefs(t *testing.T) {
	for _, c := range []struct {
		name string
		ref  gwv1.HTTPBackendRef
		want string
	}{
		{"resolved", ref("app", "web", 8080), "ResolvedRefs=True/ResolvedRefs"},
		{"kind", func() gwv1.HTTPBackendRef { r := ref("", "x", 80); r.Kind = ptr(gwv1.Kind("Pod")); return r }(), "ResolvedRefs=False/InvalidKind"},
		{"missing", ref("gw", "nope", 8080), "ResolvedRefs=False/BackendNotFound"},
		{"port", ref("gw", "local", 9999), "ResolvedRefs=False/BackendNotFound"},
	} {
		in := base()
		// Cross-namespace needs a grant: give one, except to check it.
		in.Grants = []*gwv1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Namespace: "app"}, Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "gw"}},
			To:   []gwv1.ReferenceGrantTo{{Kind: "Service", Name: ptr(gwv1.ObjectName("web"))}},
		}}}
		in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{c.ref}})}
		out, err := Translate(in)
		if err != nil {
			t.Fatal(err)
		}
		ps := out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}]
		if len(ps) != 1 {
			t.Fatalf("%s: parents %+v", c.name, ps)
		}
		if got := conds(ps[0].Conditions); got != "Accepted=True/Accepted "+c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
		for _, cd := range ps[0].Conditions {
			if cd.ObservedGeneration != 2 {
				t.Errorf("%s: observedGeneration %d", c.name, cd.ObservedGeneration)
			}
		}
		cfg := string(out.Config)
		if c.name == "resolved" {
			if !strings.Contains(cfg, `"dial":"10.0.0.1:3000"`) || !strings.Contains(cfg, `"dial":"10.0.0.2:3000"`) {
				t.Errorf("config lacks the endpoints: %s", cfg)
			}
		} else if !strings.Contains(cfg, `"status_code":500`) {
			t.Errorf("%s: config lacks the 500: %s", c.name, cfg)
		}
		if err := testutil.Provision(t, out.Config); err != nil {
			t.Errorf("%s: Caddy refuses the config: %v", c.name, err)
		}
	}
	// Without the grant: RefNotPermitted.
	in := base()
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("app", "web", 8080)}})}
	out, _ := Translate(in)
	if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); !strings.Contains(got, "ResolvedRefs=False/RefNotPermitted") {
		t.Errorf("no grant: %s", got)
	}
}

// TestAttachment: the Accepted reasons of a parentRef, and the
// listeners' attachedRoutes.
func TestAttachment(t *testing.T) {
	same := gwv1.NamespacesFromSame
	sel := gwv1.NamespacesFromSelector
	in := base()
	in.Gateway.Spec.Listeners = append(in.Gateway.Spec.Listeners,
		gwv1.Listener{Name: "same", Port: 81, Protocol: gwv1.HTTPProtocolType, Hostname: hn("*.example.com"), AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &same}}},
		gwv1.Listener{Name: "team", Port: 82, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &sel, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}}},
	)
	mk := func(name, ns string, p gwv1.ParentReference, hosts ...gwv1.Hostname) *gwv1.HTTPRoute {
		r := route(ns, name)
		p.Name, p.Namespace = "edge", ptr(gwv1.Namespace("gw"))
		r.Spec.ParentRefs = []gwv1.ParentReference{p}
		r.Spec.Hostnames = hosts
		return r
	}
	cases := map[string]struct {
		r    *gwv1.HTTPRoute
		want string
	}{
		"all":        {mk("all", "app", gwv1.ParentReference{}), "Accepted=True/Accepted"},
		"section":    {mk("section", "gw", gwv1.ParentReference{SectionName: ptr(gwv1.SectionName("same"))}, "a.example.com"), "Accepted=True/Accepted"},
		"nosection":  {mk("nosection", "gw", gwv1.ParentReference{SectionName: ptr(gwv1.SectionName("nope"))}), "Accepted=False/NoMatchingParent"},
		"port":       {mk("port", "gw", gwv1.ParentReference{Port: ptr(int32(9))}), "Accepted=False/NoMatchingParent"},
		"notallowed": {mk("notallowed", "app", gwv1.ParentReference{SectionName: ptr(gwv1.SectionName("same"))}), "Accepted=False/NotAllowedByListeners"},
		"hostname":   {mk("hostname", "gw", gwv1.ParentReference{SectionName: ptr(gwv1.SectionName("same"))}, "a.example.org"), "Accepted=False/NoMatchingListenerHostname"},
		"selector":   {mk("selector", "app", gwv1.ParentReference{Port: ptr(int32(82))}), "Accepted=True/Accepted"},
		"selectorno": {mk("selectorno", "gw", gwv1.ParentReference{Port: ptr(int32(82))}), "Accepted=False/NotAllowedByListeners"},
	}
	for _, c := range cases {
		in.Routes = append(in.Routes, c.r)
	}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range cases {
		ps := out.RouteParents[types.NamespacedName{Namespace: c.r.Namespace, Name: c.r.Name}]
		if len(ps) != 1 || conds(ps[0].Conditions[:1]) != c.want {
			t.Errorf("%s: %+v, want %s", name, ps, c.want)
		}
	}
	got := map[gwv1.SectionName]int32{}
	for _, l := range out.Listeners {
		got[l.Name] = l.AttachedRoutes
	}
	if want := map[gwv1.SectionName]int32{"http": 1, "same": 1, "team": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("attachedRoutes %v, want %v", got, want)
	}
	if out.Accepted.Status != metav1.ConditionTrue || out.Accepted.ObservedGeneration != 3 {
		t.Errorf("Gateway Accepted %+v", out.Accepted)
	}
}

// TestListeners: unsupported protocols, conflicts and route kinds.
func TestListeners(t *testing.T) {
	in := base()
	in.Gateway.Spec.Listeners = []gwv1.Listener{
		{Name: "udp", Port: 53, Protocol: gwv1.UDPProtocolType},
		{Name: "a", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: hn("a.example.com")},
		{Name: "a2", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: hn("a.example.com")},
		{Name: "kinds", Port: 81, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: &gwv1.AllowedRoutes{Kinds: []gwv1.RouteGroupKind{{Kind: "TCPRoute"}, {Kind: "HTTPRoute"}}}},
		{Name: "ok", Port: 82, Protocol: gwv1.HTTPProtocolType},
	}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[gwv1.SectionName]string{
		"udp":   "Accepted=False/UnsupportedProtocol ResolvedRefs=True/ResolvedRefs Conflicted=False/NoConflicts Programmed=False/Invalid",
		"a":     "Accepted=False/Accepted ResolvedRefs=True/ResolvedRefs Conflicted=True/HostnameConflict Programmed=False/Invalid",
		"a2":    "Accepted=False/Accepted ResolvedRefs=True/ResolvedRefs Conflicted=True/HostnameConflict Programmed=False/Invalid",
		"kinds": "Accepted=True/Accepted ResolvedRefs=False/InvalidRouteKinds Conflicted=False/NoConflicts Programmed=False/Invalid",
		"ok":    "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs Conflicted=False/NoConflicts Programmed=True/Programmed",
	}
	for _, l := range out.Listeners {
		if got := conds(l.Conditions); got != want[l.Name] {
			t.Errorf("listener %s: %s\n want %s", l.Name, got, want[l.Name])
		}
	}
	if k := out.Listeners[3].SupportedKinds; len(k) != 1 || k[0].Kind != "HTTPRoute" {
		t.Errorf("supportedKinds %+v", k)
	}
	if c := out.Accepted; c.Status != metav1.ConditionTrue || c.Reason != "ListenersNotValid" {
		t.Errorf("Gateway Accepted %+v", c)
	}
	// Only the valid listeners serve.
	if s := string(out.Config); strings.Contains(s, ":53") || !strings.Contains(s, ":82") {
		t.Errorf("config %s", s)
	}
	// No valid listener: not accepted.
	in.Gateway.Spec.Listeners = in.Gateway.Spec.Listeners[:1]
	out, _ = Translate(in)
	if c := out.Accepted; c.Status != metav1.ConditionFalse || c.Reason != "ListenersNotValid" {
		t.Errorf("Gateway Accepted %+v", c)
	}
	// spec.addresses is not supported.
	in = base()
	in.Gateway.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "1.2.3.4"}}
	out, _ = Translate(in)
	if c := meta.FindStatusCondition([]metav1.Condition{out.Accepted}, "Accepted"); c.Reason != "UnsupportedAddress" {
		t.Errorf("Gateway Accepted %+v", c)
	}
}

// TestHTTPSListener: certificates from Secrets (a grant for another
// namespace); the errors name the reference, never the key.
func TestHTTPSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testutil.WriteCert(t, dir, "a.example.com")
	crt, key := readFile(t, certFile), readFile(t, keyFile)
	secret := func(ns, name string, crt, key []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}
	}
	for _, c := range []struct {
		name   string
		ref    gwv1.SecretObjectReference
		grant  bool
		reason string
	}{
		{"ok", gwv1.SecretObjectReference{Name: "good"}, false, "ResolvedRefs"},
		{"missing", gwv1.SecretObjectReference{Name: "nope"}, false, "InvalidCertificateRef"},
		{"malformed", gwv1.SecretObjectReference{Name: "bad"}, false, "InvalidCertificateRef"},
		{"kind", gwv1.SecretObjectReference{Name: "good", Kind: ptr(gwv1.Kind("ConfigMap"))}, false, "InvalidCertificateRef"},
		{"nogrant", gwv1.SecretObjectReference{Name: "other", Namespace: ptr(gwv1.Namespace("app"))}, false, "RefNotPermitted"},
		{"grant", gwv1.SecretObjectReference{Name: "other", Namespace: ptr(gwv1.Namespace("app"))}, true, "ResolvedRefs"},
	} {
		in := base()
		in.Secrets[types.NamespacedName{Namespace: "gw", Name: "good"}] = secret("gw", "good", crt, key)
		in.Secrets[types.NamespacedName{Namespace: "gw", Name: "bad"}] = secret("gw", "bad", []byte("x"), []byte("secret-key-bytes"))
		in.Secrets[types.NamespacedName{Namespace: "app", Name: "other"}] = secret("app", "other", crt, key)
		if c.grant {
			in.Grants = []*gwv1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Namespace: "app"}, Spec: gwv1.ReferenceGrantSpec{
				From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "Gateway", Namespace: "gw"}},
				To:   []gwv1.ReferenceGrantTo{{Kind: "Secret"}},
			}}}
		}
		in.Gateway.Spec.Listeners = []gwv1.Listener{{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType, Hostname: hn("a.example.com"),
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{c.ref}}}}
		in.Routes = []*gwv1.HTTPRoute{
			route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)}}),
			route("gw", "unresolved", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("", "nope", 8080)}}),
		}
		out, err := Translate(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "unresolved"}][0].Conditions); got != "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound" {
			t.Errorf("%s: route with a missing backend: %s", c.name, got)
		}
		rc := meta.FindStatusCondition(out.Listeners[0].Conditions, "ResolvedRefs")
		if rc.Reason != c.reason {
			t.Errorf("%s: %s %s", c.name, rc.Reason, rc.Message)
		}
		// Unresolved or not, the listener counts its route, whose own
		// references are checked all the same.
		if out.Listeners[0].AttachedRoutes != 2 {
			t.Errorf("%s: attachedRoutes %d, want 2", c.name, out.Listeners[0].AttachedRoutes)
		}
		if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); got != "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs" {
			t.Errorf("%s: route %s", c.name, got)
		}
		if strings.Contains(rc.Message, "secret-key-bytes") {
			t.Errorf("%s: the message shows the Secret's content", c.name)
		}
		if c.reason == "ResolvedRefs" {
			if !strings.Contains(string(out.Config), `"load_pem"`) || !strings.Contains(string(out.Config), `"sni":["a.example.com"]`) {
				t.Errorf("%s: config %s", c.name, out.Config)
			}
			if err := testutil.Provision(t, out.Config); err != nil {
				t.Errorf("%s: Caddy refuses the config: %v", c.name, err)
			}
		}
	}
}

// TestFilters: the Caddy handlers of the filters, and a config with all
// of them provisions.
func TestFilters(t *testing.T) {
	in := base()
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r",
		gwv1.HTTPRouteRule{
			Matches: []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, "/a/")}, {Path: pm(gwv1.PathMatchPathPrefix, "/abc")}},
			Filters: []gwv1.HTTPRouteFilter{
				{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
					Set: []gwv1.HTTPHeader{{Name: "X-Set", Value: "1"}}, Add: []gwv1.HTTPHeader{{Name: "X-Add", Value: "2"}}, Remove: []string{"X-Drop"}}},
				{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Resp", Value: "3"}}}},
				{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr("/$x/")}}},
				{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: &gwv1.HTTPRequestMirrorFilter{BackendRef: gwv1.BackendObjectReference{Name: "local", Port: ptr(int32(8080))}, Percent: ptr(int32(25))}},
			},
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
		},
		gwv1.HTTPRouteRule{
			Matches: []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchExact, "/full")}},
			Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gwv1.HTTPRequestRedirectFilter{
				Scheme: ptr("https"), Path: &gwv1.HTTPPathModifier{Type: gwv1.FullPathHTTPPathModifier, ReplaceFullPath: ptr("/x")}}}},
		},
		gwv1.HTTPRouteRule{
			Matches: []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchExact, "/port")}},
			Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gwv1.HTTPRequestRedirectFilter{Port: ptr(int32(8443)), Scheme: ptr("https")}}},
		},
		gwv1.HTTPRouteRule{
			Matches: []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchExact, "/ext")}},
			Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "example.com", Kind: "Thing", Name: "t"}}},
		},
	)}
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(out.Config)
	for _, want := range []string{
		`"request":{"add":{"X-Add":["2"]},"delete":["X-Drop"],"set":{"X-Set":["1"]}}`,
		`"response":{"deferred":true,"set":{"X-Resp":["3"]}}`,
		`"find":"^(?:/abc|/a)(/.*)?$","replace":"/$$x$1"`,
		`"handler":"sentinel_shadow","percentage":25`,
		`"Location":["https://{http.request.host}{http.request.uri}"]`,
		`"find":"^.*$","replace":"/x"`,
		`"Location":["https://{http.request.host}:8443{http.request.uri}"]`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %s", want)
		}
	}
	if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); got != "Accepted=True/Accepted ResolvedRefs=False/InvalidKind" {
		t.Errorf("conditions %s", got)
	}
	if err := testutil.Provision(t, out.Config); err != nil {
		t.Errorf("Caddy refuses the config: %v", err)
	}
	var v map[string]any
	if err := json.Unmarshal(out.Config, &v); err != nil {
		t.Fatal(err)
	}
}

// TestWeights: a backend's weight spreads over its endpoints, and the
// sequence interleaves them.
func TestWeights(t *testing.T) {
	h := proxyHandler([]*backend{{targets: []string{"a", "b"}, weight: 3}, {targets: []string{"c", "d", "e"}, weight: 1}}, "")
	var seq []string
	for _, u := range h["upstreams"].([]map[string]any) {
		seq = append(seq, u["dial"].(string))
	}
	// Weights 9 9 2 2 2 (the lcm of the endpoint counts), 24 picks.
	n := map[string]int{}
	for _, s := range seq {
		n[s]++
	}
	if want := map[string]int{"a": 9, "b": 9, "c": 2, "d": 2, "e": 2}; !reflect.DeepEqual(n, want) {
		t.Errorf("picks %v, want %v", n, want)
	}
	// Smooth: no target twice in a row when another could come between.
	for i := 2; i < len(seq); i++ {
		if seq[i] == seq[i-1] && seq[i] == seq[i-2] {
			t.Errorf("%q: three in a row", seq)
		}
	}
	// 70:30 in any window of 10 requests.
	h = proxyHandler([]*backend{{targets: []string{"a"}, weight: 70}, {targets: []string{"b"}, weight: 30}}, "")
	ups := h["upstreams"].([]map[string]any)
	if len(ups) != 10 {
		t.Fatalf("%d upstreams, want 10 (gcd)", len(ups))
	}
	for start := range 10 {
		a := 0
		for i := range 10 {
			if ups[(start+i)%10]["dial"] == "a" {
				a++
			}
		}
		if a != 7 {
			t.Errorf("window at %d: %d of 10 to a", start, a)
		}
	}
	// Past maxSequence: Caddy's weighted_round_robin.
	h = proxyHandler([]*backend{{targets: []string{"a"}, weight: 1000}, {targets: []string{"b"}, weight: 1}}, "")
	if p := h["load_balancing"].(map[string]any)["selection_policy"].(map[string]any); p["policy"] != "weighted_round_robin" || !reflect.DeepEqual(p["weights"], []int{1000, 1}) {
		t.Errorf("policy %v", p)
	}
	if mirrorPercent(&gwv1.HTTPRequestMirrorFilter{Fraction: &gwv1.Fraction{Numerator: 1, Denominator: ptr(int32(4))}}) == nil ||
		*mirrorPercent(&gwv1.HTTPRequestMirrorFilter{Fraction: &gwv1.Fraction{Numerator: 1, Denominator: ptr(int32(4))}}) != 25 {
		t.Error("fraction 1/4 is not 25 %")
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPartiallyInvalidBackends: a rule with a valid backend of weight 3
// and an invalid one (a Service that does not exist) of weight 1 answers
// 500 to a quarter of the requests, as the spec asks, through a real
// Caddy; a rule whose backends are all valid never answers 500.
func TestPartiallyInvalidBackends(t *testing.T) {
	in := base()
	echoBackend(t, in, "gw", "local")
	good, bad := ref("", "local", 8080), ref("", "missing", 8080)
	good.Weight, bad.Weight = ptr(int32(3)), ptr(int32(1))
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{good, bad}})}
	url := serve(t, in)
	got := get(t, url+"/", 40)
	if want := map[string]int{"200 local": 30, "500 ": 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	// A reload (Caddy's graceful config change, as a replica's) keeps the
	// internal server: its socket is taken over, not bound twice.
	good.Weight = ptr(int32(1))
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r", gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{good, bad}})}
	url = serve(t, in)
	if got, want := get(t, url+"/", 20), map[string]int{"200 local": 10, "500 ": 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("after a reload: answers %v, want %v", got, want)
	}
	// The same through the config: ResolvedRefs False for the missing one.
	out, _ := Translate(in)
	if c := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); !strings.Contains(c, "ResolvedRefs=False/BackendNotFound") {
		t.Errorf("conditions %s", c)
	}
	// Without an invalid backend, no internal 500 server.
	in.Routes[0].Spec.Rules[0].BackendRefs = []gwv1.HTTPBackendRef{good}
	out, _ = Translate(in)
	if strings.Contains(string(out.Config), "gw-invalid-backends") {
		t.Errorf("internal server without an invalid backend: %s", out.Config)
	}
}

// TestTimeouts: timeouts.request and timeouts.backendRequest answer 504
// when the backend takes longer, "0s" disables them, through a real
// Caddy and a slow backend; a malformed duration is UnsupportedValue.
func TestTimeouts(t *testing.T) {
	in := base()
	echoBackend(t, in, "gw", "local")
	d := func(s string) *gwv1.Duration { v := gwv1.Duration(s); return &v }
	rule := func(prefix string, to gwv1.HTTPRouteTimeouts) gwv1.HTTPRouteRule {
		return gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, prefix)}},
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
			Timeouts:    &to,
		}
	}
	in.Routes = []*gwv1.HTTPRoute{route("gw", "r",
		rule("/request", gwv1.HTTPRouteTimeouts{Request: d("300ms")}),
		rule("/backend", gwv1.HTTPRouteTimeouts{BackendRequest: d("300ms")}),
		rule("/off", gwv1.HTTPRouteTimeouts{Request: d("0s"), BackendRequest: d("0s")}),
	)}
	url := serve(t, in)
	for _, c := range []struct {
		path string
		want string
	}{
		{"/request", "200 local"},
		{"/request?delay=1s", "504"},
		{"/backend", "200 local"},
		{"/backend?delay=1s", "504"},
		{"/off?delay=1s", "200 local"},
	} {
		got := get(t, url+c.path, 1)
		ok := false
		for k := range got {
			ok = strings.HasPrefix(k, c.want)
		}
		if !ok {
			t.Errorf("%s: %v, want %s", c.path, got, c.want)
		}
	}
	out, _ := Translate(in)
	if n := strings.Count(string(out.Config), `"handler":"sentinel_timeout"`); n != 2 {
		t.Errorf("%d timeout handlers, want 2 (0s disables)", n)
	}
	in.Routes[0].Spec.Rules[0].Timeouts.Request = d("soon")
	out, _ = Translate(in)
	if c := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: "r"}][0].Conditions); !strings.Contains(c, "ResolvedRefs=False/UnsupportedValue") {
		t.Errorf("malformed duration: %s", c)
	}
}

// TestProxyKeepsStreamsOverReloads: every reverse proxy of a Gateway's
// config lets the upgraded connections (WebSockets) of a replaced config
// relay for streamCloseDelay, since every route change replaces the
// config (Caddy closes them with it otherwise; the behaviour itself is
// integration.TestWebSocketSurvivesReload's).
func TestProxyKeepsStreamsOverReloads(t *testing.T) {
	for _, backends := range [][]*backend{
		{{targets: []string{"10.0.0.1:80"}, weight: 1}},
		{{targets: []string{"10.0.0.1:80"}, weight: 1}, {targets: []string{"10.0.0.2:80"}, weight: 3}},
	} {
		if h := proxyHandler(backends, ""); h["stream_close_delay"] != streamCloseDelay {
			t.Errorf("%d backends: stream_close_delay %v, want %s", len(backends), h["stream_close_delay"], streamCloseDelay)
		}
	}
}
