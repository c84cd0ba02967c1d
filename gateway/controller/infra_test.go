package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestGatewayInfrastructure: with Infrastructure (what sentinel-operator
// --gateway-api does), each Gateway gets a Deployment and a Service
// "<gateway>-sentinel" owned by it: the listeners' ports, sentinel run on
// the ConfigMap with --watch, the config's hash, the infrastructure
// labels; a listener change updates both; the Gateway's address is the
// Service's (its load balancer's once it has one); a SentinelProxy named
// by the Gateway's or the class's parametersRef gives image, replicas and
// Service type, and a missing one makes the Gateway (or class)
// InvalidParameters.
func TestGatewayInfrastructure(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	s := scheme(t)
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	name := gwv1.GatewayController("sentinel-proxy.io/infra-test")
	startDeploying(t, s, controller.Options{ControllerName: name})
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	mkns(t, c, "infra")
	if err := c.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "infra-test"}, Spec: gwv1.GatewayClassSpec{ControllerName: name}}); err != nil {
		t.Fatal(err)
	}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "infra-test",
		Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
			{Name: "alt", Port: 8080, Protocol: gwv1.HTTPProtocolType, Hostname: ptr.To[gwv1.Hostname]("a.example.com")},
			{Name: "alt2", Port: 8080, Protocol: gwv1.HTTPProtocolType, Hostname: ptr.To[gwv1.Hostname]("b.example.com")},
		},
		Infrastructure: &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"team": "web"}},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "infra", Name: "edge-sentinel"}
	check := func(wantPorts []int32) {
		t.Helper()
		eventually(t, 20*time.Second, func() string {
			var g gwv1.Gateway
			var d appsv1.Deployment
			var svc corev1.Service
			var cm corev1.ConfigMap
			for _, o := range []struct {
				k types.NamespacedName
				o client.Object
			}{{client.ObjectKeyFromObject(gw), &g}, {key, &d}, {key, &svc}, {types.NamespacedName{Namespace: "infra", Name: "edge-sentinel-config"}, &cm}} {
				if err := c.Get(ctx, o.k, o.o); err != nil {
					return err.Error()
				}
			}
			if s := condOf(g.Status.Conditions, "Programmed"); s != "Programmed=True/Programmed" || g.Status.Conditions[0].ObservedGeneration != g.Generation {
				return "Gateway " + s
			}
			if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != svc.Spec.ClusterIP {
				return fmt.Sprintf("addresses %+v, Service's cluster IP %s", g.Status.Addresses, svc.Spec.ClusterIP)
			}
			sum := sha256.Sum256([]byte(cm.Data[controller.ConfigKey]))
			if h := d.Annotations[controller.ConfigHashAnnotation]; h != hex.EncodeToString(sum[:]) {
				return "config hash " + h
			}
			for _, o := range []metav1.Object{&d, &svc} {
				refs := o.GetOwnerReferences()
				if len(refs) != 1 || refs[0].UID != g.UID || refs[0].Kind != "Gateway" || !ptr.Deref(refs[0].Controller, false) {
					return fmt.Sprintf("%s owner references %+v", o.GetName(), refs)
				}
				if o.GetLabels()["team"] != "web" || o.GetLabels()[controller.GatewayNameLabel] != "edge" {
					return fmt.Sprintf("%s labels %v", o.GetName(), o.GetLabels())
				}
			}
			pod := d.Spec.Template.Spec
			ctr := pod.Containers[0]
			if ctr.Image != "sentinel:test" || !slices.Equal(ctr.Args, []string{"run", "--config", "/etc/sentinel/caddy.json", "--watch"}) {
				return fmt.Sprintf("container %s %v", ctr.Image, ctr.Args)
			}
			if pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != "edge-sentinel-config" || ctr.VolumeMounts[0].MountPath != "/etc/sentinel" {
				return fmt.Sprintf("config volume %+v", pod.Volumes[0])
			}
			if !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) || len(pod.SecurityContext.Sysctls) != 1 || ptr.Deref(ctr.SecurityContext.ReadOnlyRootFilesystem, false) != true {
				return fmt.Sprintf("security %+v", pod.SecurityContext)
			}
			if d.Spec.Template.Labels["team"] != "web" || ptr.Deref(d.Spec.Replicas, 0) != 2 {
				return "pod template labels or replicas"
			}
			var cp, sp []int32
			for _, x := range ctr.Ports {
				cp = append(cp, x.ContainerPort)
			}
			for _, x := range svc.Spec.Ports {
				sp = append(sp, x.Port)
			}
			if !slices.Equal(cp, wantPorts) || !slices.Equal(sp, wantPorts) {
				return fmt.Sprintf("container ports %v, Service ports %v, want %v", cp, sp, wantPorts)
			}
			if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
				return "Service type " + string(svc.Spec.Type)
			}
			return ""
		})
	}
	check([]int32{80, 8080})
	var d0 appsv1.Deployment
	if err := c.Get(ctx, key, &d0); err != nil {
		t.Fatal(err)
	}

	// A listener added: the Deployment and the Service follow, and so
	// does the config (its hash).
	var g gwv1.Gateway
	if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
		t.Fatal(err)
	}
	g.Spec.Listeners = append(g.Spec.Listeners, gwv1.Listener{Name: "extra", Port: 9090, Protocol: gwv1.HTTPProtocolType})
	if err := c.Update(ctx, &g); err != nil {
		t.Fatal(err)
	}
	check([]int32{80, 8080, 9090})
	var d1 appsv1.Deployment
	if err := c.Get(ctx, key, &d1); err != nil {
		t.Fatal(err)
	}
	if d1.Annotations[controller.ConfigHashAnnotation] == d0.Annotations[controller.ConfigHashAnnotation] {
		t.Error("the config hash did not change with the listeners")
	}
	if _, ok := d1.Spec.Template.Annotations[controller.ConfigHashAnnotation]; ok {
		t.Error("the pod template carries the config hash without RolloutOnConfigChange (every endpoint change would roll the pods)")
	}

	// The load balancer's address, once it has one.
	var svc corev1.Service
	if err := c.Get(ctx, key, &svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
	if err := c.Status().Update(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != "203.0.113.7" {
			return fmt.Sprintf("addresses %+v", g.Status.Addresses)
		}
		return ""
	})

	// A SentinelProxy as the Gateway's parameters.
	proxy := &v1alpha1.SentinelProxy{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "big"}, Spec: v1alpha1.SentinelProxySpec{
		Image: "registry.example/sentinel:9", Replicas: ptr.To[int32](3), ServiceType: corev1.ServiceTypeNodePort,
		Listeners: []v1alpha1.Listener{{Name: "http", Port: 8080, Protocol: "http"}},
		AdminAPI:  v1alpha1.AdminAPI{TLSSecretName: "big-admin-tls"},
	}}
	if err := c.Create(ctx, proxy); err != nil {
		t.Fatal(err)
	}
	withParams := func(gwName, proxyName string) *gwv1.Gateway {
		g := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: gwName}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "infra-test",
			Listeners:        []gwv1.Listener{{Name: "http", Port: 8000, Protocol: gwv1.HTTPProtocolType}},
			Infrastructure: &gwv1.GatewayInfrastructure{ParametersRef: &gwv1.LocalParametersReference{
				Group: gwv1.Group(v1alpha1.GroupVersion.Group), Kind: "SentinelProxy", Name: proxyName}},
		}}
		if err := c.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	withParams("sized", "big")
	eventually(t, 20*time.Second, func() string {
		var d appsv1.Deployment
		var svc corev1.Service
		k := types.NamespacedName{Namespace: "infra", Name: "sized-sentinel"}
		if err := c.Get(ctx, k, &d); err != nil {
			return err.Error()
		}
		if err := c.Get(ctx, k, &svc); err != nil {
			return err.Error()
		}
		if d.Spec.Template.Spec.Containers[0].Image != proxy.Spec.Image || ptr.Deref(d.Spec.Replicas, 0) != 3 || svc.Spec.Type != corev1.ServiceTypeNodePort {
			return fmt.Sprintf("image %s, replicas %d, Service type %s", d.Spec.Template.Spec.Containers[0].Image, ptr.Deref(d.Spec.Replicas, 0), svc.Spec.Type)
		}
		if len(d.Spec.Template.Spec.SecurityContext.Sysctls) != 0 {
			return "a sysctl for ports above 1023"
		}
		return ""
	})
	missing := withParams("lost", "nothere")
	eventually(t, 20*time.Second, func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(missing), &g); err != nil {
			return err.Error()
		}
		if s := condOf(g.Status.Conditions, "Accepted"); s != "Accepted=False/InvalidParameters" {
			return "Gateway " + s
		}
		if s := condOf(g.Status.Conditions, "Programmed"); s != "Programmed=False/Invalid" {
			return "Gateway " + s
		}
		return ""
	})

	// The class's parametersRef: a missing SentinelProxy, then one that exists.
	gc := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "infra-params"}, Spec: gwv1.GatewayClassSpec{ControllerName: name,
		ParametersRef: &gwv1.ParametersReference{Group: gwv1.Group(v1alpha1.GroupVersion.Group), Kind: "SentinelProxy", Name: "nothere", Namespace: ptr.To[gwv1.Namespace]("infra")}}}
	if err := c.Create(ctx, gc); err != nil {
		t.Fatal(err)
	}
	classCond := func(want string) {
		t.Helper()
		eventually(t, 20*time.Second, func() string {
			var g gwv1.GatewayClass
			if err := c.Get(ctx, client.ObjectKeyFromObject(gc), &g); err != nil {
				return err.Error()
			}
			if s := condOf(g.Status.Conditions, "Accepted"); s != want {
				return "class " + s
			}
			return ""
		})
	}
	classCond("Accepted=False/InvalidParameters")
	if err := c.Get(ctx, client.ObjectKeyFromObject(gc), gc); err != nil {
		t.Fatal(err)
	}
	gc.Spec.ParametersRef.Name = "big"
	if err := c.Update(ctx, gc); err != nil {
		t.Fatal(err)
	}
	classCond("Accepted=True/Accepted")
	byClass := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "byclass"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "infra-params", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}
	if err := c.Create(ctx, byClass); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		var d appsv1.Deployment
		if err := c.Get(ctx, types.NamespacedName{Namespace: "infra", Name: "byclass-sentinel"}, &d); err != nil {
			return err.Error()
		}
		if ptr.Deref(d.Spec.Replicas, 0) != 3 {
			return fmt.Sprintf("replicas %d", ptr.Deref(d.Spec.Replicas, 0))
		}
		return ""
	})
}

// startDeploying starts a manager running the Gateway controller as
// sentinel-operator --gateway-api does (a ConfigMapProgrammer that also
// deploys each Gateway: Infrastructure), with o's other options; it stops
// when the test ends.
func startDeploying(t *testing.T, s *runtime.Scheme, o controller.Options) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	o.Programmer = &controller.ConfigMapProgrammer{C: mgr.GetClient(), Reader: mgr.GetAPIReader(), Infra: &controller.Infrastructure{Image: "sentinel:test"}}
	o.SeveralInProcess = true
	if err := controller.Setup(mgr, o); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
