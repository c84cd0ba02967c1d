package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/kubestore"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// apply creates every object of a manifest file (the API server
// validates them).
func apply(t *testing.T, c client.Client, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "operator", file))
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if u.Object == nil {
			continue
		}
		if err := c.Create(context.Background(), &u); err != nil {
			t.Fatalf("%s: %s %s: %v", file, u.GetKind(), u.GetName(), err)
		}
	}
}

// TestManifestsLeastPrivilege: deploy/operator's manifests are accepted
// by the API server; the operator running with exactly the generated
// ClusterRole (as its service account, with leader election) reconciles;
// a replica with exactly replica-rbac.yaml's Role reads, watches and
// updates the state.
func TestManifestsLeastPrivilege(t *testing.T) {
	kubetestNeed(t)
	c := kube(t)
	namespace(t, c, "edge")
	apply(t, c, "rbac/role.yaml")
	apply(t, c, "operator.yaml")
	apply(t, c, "replica-rbac.yaml")

	sa, err := env.AddUser(envtest.User{Name: "system:serviceaccount:sentinel-system:sentinel-operator", Groups: []string{"system:serviceaccounts"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{LeaderElection: true, LeaseNamespace: "sentinel-system", SeveralInProcess: true}
	mgr, err := NewManager(sa.Config(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	u := &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "edge"}, Spec: v1alpha1.SentinelUpstreamSpec{
		ProxyRef: v1alpha1.ProxyReference{Name: "edge"}, Targets: []v1alpha1.Target{{Address: "10.0.0.1:80"}},
	}}
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the operator with its ClusterRole writes the state", func() bool {
		s, _ := stateOf(t, c, "edge", "edge")
		return addrs(s, "web") == "10.0.0.1:80" && readyReason(c, "edge", "web") == "Applied"
	})

	// A Service that does not exist: read with the role's rights.
	missing := &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: "edge"}, Spec: v1alpha1.SentinelUpstreamSpec{
		ProxyRef: v1alpha1.ProxyReference{Name: "edge"}, Service: &v1alpha1.ServiceTargets{Name: "nosuch", PortName: new("http")},
	}}
	if err := c.Create(ctx, missing); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "ServiceNotFound with the ClusterRole's rights", func() bool { return readyReason(c, "edge", "missing") == "ServiceNotFound" })

	// A SentinelProxy: its objects (a Role and RoleBinding among them:
	// the operator grants only rights it holds), with the role's rights.
	certPEM, keyPEM, _ := testutil.CertPEM("proxy-ops.edge.svc")
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "proxy-tls", Namespace: "edge"}, Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.SentinelProxy{ObjectMeta: metav1.ObjectMeta{Name: "proxy", Namespace: "edge"}, Spec: v1alpha1.SentinelProxySpec{
		Image: "sentinel:1", Listeners: []v1alpha1.Listener{{Name: "main", Port: 8080}}, AdminAPI: v1alpha1.AdminAPI{TLSSecretName: "proxy-tls"},
		Disruption: &v1alpha1.Disruption{MinAvailable: ptr.To(intstr.FromInt32(1))}, Autoscaling: &v1alpha1.Autoscaling{MinReplicas: 2, MaxReplicas: 3},
		ServiceMonitor: &v1alpha1.ServiceMonitor{},
	}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the SentinelProxy reconciled with the ClusterRole's rights", func() bool {
		if c.Get(ctx, client.ObjectKeyFromObject(p), p) != nil {
			return false
		}
		r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Reason == "NoReplicas"
	})
	for _, o := range []client.Object{&appsv1.Deployment{}, &rbacv1.RoleBinding{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}} {
		name := "proxy"
		if _, ok := o.(*rbacv1.RoleBinding); ok {
			name = "proxy-sentinel"
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "edge", Name: name}, o); err != nil {
			t.Errorf("%T: %v", o, err)
		}
	}

	// A replica as the proxy's service account.
	dir := t.TempDir()
	kc := env.Kubeconfig(t, dir, "system:serviceaccount:edge:edge-sentinel", "system:serviceaccounts")
	cctx, ccancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer ccancel()
	st := &kubestore.Kubernetes{Kubeconfig: kc, Namespace: "edge", Name: "edge-state"}
	if err := st.Provision(cctx); err != nil {
		t.Fatal(err)
	}
	data, rev, err := st.LoadRevision(ctx)
	if err != nil || !bytes.Contains(data, []byte("10.0.0.1:80")) {
		t.Fatalf("replica reads the state: %v %s", err, data)
	}
	seen := make(chan []byte, 4)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go st.Watch(wctx, rev, func(d []byte, _ int64) { seen <- d })
	if _, err := st.SaveIf(ctx, bytes.Replace(data, []byte("10.0.0.1:80"), []byte("10.0.0.7:80"), 1), rev); err != nil {
		t.Fatalf("replica updates the state: %v", err)
	}
	select {
	case d := <-seen:
		if !bytes.Contains(d, []byte("10.0.0.7:80")) {
			t.Fatalf("watched %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the replica's watch saw nothing")
	}
}
