package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/gateway/internal/sim"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

var env *kubetest.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	kubetest.Main(m, &env, sim.CRDDir("standard"), filepath.Join("..", "..", "deploy", "operator", "crds"))
}

func scheme(t testing.TB) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := gwv1.Install(s); err != nil {
		t.Fatal(err)
	}
	if err := gwv1beta1.Install(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs the Gateway controllers with local Sentinel replicas on
// 127.0.0.1 until the test ends.
func start(t *testing.T) client.Client {
	t.Helper()
	kubetest.Need(t, env)
	bin := testutil.Build(t, "./cmd/sentinel")
	s := scheme(t)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	reps := sim.NewReplicas(t, bin, nil)
	if err := controller.Setup(mgr, controller.Options{Programmer: reps.Programmer(), SeveralInProcess: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func eventually(t *testing.T, d time.Duration, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := what()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endpointIP is an IP of this machine outside 127/8 (EndpointSlices
// refuse loopback): .ci/run puts 10.77.0.1 on lo.
func endpointIP(t *testing.T) string {
	if lo, err := net.InterfaceByName("lo"); err == nil {
		addrs, _ := lo.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	testutil.Missing(t, "no IPv4 address outside 127.0.0.0/8 on the loopback interface for the EndpointSlices: ip addr add 10.77.0.1/32 dev lo (as .ci/run does)")
	return ""
}

// echo is a backend answering "name path" and the X-Test request header.
func echo(t *testing.T, host, name string) int32 {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s x-test=%s host=%s", name, r.URL.Path, r.Header.Get("X-Test"), r.Host)
	}))
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// service creates a Service on port 8080 and its EndpointSlice pointing
// at ip:port.
func service(t *testing.T, c client.Client, ns, name, ip string, port int32) {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "http", Port: 8080}},
	}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port)}},
	}
	if err := c.Create(ctx, es); err != nil {
		t.Fatal(err)
	}
}

func mkns(t *testing.T, c client.Client, name string) {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

func condOf(cs []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(cs, typ)
	if c == nil {
		return typ + "=<none>"
	}
	return fmt.Sprintf("%s=%s/%s", typ, c.Status, c.Reason)
}

// get sends a request to addr with host and path and returns the status
// and body.
func get(addr, host, path string, hdr map[string]string) (int, string, http.Header) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var gwClass sync.Once

// class creates the GatewayClass "sentinel" (once per process).
func class(t *testing.T, c client.Client) {
	gwClass.Do(func() {
		gc := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "sentinel"}, Spec: gwv1.GatewayClassSpec{ControllerName: controller.DefaultControllerName}}
		if err := c.Create(context.Background(), gc); err != nil {
			t.Fatal(err)
		}
	})
}

