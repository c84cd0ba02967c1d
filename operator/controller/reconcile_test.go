package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// stateOf reads the state ConfigMap ns/<proxy>-state.
func stateOf(t *testing.T, c client.Client, ns, proxy string) (*state, *corev1.ConfigMap) {
	t.Helper()
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: proxy + v1alpha1.StateSuffix}, &cm); err != nil {
		return nil, nil
	}
	s, err := parseState([]byte(cm.Data[StateKey]))
	if err != nil {
		t.Fatal(err)
	}
	return s, &cm
}

// addrs lists the override addresses of upstream id ("-" when absent).
func addrs(s *state, id string) string {
	if s == nil {
		return "-"
	}
	for _, u := range s.Upstreams {
		if u.ID == id {
			var out []string
			for _, tg := range u.Override {
				out = append(out, tg.Address)
			}
			return strings.Join(out, ",")
		}
	}
	return "-"
}

// readyReason returns the Ready condition's reason of ns/name.
func readyReason(c client.Client, ns, name string) string {
	var u v1alpha1.SentinelUpstream
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &u); err != nil {
		return ""
	}
	if r := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady); r != nil && r.ObservedGeneration == u.Generation {
		return r.Reason
	}
	return ""
}

// TestStaticTargetsStateAndDrift: static targets are written (with
// replace, keeping what else the state holds); a change another writer
// (a replica's API) makes to the managed upstream is put back; a missing
// Service and an unusable state are reported in status.
func TestStaticTargetsStateAndDrift(t *testing.T) {
	kubetestNeed(t)
	c := kube(t)
	const ns = "static"
	namespace(t, c, ns)
	ctx := context.Background()
	// The state already holds a route switch made through the API.
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "edge-state", Namespace: ns},
		Data: map[string]string{StateKey: `{"version":1,"upstreams":[],"disabled_routes":["maintenance"]}`}}); err != nil {
		t.Fatal(err)
	}
	operator(t, Options{Namespaces: []string{ns}})
	u := &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: v1alpha1.SentinelUpstreamSpec{
		ProxyRef: v1alpha1.ProxyReference{Name: "edge"}, UpstreamID: "api-v2",
		Targets: []v1alpha1.Target{{Address: "10.0.0.1:8080", Weight: 3}, {Address: "[fd00::1]:8080"}},
	}}
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the static targets in the state", func() bool {
		s, _ := stateOf(t, c, ns, "edge")
		return addrs(s, "api-v2") == "10.0.0.1:8080,[fd00::1]:8080"
	})
	s, cm := stateOf(t, c, ns, "edge")
	if e := s.Upstreams[0]; !e.Replace || e.Origin != "api" || e.Version == 0 || e.Override[0].Weight != 3 || e.Override[1].Weight != 1 || len(s.Disabled) != 1 {
		t.Fatalf("state %+v", s)
	}
	if cm.Labels[StateLabel] != "true" {
		t.Errorf("labels %v", cm.Labels)
	}
	// Another writer changes the managed upstream: put back.
	cm.Data[StateKey] = `{"version":1,"upstreams":[{"id":"api-v2","origin":"config","override":[{"address":"10.9.9.9:80","weight":1,"state":"active","origin":"api"}],"override_base":[{"address":"10.0.0.9:80","weight":1,"state":"active","origin":"config"}],"version":5}],"disabled_routes":["maintenance"]}`
	if err := c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the operator puts its targets back", func() bool {
		s, _ := stateOf(t, c, ns, "edge")
		return addrs(s, "api-v2") == "10.0.0.1:8080,[fd00::1]:8080"
	})
	if s, _ := stateOf(t, c, ns, "edge"); s.Upstreams[0].Origin != "config" || s.Upstreams[0].Version <= 5 {
		t.Errorf("the entry's origin is kept and its version grows: %+v", s.Upstreams[0])
	}
	// A Service that does not exist.
	missing := &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: ns}, Spec: v1alpha1.SentinelUpstreamSpec{
		ProxyRef: v1alpha1.ProxyReference{Name: "edge"}, Service: &v1alpha1.ServiceTargets{Name: "nosuch", PortName: new("http")},
	}}
	if err := c.Create(ctx, missing); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "ServiceNotFound in status", func() bool { return readyReason(c, ns, "missing") == "ServiceNotFound" })
	// A state that is not Sentinel's: nothing written, reported.
	bad := &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: v1alpha1.SentinelUpstreamSpec{
		ProxyRef: v1alpha1.ProxyReference{Name: "other"}, Targets: []v1alpha1.Target{{Address: "10.0.0.1:80"}},
	}}
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other-state", Namespace: ns}, Data: map[string]string{StateKey: "not json"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "StateNotWritten in status", func() bool { return readyReason(c, ns, "bad") == "StateNotWritten" })
	// Deleting takes the entry out and keeps the rest.
	if err := c.Delete(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the entry removed, the route switch kept", func() bool {
		s, _ := stateOf(t, c, ns, "edge")
		return addrs(s, "api-v2") == "-" && len(s.Disabled) == 1
	})
}

// TestLeaderElection: two operators, one active; the leader stops
// without releasing its Lease (a crash): the other takes over after the
// lease duration and reconciles.
func TestLeaderElection(t *testing.T) {
	kubetestNeed(t)
	c := kube(t)
	const ns = "election"
	namespace(t, c, ns)
	ctx := context.Background()
	o := Options{Namespaces: []string{ns}, LeaderElection: true, LeaseNamespace: ns, KeepLeaseOnStop: true,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	stop1, m1 := operatorMgr(t, o)
	select {
	case <-m1.Elected():
	case <-time.After(15 * time.Second):
		t.Fatal("the first operator was not elected")
	}
	_, m2 := operatorMgr(t, o)
	u := &v1alpha1.SentinelUpstream{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: v1alpha1.SentinelUpstreamSpec{
		ProxyRef: v1alpha1.ProxyReference{Name: "edge"}, Targets: []v1alpha1.Target{{Address: "10.0.0.1:80"}},
	}}
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the leader reconciles", func() bool { s, _ := stateOf(t, c, ns, "edge"); return addrs(s, "web") == "10.0.0.1:80" })
	select {
	case <-m2.Elected():
		t.Fatal("two leaders")
	default:
	}
	var lease coordinationv1.Lease
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: LeaseName}, &lease); err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("lease: %v %+v", err, lease.Spec)
	}
	first := *lease.Spec.HolderIdentity
	stop1()
	start := time.Now()
	select {
	case <-m2.Elected():
	case <-time.After(15 * time.Second):
		t.Fatal("no takeover within 15s")
	}
	t.Logf("the second operator took over %v after the leader stopped (lease duration %v)", time.Since(start), o.LeaseDuration)
	if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	u.Spec.Targets[0].Address = "10.0.0.2:80"
	if err := c.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the new leader reconciles", func() bool { s, _ := stateOf(t, c, ns, "edge"); return addrs(s, "web") == "10.0.0.2:80" })
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: LeaseName}, &lease); err != nil || *lease.Spec.HolderIdentity == first {
		t.Fatalf("lease still held by %s: %v", first, err)
	}
}
