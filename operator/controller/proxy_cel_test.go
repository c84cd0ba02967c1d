package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestCELRejectsInvalidProxiesRoutesAgents: the real API server refuses
// bad SentinelProxies, SentinelRoutes and SentinelAgents with messages
// that say what to do.
func TestCELRejectsInvalidProxiesRoutesAgents(t *testing.T) {
	kubetest.Need(t, env)
	c := kube(t)
	const ns = "cel-proxy"
	namespace(t, c, ns)
	ctx := context.Background()
	om := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	ref := v1alpha1.ProxySelection{ProxyRef: &v1alpha1.ProxyReference{Name: "edge"}}
	proxy := func(f func(*v1alpha1.SentinelProxySpec)) v1alpha1.SentinelProxySpec {
		s := v1alpha1.SentinelProxySpec{Image: "sentinel:1", Listeners: []v1alpha1.Listener{{Name: "main", Port: 8080}}, AdminAPI: v1alpha1.AdminAPI{TLSSecretName: "edge-admin-tls"}}
		f(&s)
		return s
	}
	for _, tc := range []struct {
		o    client.Object
		want string
	}{
		{&v1alpha1.SentinelProxy{ObjectMeta: om("https"), Spec: proxy(func(s *v1alpha1.SentinelProxySpec) { s.Listeners[0].Protocol = "https" })},
			"an https listener needs tlsSecretName (a kubernetes.io/tls Secret); an http one takes none"},
		{&v1alpha1.SentinelProxy{ObjectMeta: om("ports"), Spec: proxy(func(s *v1alpha1.SentinelProxySpec) {
			s.Listeners = append(s.Listeners, v1alpha1.Listener{Name: "other", Port: 8080})
		})}, "two listeners cannot share a port"},
		{&v1alpha1.SentinelProxy{ObjectMeta: om("hpa"), Spec: proxy(func(s *v1alpha1.SentinelProxySpec) {
			s.Replicas, s.Autoscaling = ptr.To[int32](2), &v1alpha1.Autoscaling{MinReplicas: 2, MaxReplicas: 4}
		})}, "give replicas or autoscaling, not both"},
		{&v1alpha1.SentinelProxy{ObjectMeta: om("minmax"), Spec: proxy(func(s *v1alpha1.SentinelProxySpec) {
			s.Autoscaling = &v1alpha1.Autoscaling{MinReplicas: 5, MaxReplicas: 4}
		})}, "minReplicas must not exceed maxReplicas"},
		{&v1alpha1.SentinelProxy{ObjectMeta: om("pdb"), Spec: proxy(func(s *v1alpha1.SentinelProxySpec) {
			s.Disruption = &v1alpha1.Disruption{MinAvailable: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}
		})}, "give exactly one of minAvailable or maxUnavailable"},
		{&v1alpha1.SentinelProxy{ObjectMeta: om("notls"), Spec: proxy(func(s *v1alpha1.SentinelProxySpec) { s.AdminAPI.TLSSecretName = "" })},
			"spec.adminAPI.tlsSecretName"},
		{&v1alpha1.SentinelRoute{ObjectMeta: om("both"), Spec: v1alpha1.SentinelRouteSpec{ProxySelection: ref, Upstream: "web", BuiltinHandler: "status"}},
			"give exactly one of upstream (an upstream id) or builtinHandler"},
		{&v1alpha1.SentinelRoute{ObjectMeta: om("none"), Spec: v1alpha1.SentinelRouteSpec{ProxySelection: ref}},
			"give exactly one of upstream (an upstream id) or builtinHandler"},
		{&v1alpha1.SentinelRoute{ObjectMeta: om("noproxy"), Spec: v1alpha1.SentinelRouteSpec{Upstream: "web"}},
			"give exactly one of proxyRef (a SentinelProxy's name) or proxySelector (labels of SentinelProxies)"},
		{&v1alpha1.SentinelRoute{ObjectMeta: om("path"), Spec: v1alpha1.SentinelRouteSpec{ProxySelection: ref, Upstream: "web", Matches: v1alpha1.RouteMatch{PathPrefix: "api"}}},
			"pathPrefix must start with /"},
		{&v1alpha1.SentinelRoute{ObjectMeta: om("paths"), Spec: v1alpha1.SentinelRouteSpec{ProxySelection: ref, Upstream: "web", Matches: v1alpha1.RouteMatch{PathPrefix: "/a", Path: "/b"}}},
			"give path (exact) or pathPrefix, not both"},
		{&v1alpha1.SentinelRoute{ObjectMeta: om("method"), Spec: v1alpha1.SentinelRouteSpec{ProxySelection: ref, Upstream: "web", Matches: v1alpha1.RouteMatch{Methods: []string{"FETCH"}}}},
			"spec.matches.methods[0]: Unsupported value"},
		{&v1alpha1.SentinelAgent{ObjectMeta: om("transport"), Spec: v1alpha1.SentinelAgentSpec{ProxySelection: ref, UnixSocket: "/run/a.sock", GRPC: "http://a:1"}},
			"give exactly one transport: unixSocket (a path) or grpc (an http:// or https:// address)"},
		{&v1alpha1.SentinelAgent{ObjectMeta: om("grpc"), Spec: v1alpha1.SentinelAgentSpec{ProxySelection: ref, GRPC: "a:50051"}},
			"grpc must be http://host:port or https://host:port"},
		{&v1alpha1.SentinelAgent{ObjectMeta: om("socket"), Spec: v1alpha1.SentinelAgentSpec{ProxySelection: ref, UnixSocket: "a.sock"}},
			"unixSocket must be an absolute path"},
		{&v1alpha1.SentinelAgent{ObjectMeta: om("mode"), Spec: v1alpha1.SentinelAgentSpec{ProxySelection: ref, UnixSocket: "/a.sock", FailureMode: "maybe"}},
			"spec.failureMode: Unsupported value"},
	} {
		err := c.Create(ctx, tc.o)
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T %s: %v, want Invalid with %q", tc.o, tc.o.GetName(), err, tc.want)
		}
	}
	// routeID and agentID cannot change.
	r := &v1alpha1.SentinelRoute{ObjectMeta: om("id"), Spec: v1alpha1.SentinelRouteSpec{ProxySelection: ref, RouteID: "a", Upstream: "web"}}
	if err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Spec.RouteID = "b"
	if err := c.Update(ctx, r); err == nil || !strings.Contains(err.Error(), "routeID cannot change: create another SentinelRoute") {
		t.Errorf("changing routeID: %v", err)
	}
	a := &v1alpha1.SentinelAgent{ObjectMeta: om("id"), Spec: v1alpha1.SentinelAgentSpec{ProxySelection: ref, UnixSocket: "/a.sock"}}
	if err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Spec.AgentID = "b"
	if err := c.Update(ctx, a); err == nil || !strings.Contains(err.Error(), "agentID cannot change: create another SentinelAgent") {
		t.Errorf("changing agentID: %v", err)
	}
}