// TestHTTPRouteEndToEnd: a GatewayClass, a Gateway and HTTPRoutes in a
// real kube-apiserver become a running Sentinel replica's config; the
// replica routes by path, header, method and query in the spec's
// precedence, applies the filters and weights, and every status the spec
// asks for is written (Accepted, Programmed, ResolvedRefs, listeners'
// attachedRoutes, addresses, observedGeneration).
func TestHTTPRouteEndToEnd(t *testing.T) {
	c := start(t)
	ip := endpointIP(t)
	ctx := context.Background()
	class(t, c)
	mkns(t, c, "e2e")
	mkns(t, c, "other")
	service(t, c, "e2e", "v1", ip, echo(t, ip, "v1"))
	service(t, c, "e2e", "v2", ip, echo(t, ip, "v2"))
	service(t, c, "other", "far", ip, echo(t, ip, "far"))

	eventually(t, 10*time.Second, func() string {
		var gc gwv1.GatewayClass
		if err := c.Get(ctx, types.NamespacedName{Name: "sentinel"}, &gc); err != nil {
			return err.Error()
		}
		if s := condOf(gc.Status.Conditions, "Accepted"); s != "Accepted=True/Accepted" {
			return "GatewayClass " + s
		}
		return ""
	})

	port := int32(testutil.FreePort(t))
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "e2e", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "sentinel",
		Listeners: []gwv1.Listener{{Name: "http", Port: port, Protocol: gwv1.HTTPProtocolType,
			AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr.To(gwv1.NamespacesFromAll)}}}},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	parent := []gwv1.ParentReference{{Name: "edge", Namespace: ptr.To(gwv1.Namespace("e2e"))}}
	exact, prefix, regex := gwv1.PathMatchExact, gwv1.PathMatchPathPrefix, gwv1.PathMatchRegularExpression
	backend := func(name string, w int32) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To[int32](8080)}, Weight: ptr.To(w)}}
	}
	rt := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "e2e", Name: "web"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parent},
		Hostnames:       []gwv1.Hostname{"web.example.com", "*.wild.example.com"},
		Rules: []gwv1.HTTPRouteRule{
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/")}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("v1", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/v2")}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("v2", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &exact, Value: ptr.To("/v2/exact")}}},
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Test", Value: "set"}}}},
					{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Backend", Value: "hidden"}}}}},
				BackendRefs: []gwv1.HTTPBackendRef{backend("v1", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/v2")}, Headers: []gwv1.HTTPHeaderMatch{{Name: "version", Value: "one"}}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("v1", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &regex, Value: ptr.To(`/re/[0-9]+`)}, Method: ptr.To(gwv1.HTTPMethodPost)}}, BackendRefs: []gwv1.HTTPBackendRef{backend("v2", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/q")}, QueryParams: []gwv1.HTTPQueryParamMatch{{Name: "x", Value: "1"}}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("v2", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/split")}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("v1", 3), backend("v2", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/old")}}},
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gwv1.HTTPRequestRedirectFilter{
					Hostname: ptr.To(gwv1.PreciseHostname("new.example.com")), Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/new")}, StatusCode: ptr.To(301)}}}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/rw")}}},
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{
					Hostname: ptr.To(gwv1.PreciseHostname("inner.example.com")), Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/inner")}}}},
				BackendRefs: []gwv1.HTTPBackendRef{backend("v2", 1)}},
			{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: ptr.To("/far")}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "far", Namespace: ptr.To(gwv1.Namespace("other")), Port: ptr.To[int32](8080)}}}}},
		},
	}}
	if err := c.Create(ctx, rt); err != nil {
		t.Fatal(err)
	}

	// The Gateway: Accepted, Programmed, its address, the listener with
	// one route attached.
	var addr string
	eventually(t, 30*time.Second, func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		got := condOf(g.Status.Conditions, "Accepted") + " " + condOf(g.Status.Conditions, "Programmed")
		if got != "Accepted=True/Accepted Programmed=True/Programmed" {
			return "Gateway " + got
		}
		if len(g.Status.Addresses) != 1 || len(g.Status.Listeners) != 1 || g.Status.Listeners[0].AttachedRoutes != 1 {
			return fmt.Sprintf("Gateway status %+v", g.Status)
		}
		for _, cd := range append(g.Status.Conditions, g.Status.Listeners[0].Conditions...) {
			if cd.ObservedGeneration != g.Generation {
				return fmt.Sprintf("condition %s observedGeneration %d, want %d", cd.Type, cd.ObservedGeneration, g.Generation)
			}
		}
		if s := condOf(g.Status.Listeners[0].Conditions, "ResolvedRefs") + condOf(g.Status.Listeners[0].Conditions, "Programmed"); s != "ResolvedRefs=True/ResolvedRefsProgrammed=True/Programmed" {
			return "listener " + s
		}
		addr = net.JoinHostPort(g.Status.Addresses[0].Value, strconv.Itoa(int(port)))
		return ""
	})
	// The route: Accepted, but ResolvedRefs False (RefNotPermitted) for
	// the Service in another namespace without a ReferenceGrant.
	eventually(t, 10*time.Second, func() string {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(rt), &r); err != nil {
			return err.Error()
		}
		if len(r.Status.Parents) != 1 {
			return fmt.Sprintf("route parents %+v", r.Status.Parents)
		}
		p := r.Status.Parents[0]
		if got := condOf(p.Conditions, "Accepted") + " " + condOf(p.Conditions, "ResolvedRefs"); got != "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted" || p.ControllerName != controller.DefaultControllerName {
			return "route " + got
		}
		return ""
	})

	type want struct {
		method, host, path string
		hdr                map[string]string
		code               int
		body               string
	}
	h := "web.example.com"
	for _, w := range []want{
		{"GET", h, "/", nil, 200, "v1 / x-test="},
		{"GET", h, "/anything", nil, 200, "v1 /anything"},
		{"GET", h, "/v2", nil, 200, "v2 /v2"},
		{"GET", h, "/v2/x", nil, 200, "v2 /v2/x"},
		{"GET", h, "/v2x", nil, 200, "v1 /v2x"},                                   // prefix is per path element
		{"GET", h, "/v2/x", map[string]string{"version": "one"}, 200, "v1 /v2/x"}, // header match beats the bare prefix
		{"GET", h, "/v2/exact", nil, 200, "v1 /v2/exact x-test=set"},              // exact beats prefix; request header set
		{"POST", h, "/re/42", nil, 200, "v2 /re/42"},
		{"GET", h, "/re/42", nil, 200, "v1 /re/42"}, // method must match
		{"GET", h, "/q?x=1", nil, 200, "v2 /q"},
		{"GET", h, "/q?x=2", nil, 200, "v1 /q"},
		{"GET", "a.b.wild.example.com", "/v2", nil, 200, "v2 /v2"}, // wildcard hostnames match several labels
		{"GET", "other.example.com", "/", nil, 404, ""},            // no route for that host
		{"GET", h, "/rw/a", nil, 200, "v2 /inner/a x-test= host=inner.example.com"},
		{"GET", h, "/far", nil, 500, ""}, // cross-namespace backend not permitted
	} {
		req, _ := http.NewRequest(w.method, "http://"+addr+w.path, nil)
		req.Host = w.host
		for k, v := range w.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != w.code || !strings.HasPrefix(string(b), w.body) {
			t.Errorf("%s %s%s %v: %d %q, want %d %q", w.method, w.host, w.path, w.hdr, resp.StatusCode, b, w.code, w.body)
		}
	}
	// Response header modifier.
	if _, _, hd := get(addr, h, "/v2/exact", nil); hd.Get("X-Backend") != "hidden" {
		t.Errorf("X-Backend %q, want the ResponseHeaderModifier's value", hd.Get("X-Backend"))
	}
	// Redirect with a prefix replacement.
	if code, _, hd := get(addr, h, "/old/page?q=1", nil); code != 301 || hd.Get("Location") != "http://new.example.com:"+strconv.Itoa(int(port))+"/new/page?q=1" {
		t.Errorf("redirect: %d %q", code, hd.Get("Location"))
	}
	// Weights 3:1.
	n := map[string]int{}
	for range 40 {
		_, b, _ := get(addr, h, "/split", nil)
		n[strings.Fields(b + " ")[0]]++
	}
	if n["v1"] != 30 || n["v2"] != 10 {
		t.Errorf("weights 3:1 over 40 requests: %v", n)
	}

	// A ReferenceGrant lets the route use the Service: ResolvedRefs True
	// and the request is served.
	grant := &gwv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "from-e2e"}, Spec: gwv1beta1.ReferenceGrantSpec{
		From: []gwv1beta1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "e2e"}},
		To:   []gwv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
	}}
	if err := c.Create(ctx, grant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(rt), &r); err != nil {
			return err.Error()
		}
		if got := condOf(r.Status.Parents[0].Conditions, "ResolvedRefs"); got != "ResolvedRefs=True/ResolvedRefs" {
			return got
		}
		if code, b, _ := get(addr, h, "/far", nil); code != 200 || !strings.HasPrefix(b, "far ") {
			return fmt.Sprintf("/far: %d %q", code, b)
		}
		return ""
	})

	// A parentRef naming a listener that does not exist: NoMatchingParent.
	bad := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "e2e", Name: "bad"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", SectionName: ptr.To(gwv1.SectionName("nope"))}}},
		Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("v1", 1)}}},
	}}
	if err := c.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(bad), &r); err != nil {
			return err.Error()
		}
		if len(r.Status.Parents) != 1 {
			return "no parent status"
		}
		if got := condOf(r.Status.Parents[0].Conditions, "Accepted"); got != "Accepted=False/NoMatchingParent" {
			return got
		}
		return ""
	})

	// The endpoints change: the replica follows without a new route.
	es := &discoveryv1.EndpointSlice{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "e2e", Name: "v2-1"}, es); err != nil {
		t.Fatal(err)
	}
	es.Ports[0].Port = ptr.To(echo(t, ip, "v2b"))
	if err := c.Update(ctx, es); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		if _, b, _ := get(addr, h, "/v2", nil); !strings.HasPrefix(b, "v2b ") {
			return "after the EndpointSlice change: " + b
		}
		return ""
	})
	_ = json.Valid

	// The Gateway goes: the routes' entries for it go, and its replica
	// stops serving.
	if err := c.Delete(ctx, gw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		var r gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(rt), &r); err != nil {
			return err.Error()
		}
		if len(r.Status.Parents) != 0 {
			return fmt.Sprintf("parents after the Gateway's deletion: %+v", r.Status.Parents)
		}
		if code, _, _ := get(addr, h, "/", nil); code != 0 {
			return fmt.Sprintf("the replica still answers: %d", code)
		}
		return ""
	})
}

