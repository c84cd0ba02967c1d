package discovery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
)

// kubeUser makes namespace ns and a user who may only list and watch its
// EndpointSlices (what docs/discovery.md asks for), and returns the
// admin client and the user's kubeconfig.
func kubeUser(t *testing.T, ns string) (*kubernetes.Clientset, string) {
	t.Helper()
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := "discovery-" + ns
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel-discovery", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel-discovery", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sentinel-discovery"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cs, env.Kubeconfig(t, t.TempDir(), user)
}

// slice is an EndpointSlice of service svc with ports (name → port) and
// endpoints (address → ready).
func slice(name, svc string, ports map[string]int32, eps map[string]bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for n, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: &n, Port: &p})
	}
	for a, ready := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

// TestKubernetesDiscovery follows the EndpointSlices of a Service on a
// real kube-apiserver, as a user with only list and watch: ready
// endpoints on the named port, from every slice of the Service; a change
// is seen through the watch (the refresh interval is an hour); a Service
// without endpoints keeps the last good set.
func TestKubernetesDiscovery(t *testing.T) {
	kubetest.Need(t, env)
	cs, kc := kubeUser(t, "disc")
	ctx := context.Background()
	ports := map[string]int32{"http": 8080, "metrics": 9090}
	es := cs.DiscoveryV1().EndpointSlices("disc")
	if _, err := es.Create(ctx, slice("api-1", "api", ports, map[string]bool{"10.0.0.1": true, "10.0.0.2": false}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Create(ctx, slice("api-2", "api", ports, map[string]bool{"10.0.0.3": true}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Create(ctx, slice("other-1", "other", ports, map[string]bool{"10.0.0.9": true}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := &Kubernetes{Kubeconfig: kc, Namespace: "disc", Service: "api", PortName: "http", RefreshInterval: caddy.Duration(time.Hour)}
	cctx := provision(t, k)
	s := run(t, k)
	s.await(t, "10.0.0.1:8080,10.0.0.3:8080")

	// A pod becomes ready, another slice goes: seen through the watch.
	if _, err := es.Update(ctx, slice("api-1", "api", ports, map[string]bool{"10.0.0.1": true, "10.0.0.2": true}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := es.Delete(ctx, "api-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.await(t, "10.0.0.1:8080,10.0.0.2:8080")

	// No endpoint left: the last good set stays.
	n := s.count()
	if err := es.Delete(ctx, "api-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return metric(t, cctx, RefreshName, ResultEmpty) >= 1 })
	if s.count() != n {
		t.Errorf("an empty Service published %q", s.last())
	}
	if _, err := es.Create(ctx, slice("api-3", "api", ports, map[string]bool{"10.0.0.4": true}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.await(t, "10.0.0.4:8080")
}

// TestKubernetesErrors: several ports need port-name; a namespace the
// user may not read is an error that keeps nothing published.
func TestKubernetesErrors(t *testing.T) {
	kubetest.Need(t, env)
	cs, kc := kubeUser(t, "disc-err")
	ctx := context.Background()
	if _, err := cs.DiscoveryV1().EndpointSlices("disc-err").Create(ctx,
		slice("two-1", "two", map[string]int32{"a": 1, "b": 2}, map[string]bool{"10.0.0.1": true}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := &Kubernetes{Kubeconfig: kc, Namespace: "disc-err", Service: "two"}
	provision(t, k)
	if _, _, err := k.lookup(ctx); err == nil || !strings.Contains(err.Error(), "set port-name") {
		t.Errorf("two ports: %v", err)
	}
	k.PortName = "b"
	if ts, _, err := k.lookup(ctx); err != nil || show(ts) != "10.0.0.1:2" {
		t.Errorf("port b: %s %v", show(ts), err)
	}
	k.Namespace = "kube-system"
	if _, _, err := k.lookup(ctx); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("forbidden namespace: %v", err)
	}
	c, cancel := caddy.NewContext(caddy.Context{Context: ctx})
	defer cancel()
	if err := (&Kubernetes{}).Provision(c); err == nil {
		t.Error("no service accepted")
	}
	if err := (&Kubernetes{Service: "x"}).Provision(c); err == nil || !strings.Contains(err.Error(), "not in a cluster") {
		t.Errorf("no kubeconfig outside a cluster: %v", err)
	}
	if err := (&Kubernetes{Service: "x", Kubeconfig: "/nonexistent"}).Provision(c); err == nil {
		t.Error("missing kubeconfig accepted")
	}
}
