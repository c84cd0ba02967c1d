package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestProxyDoesNotTakeOverObjects: a SentinelProxy's objects have
// predictable names (its own for the Deployment and the Service), and the
// operator's server-side apply forces ownership: whoever may create a
// SentinelProxy could name it after an existing Service it may not write
// and have its selector and ports replaced (the Service's traffic sent to
// the proxy's pods, whose config the SentinelProxy gives) and the Service
// made the proxy's (deleted with it). An existing object the proxy does
// not control is left alone and the proxy is not Ready, naming it.
func TestProxyDoesNotTakeOverObjects(t *testing.T) {
	kubetest.Need(t, env)
	c := kube(t)
	const ns = "takeover-op"
	namespace(t, c, ns)
	ctx := context.Background()
	operator(t, Options{Namespaces: []string{ns}, ReplicaTimeout: 2 * time.Second})
	certPEM, keyPEM, err := testutil.CertPEM("edge-ops." + ns + ".svc")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "edge-admin-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}); err != nil {
		t.Fatal(err)
	}
	theirs := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "payments"}, Ports: []corev1.ServicePort{{Name: "https", Port: 443}},
	}}
	if err := c.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.SentinelProxy{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns}, Spec: v1alpha1.SentinelProxySpec{
		Image:     "ghcr.io/sentinel-proxy/sentinel:test",
		Listeners: []v1alpha1.Listener{{Name: "main", Port: 8080}},
		AdminAPI:  v1alpha1.AdminAPI{TLSSecretName: "edge-admin-tls"},
	}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var msg string
	eventually(t, 20*time.Second, "the SentinelProxy reports the Service in the way", func() bool {
		var got v1alpha1.SentinelProxy
		if c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, &got) != nil {
			return false
		}
		cd := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if cd == nil {
			return false
		}
		msg = cd.Message
		return cd.Status == metav1.ConditionFalse && cd.Reason == "ApplyFailed" &&
			strings.Contains(cd.Message, "Service "+ns+"/edge exists and is not SentinelProxy edge's")
	})
	var svc corev1.Service
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, &svc); err != nil {
		t.Fatal(err)
	}
	if len(svc.OwnerReferences) != 0 || svc.Spec.Selector["app"] != "payments" || len(svc.Spec.Selector) != 1 ||
		len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 {
		t.Errorf("the Service was taken over (status: %s): owners %v, selector %v, ports %v", msg, svc.OwnerReferences, svc.Spec.Selector, svc.Spec.Ports)
	}
}