// TestConfigMapProgrammer: the production delivery writes the config
// into the Gateway's ConfigMap (created, then updated only on change),
// and reports the Service's address, or an error naming the Service
// while it is missing.
func TestConfigMapProgrammer(t *testing.T) {
	kubetest.Need(t, env)
	c, err := client.New(env.Config, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mkns(t, c, "cm")
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "cm", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "x", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	p := &controller.ConfigMapProgrammer{C: c}
	if bind, admin, err := p.Target(ctx, gw); bind != "" || admin != nil || err != nil {
		t.Errorf("Target: %q %s %v", bind, admin, err)
	}
	if _, err := p.Program(ctx, gw, []byte(`{"apps":{}}`)); err == nil || !strings.Contains(err.Error(), "cm/edge-sentinel") {
		t.Errorf("without the Service: %v", err)
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: "cm", Name: "edge-sentinel-config"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[controller.ConfigKey] != `{"apps":{}}` || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != gw.UID {
		t.Errorf("ConfigMap %+v", cm)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "cm", Name: "edge-sentinel"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	addrs, err := p.Program(ctx, gw, []byte(`{"apps":{"http":{}}}`))
	if err != nil || len(addrs) != 1 || addrs[0].Value != svc.Spec.ClusterIP {
		t.Fatalf("addresses %+v, %v (cluster IP %s)", addrs, err, svc.Spec.ClusterIP)
	}
	rv := ""
	if err := c.Get(ctx, client.ObjectKeyFromObject(&cm), &cm); err != nil || cm.Data[controller.ConfigKey] != `{"apps":{"http":{}}}` {
		t.Fatalf("after the change: %v %v", cm.Data, err)
	}
	rv = cm.ResourceVersion
	if _, err := p.Program(ctx, gw, []byte(`{"apps":{"http":{}}}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(&cm), &cm); err != nil || cm.ResourceVersion != rv {
		t.Errorf("an unchanged config was written again (%s -> %s)", rv, cm.ResourceVersion)
	}
	// A load balancer's address wins.
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	if err := c.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.7"}, {Hostname: "lb.example.com"}}
	if err := c.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	addrs, err = p.Program(ctx, gw, []byte(`{"apps":{"http":{}}}`))
	if err != nil || len(addrs) != 2 || addrs[0].Value != "192.0.2.7" || *addrs[1].Type != gwv1.HostnameAddressType {
		t.Errorf("addresses %+v, %v", addrs, err)
	}
}
