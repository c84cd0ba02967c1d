package controller_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestRBACAndConfigMapDelivery: the controller, as sentinel-operator
// --gateway-api runs it (ConfigMapProgrammer), with no rights but those
// of deploy/gateway-api/rbac.yaml, accepts its class, writes the
// Gateway's config into its ConfigMap and reports it Programmed with the
// address of the Gateway's Service; an HTTPS listener's Secret is read.
func TestRBACAndConfigMapDelivery(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	admin, err := client.New(env.Config, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "gateway-api", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil {
		t.Fatalf("deploy/gateway-api/rbac.yaml: %v", err)
	}
	role.Name = "gw-rbac-test"
	if err := admin.Create(ctx, &role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gw-rbac-test"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "gw-operator", APIGroup: rbacv1.GroupName}}}
	if err := admin.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig(t, t.TempDir(), "gw-operator"))
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme(t), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	name := gwv1.GatewayController("sentinel-proxy.io/rbac-test")
	p := &controller.ConfigMapProgrammer{C: mgr.GetClient(), Reader: mgr.GetAPIReader()}
	if err := controller.Setup(mgr, controller.Options{ControllerName: name, Programmer: p, SeveralInProcess: true}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	mkns(t, admin, "rbac")
	if err := admin.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "rbac-test"}, Spec: gwv1.GatewayClassSpec{ControllerName: name}}); err != nil {
		t.Fatal(err)
	}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "rbac", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "rbac-test", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}},
	}}
	if err := admin.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	// Without the Gateway's Service: not Programmed, the message says why.
	eventually(t, 15*time.Second, func() string {
		var g gwv1.Gateway
		if err := admin.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if s := condOf(g.Status.Conditions, "Programmed"); s != "Programmed=False/Pending" {
			return "Gateway " + s
		}
		return ""
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "rbac", Name: "edge-sentinel"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := admin.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		var g gwv1.Gateway
		if err := admin.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if s := condOf(g.Status.Conditions, "Programmed"); s != "Programmed=True/Programmed" {
			return "Gateway " + s
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != svc.Spec.ClusterIP {
			return fmt.Sprintf("addresses %+v", g.Status.Addresses)
		}
		var cm corev1.ConfigMap
		if err := admin.Get(ctx, types.NamespacedName{Namespace: "rbac", Name: "edge-sentinel-config"}, &cm); err != nil {
			return err.Error()
		}
		if !strings.Contains(cm.Data[controller.ConfigKey], `"listen":[":80"]`) {
			return "config " + cm.Data[controller.ConfigKey]
		}
		return ""
	})
	// An HTTPS listener: its Secret is read with the role's rights (get,
	// past the cache).
	certPEM, keyPEM, err := testutil.CertPEM("rbac.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "rbac", Name: "edge-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(gw), gw); err != nil {
		t.Fatal(err)
	}
	gw.Spec.Listeners = append(gw.Spec.Listeners, gwv1.Listener{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType,
		TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "edge-cert"}}}})
	if err := admin.Update(ctx, gw); err != nil {
		t.Fatal(err)
	}
	line := strings.Split(string(certPEM), "\n")[3]
	eventually(t, 15*time.Second, func() string {
		var g gwv1.Gateway
		if err := admin.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		for _, l := range g.Status.Listeners {
			if s := condOf(l.Conditions, "ResolvedRefs"); l.Name == "https" && s != "ResolvedRefs=True/ResolvedRefs" {
				return "https listener " + s
			}
		}
		var cm corev1.ConfigMap
		if err := admin.Get(ctx, types.NamespacedName{Namespace: "rbac", Name: "edge-sentinel-config"}, &cm); err != nil {
			return err.Error()
		}
		if !strings.Contains(cm.Data[controller.ConfigKey], line) {
			return "the certificate is not in the config"
		}
		return ""
	})
}
