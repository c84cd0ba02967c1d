package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestGatewayDoesNotTakeOverObjects: the names of a Gateway's objects are
// predictable (<gateway>-sentinel, <gateway>-sentinel-config), so
// whoever may create a Gateway could otherwise name it after an existing
// Deployment, Service or ConfigMap it may not write, and have the
// controller replace its pod template, its selector (the Service's
// traffic to the Gateway's pods, type LoadBalancer) or its data, and
// make it the Gateway's (deleted with it). An existing object that is
// not the Gateway's is left alone and the Gateway is not Programmed,
// with a message naming the object.
func TestGatewayDoesNotTakeOverObjects(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	s := scheme(t)
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	name := gwv1.GatewayController("sentinel-proxy.io/takeover-test")
	startDeploying(t, s, controller.Options{ControllerName: name})
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "takeover"
	mkns(t, c, ns)
	if err := c.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "takeover-test"}, Spec: gwv1.GatewayClassSpec{ControllerName: name}}); err != nil {
		t.Fatal(err)
	}
	app := map[string]string{"app": "payments"}
	theirs := map[string]client.Object{
		"Deployment": &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dep-sentinel"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: app},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: app},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "payments", Image: "payments:1"}}}},
		}},
		"Service": &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "svc-sentinel"}, Spec: corev1.ServiceSpec{
			Selector: app, Ports: []corev1.ServicePort{{Name: "http", Port: 8080}},
		}},
		"ConfigMap": &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cm-sentinel-config"}, Data: map[string]string{"settings": "theirs"}},
	}
	gateways := map[string]string{"Deployment": "dep", "Service": "svc", "ConfigMap": "cm"}
	for _, o := range theirs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for kind, gwName := range gateways {
		gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gwName}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "takeover-test",
			Listeners:        []gwv1.Listener{{Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType}},
		}}
		if err := c.Create(ctx, gw); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() string {
			var g gwv1.Gateway
			if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
				return err.Error()
			}
			for _, cd := range g.Status.Conditions {
				if cd.Type == "Programmed" && cd.Status == metav1.ConditionFalse && strings.Contains(cd.Message, "is not Gateway "+gwName+"'s") &&
					strings.Contains(cd.Message, theirs[kind].GetName()) {
					return ""
				}
			}
			return fmt.Sprintf("%s: Gateway %s conditions %+v", kind, gwName, g.Status.Conditions)
		})
	}
	// Give a wrong update time to land, then check nothing changed.
	time.Sleep(500 * time.Millisecond)
	var d appsv1.Deployment
	var svc corev1.Service
	var cm corev1.ConfigMap
	for _, o := range []struct {
		k types.NamespacedName
		o client.Object
	}{{types.NamespacedName{Namespace: ns, Name: "dep-sentinel"}, &d}, {types.NamespacedName{Namespace: ns, Name: "svc-sentinel"}, &svc}, {types.NamespacedName{Namespace: ns, Name: "cm-sentinel-config"}, &cm}} {
		if err := c.Get(ctx, o.k, o.o); err != nil {
			t.Fatal(err)
		}
		if refs := o.o.GetOwnerReferences(); len(refs) != 0 {
			t.Errorf("%s got owner references %+v", o.k, refs)
		}
	}
	if ctr := d.Spec.Template.Spec.Containers; len(ctr) != 1 || ctr[0].Image != "payments:1" {
		t.Errorf("the Deployment's pod template was replaced: %+v", ctr)
	}
	if svc.Spec.Selector["app"] != "payments" || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("the Service was replaced: type %s, selector %v", svc.Spec.Type, svc.Spec.Selector)
	}
	if len(cm.Data) != 1 || cm.Data["settings"] != "theirs" {
		t.Errorf("the ConfigMap was replaced: %v", cm.Data)
	}
}
