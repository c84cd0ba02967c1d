package controller_test

import (
	"context"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestRouteCRDInstalledLater: the controller starts while the TCPRoute
// and SentinelPlugin CRDs are not installed; once they are, the
// controller watches TCPRoutes and gives them status, and resolves an
// HTTPRoute's ExtensionRef to a SentinelPlugin, without a restart.
func TestRouteCRDInstalledLater(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	s := scheme(t)
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	// Take the TCPRoute and SentinelPlugin CRDs away (they come back
	// below, for the other tests too).
	var removed []*apiextensionsv1.CustomResourceDefinition
	for _, name := range []string{"tcproutes." + gwv1.GroupName, "sentinelplugins." + v1alpha1.GroupVersion.Group} {
		removed = append(removed, removeCRD(t, c, name))
	}
	name := gwv1.GatewayController("sentinel-proxy.io/late-crd-test")
	startDeploying(t, scheme(t), controller.Options{ControllerName: name, CRDCheckInterval: 200 * time.Millisecond})

	mkns(t, c, "late")
	if err := c.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "late-crd"}, Spec: gwv1.GatewayClassSpec{ControllerName: name}}); err != nil {
		t.Fatal(err)
	}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "late", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "late-crd", Listeners: []gwv1.Listener{{Name: "tcp", Port: 5432, Protocol: gwv1.TCPProtocolType}, {Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType}},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if len(g.Status.Listeners) != 2 {
			return "no listener status yet"
		}
		return ""
	})
	// An HTTPRoute naming a SentinelPlugin before its kind is served:
	// BackendNotFound.
	web := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "late", Name: "web"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", SectionName: ptr.To(gwv1.SectionName("http"))}}},
		Rules: []gwv1.HTTPRouteRule{{Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{
			Group: gwv1.Group(v1alpha1.GroupVersion.Group), Kind: "SentinelPlugin", Name: "guard"}}}}},
	}}
	if err := c.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	webResolved := func(want string) {
		t.Helper()
		eventually(t, 30*time.Second, func() string {
			var r gwv1.HTTPRoute
			if err := c.Get(ctx, client.ObjectKeyFromObject(web), &r); err != nil {
				return err.Error()
			}
			if len(r.Status.Parents) != 1 {
				return "no status from the controller"
			}
			if s := condOf(r.Status.Parents[0].Conditions, "ResolvedRefs"); s != want {
				return "HTTPRoute " + s
			}
			return ""
		})
	}
	webResolved("ResolvedRefs=False/BackendNotFound")
	for _, crd := range removed {
		reinstallCRD(t, c, crd)
	}
	plugin := &v1alpha1.SentinelPlugin{ObjectMeta: metav1.ObjectMeta{Namespace: "late", Name: "guard"}, Spec: v1alpha1.SentinelPluginSpec{Path: "/opt/guard.wasm"}}
	eventually(t, 30*time.Second, func() string {
		if err := c.Create(ctx, plugin); err != nil && !apierrors.IsAlreadyExists(err) {
			return err.Error() // the API server may need a moment to serve the kind
		}
		return ""
	})
	webResolved("ResolvedRefs=True/ResolvedRefs")
	route := &gwv1.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "late", Name: "db"}, Spec: gwv1.TCPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", SectionName: ptr.To(gwv1.SectionName("tcp"))}}},
		Rules: []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{
			Name: "db", Port: ptr.To[gwv1.PortNumber](5432)}}}}},
	}}
	eventually(t, 30*time.Second, func() string {
		if err := c.Create(ctx, route); err != nil && !apierrors.IsAlreadyExists(err) {
			return err.Error() // the API server may need a moment to serve the kind
		}
		return ""
	})
	eventually(t, 30*time.Second, func() string {
		var r gwv1.TCPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(route), &r); err != nil {
			return err.Error()
		}
		if len(r.Status.Parents) != 1 {
			return "no status from the controller"
		}
		if s := condOf(r.Status.Parents[0].Conditions, "Accepted"); s != "Accepted=True/Accepted" {
			return "TCPRoute " + s
		}
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if g.Status.Listeners[0].AttachedRoutes != 1 {
			return "the listener does not count the TCPRoute"
		}
		return ""
	})
}

// removeCRD deletes CRD name, waits until it is gone and returns it; the
// test's end installs it again if the test did not.
func removeCRD(t *testing.T, c client.Client, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	ctx := context.Background()
	crdName := types.NamespacedName{Name: name}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, crdName, &crd); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, crdName, &got); apierrors.IsNotFound(err) || got.DeletionTimestamp != nil {
			reinstallCRD(t, c, &crd)
		}
	})
	eventually(t, 30*time.Second, func() string {
		err := c.Get(ctx, crdName, &apiextensionsv1.CustomResourceDefinition{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return "the CRD " + name + " is still there"
	})
	return &crd
}

// reinstallCRD creates crd again and waits until it is established.
func reinstallCRD(t *testing.T, c client.Client, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	ctx := context.Background()
	crdName := types.NamespacedName{Name: crd.Name}
	eventually(t, 30*time.Second, func() string {
		fresh := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: crd.Name, Labels: crd.Labels, Annotations: crd.Annotations}, Spec: crd.Spec}
		if err := c.Create(ctx, fresh); err != nil && !apierrors.IsAlreadyExists(err) {
			return err.Error()
		}
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, crdName, &got); err != nil {
			return err.Error()
		}
		if got.DeletionTimestamp != nil {
			return "the old CRD is still being deleted"
		}
		for _, cd := range got.Status.Conditions {
			if cd.Type == apiextensionsv1.Established && cd.Status == apiextensionsv1.ConditionTrue {
				return ""
			}
		}
		return "not established yet"
	})
}