// TestProxyStatusAndServiceMonitor: a SentinelProxy whose own config the
// adapter refuses is Ready False InvalidConfig with the finding; one
// without its admin TLS Secret says so; without replicas it waits
// (NoReplicas); its ServiceMonitor is made once the Prometheus
// Operator's CRD is installed, and deleted when the spec drops it.
func TestProxyStatusAndServiceMonitor(t *testing.T) {
	kubetest.Need(t, env)
	c := kube(t)
	const ns = "proxy-status"
	namespace(t, c, ns)
	ctx := context.Background()
	operator(t, Options{Namespaces: []string{ns}})
	p := &v1alpha1.SentinelProxy{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns}, Spec: v1alpha1.SentinelProxySpec{
		Image: "sentinel:1", Listeners: []v1alpha1.Listener{{Name: "main", Port: 8080}}, AdminAPI: v1alpha1.AdminAPI{TLSSecretName: "edge-admin-tls"},
		Config: `routes { route "x" { upstream "none"; } }`, ServiceMonitor: &v1alpha1.ServiceMonitor{Interval: "15s"},
	}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	status := func(reason, msg string) {
		t.Helper()
		eventually(t, 20*time.Second, "Ready False "+reason, func() bool {
			if c.Get(ctx, client.ObjectKeyFromObject(p), p) != nil {
				return false
			}
			r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			return r != nil && r.Reason == reason && strings.Contains(r.Message, msg) && r.ObservedGeneration == p.Generation
		})
	}
	status("InvalidConfig", `upstream "none" is not defined in upstreams`)
	updateProxy(t, c, p, func(s *v1alpha1.SentinelProxySpec) { s.Config = "" })
	status("AdminTLSUnavailable", "edge-admin-tls")
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "edge-admin-tls", Namespace: ns}, Data: map[string][]byte{"tls.crt": []byte("not PEM")}}); err != nil {
		t.Fatal(err)
	}
	updateProxy(t, c, p, func(s *v1alpha1.SentinelProxySpec) { s.Image = "sentinel:2" }) // a new generation: reconciled again
	status("AdminTLSUnavailable", "no PEM certificate")
	sec := &corev1.Secret{}
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge-admin-tls"}, sec)
	certPEM, _, _ := testCert()
	sec.Data = map[string][]byte{"tls.crt": certPEM}
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	updateProxy(t, c, p, func(s *v1alpha1.SentinelProxySpec) { s.Image = "sentinel:3" }) // a new generation: reconciled again
	status("NoReplicas", "no replica in the EndpointSlices of Service edge-ops")

	// A route in the proxy's configuration, then selecting no proxy: the
	// proxy leaves its status.proxies, and it says it is nowhere.
	rt := &v1alpha1.SentinelRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}, Spec: v1alpha1.SentinelRouteSpec{
		ProxySelection: v1alpha1.ProxySelection{ProxyRef: &v1alpha1.ProxyReference{Name: "edge"}}, BuiltinHandler: "status",
	}}
	if err := c.Create(ctx, rt); err != nil {
		t.Fatal(err)
	}
	routeStatus := func(reason string, proxies string) {
		t.Helper()
		eventually(t, 20*time.Second, "route "+reason+" in ["+proxies+"]", func() bool {
			if c.Get(ctx, client.ObjectKeyFromObject(rt), rt) != nil {
				return false
			}
			r := meta.FindStatusCondition(rt.Status.Conditions, v1alpha1.ConditionReady)
			return r != nil && r.Reason == reason && r.ObservedGeneration == rt.Generation && strings.Join(rt.Status.Proxies, ",") == proxies
		})
	}
	routeStatus("Reloading", "edge") // in the configuration; no replica yet
	update(t, c, rt, func(r *v1alpha1.SentinelRoute) {
		r.Spec.ProxyRef, r.Spec.ProxySelector = nil, &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "none"}}
	})
	routeStatus("NoProxySelected", "")

	// The ServiceMonitor CRD installed: the ServiceMonitor is made.
	installServiceMonitorCRD(t)
	updateProxy(t, c, p, func(s *v1alpha1.SentinelProxySpec) { s.Image = "sentinel:4" }) // a new generation: reconciled again
	sm := &unstructured.Unstructured{}
	sm.SetAPIVersion("monitoring.coreos.com/v1")
	sm.SetKind("ServiceMonitor")
	eventually(t, 30*time.Second, "ServiceMonitor made", func() bool {
		return c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, sm) == nil
	})
	if iv, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints"); len(iv) != 1 || iv[0].(map[string]any)["interval"] != "15s" || !metav1.IsControlledBy(sm, p) {
		t.Errorf("ServiceMonitor %v", sm.Object)
	}
	updateProxy(t, c, p, func(s *v1alpha1.SentinelProxySpec) { s.ServiceMonitor = nil })
	eventually(t, 20*time.Second, "ServiceMonitor deleted", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, sm))
	})
}

// testCert returns a self-signed certificate for edge-ops.
func testCert() ([]byte, []byte, error) { return testutil.CertPEM("edge-ops.proxy-status.svc") }

// installServiceMonitorCRD installs a minimal ServiceMonitor CRD.
func installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	s, _ := NewScheme()
	apiextensionsv1.AddToScheme(s)
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true),
				}}}},
		},
	}
	if err := c.Create(context.Background(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ServiceMonitor CRD established", func() bool {
		if c.Get(context.Background(), client.ObjectKeyFromObject(crd), crd) != nil {
			return false
		}
		for _, cd := range crd.Status.Conditions {
			if cd.Type == apiextensionsv1.Established && cd.Status == apiextensionsv1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

// updateProxy changes p's spec, again on a conflict with the operator's
// status writes.
func updateProxy(t *testing.T, c client.Client, p *v1alpha1.SentinelProxy, change func(*v1alpha1.SentinelProxySpec)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		change(&p.Spec)
		return c.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatal(err)
	}
}
