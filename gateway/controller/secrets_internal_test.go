package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestSecretIdentity: the Secrets' metadata cache keeps a Secret's
// identity only, never its annotations (kubectl apply's
// last-applied-configuration holds the whole data), labels or managed
// fields.
func TestSecretIdentity(t *testing.T) {
	in := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: "cert", UID: "u1", ResourceVersion: "42",
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"tls.key":"c2VjcmV0"}}`},
		Labels:        map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	out, err := secretIdentity(in)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(*metav1.PartialObjectMetadata)
	want := metav1.ObjectMeta{Namespace: "ns", Name: "cert", UID: "u1", ResourceVersion: "42"}
	if m.Kind != "Secret" || m.Namespace != want.Namespace || m.Name != want.Name || m.UID != want.UID || m.ResourceVersion != want.ResourceVersion ||
		m.Annotations != nil || m.Labels != nil || m.ManagedFields != nil {
		t.Errorf("kept %+v", m)
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/cert"}
	if got, err := secretIdentity(tomb); err != nil || got != tomb {
		t.Errorf("tombstone: %v %v", got, err)
	}
}

// TestCertificateRefs: the Secrets a Gateway's listeners name, in the
// Gateway's namespace unless the ref says otherwise; refs to other
// kinds and listeners without TLS are left out.
func TestCertificateRefs(t *testing.T) {
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "gw"}, Spec: gwv1.GatewaySpec{Listeners: []gwv1.Listener{
		{Name: "http"},
		{Name: "a", TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{
			{Name: "local"},
			{Name: "other", Namespace: ptr.To(gwv1.Namespace("certs")), Kind: ptr.To(gwv1.Kind("Secret")), Group: ptr.To(gwv1.Group(""))},
			{Name: "cm", Kind: ptr.To(gwv1.Kind("ConfigMap"))},
			{Name: "x", Group: ptr.To(gwv1.Group("example.com"))},
		}}},
	}}}
	got := certificateRefs(gw)
	want := []types.NamespacedName{{Namespace: "gw", Name: "local"}, {Namespace: "certs", Name: "other"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestSecretGranted: a Secret of another namespace is read only when a
// ReferenceGrant there admits Gateways of the Gateway's namespace and
// names the Secret (or every Secret).
func TestSecretGranted(t *testing.T) {
	k := types.NamespacedName{Namespace: "certs", Name: "edge"}
	grant := func(ns, fromGroup, fromKind, fromNS, toKind string, name *string) *gwv1.ReferenceGrant {
		g := &gwv1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: ns}, Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.Group(fromGroup), Kind: gwv1.Kind(fromKind), Namespace: gwv1.Namespace(fromNS)}},
			To:   []gwv1.ReferenceGrantTo{{Kind: gwv1.Kind(toKind)}},
		}}
		if name != nil {
			g.Spec.To[0].Name = ptr.To(gwv1.ObjectName(*name))
		}
		return g
	}
	for _, c := range []struct {
		name string
		g    *gwv1.ReferenceGrant
		want bool
	}{
		{"every Secret", grant("certs", gwv1.GroupName, "Gateway", "gw", "Secret", nil), true},
		{"this Secret", grant("certs", gwv1.GroupName, "Gateway", "gw", "Secret", ptr.To("edge")), true},
		{"another Secret", grant("certs", gwv1.GroupName, "Gateway", "gw", "Secret", ptr.To("other")), false},
		{"another namespace's grant", grant("elsewhere", gwv1.GroupName, "Gateway", "gw", "Secret", nil), false},
		{"from HTTPRoutes", grant("certs", gwv1.GroupName, "HTTPRoute", "gw", "Secret", nil), false},
		{"from another namespace", grant("certs", gwv1.GroupName, "Gateway", "other", "Secret", nil), false},
		{"to Services", grant("certs", gwv1.GroupName, "Gateway", "gw", "Service", nil), false},
		{"from another group", grant("certs", "example.com", "Gateway", "gw", "Secret", nil), false},
	} {
		if got := secretGranted([]*gwv1.ReferenceGrant{c.g}, "gw", k); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if secretGranted(nil, "gw", k) {
		t.Error("granted without a grant")
	}
}
