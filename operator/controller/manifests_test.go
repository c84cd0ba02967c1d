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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
