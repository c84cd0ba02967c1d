package controller_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/gateway/translate"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// TestGatewaySentinelPlugin: a route of another namespace naming a
// SentinelPlugin whose module is in a ConfigMap of its namespace gets
// ResolvedRefs=True; the module is copied into the Gateway's namespace
// (owned by the Gateway) and the Gateway's Deployment mounts it, with
// the config, in one projected volume at
// /etc/sentinel/plugins/<ns>/<name>/plugin.wasm, where the config (which
// pins its digest) loads it; the modules' digest is on the pod template.
// A route naming a missing SentinelPlugin is BackendNotFound. A changed
// module (only the ConfigMap changes) updates the copy, the config's pin
// and the pod template; a route that stops using the plugin removes the
// copy and the projection.
func TestGatewaySentinelPlugin(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	s := scheme(t)
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	name := gwv1.GatewayController("sentinel-proxy.io/plugin-test")
	// The ConfigMap watch limited to the namespaces concerned, as with
	// sentinel-operator --namespaces.
	startDeploying(t, s, controller.Options{ControllerName: name, Namespaces: []string{"plug-gw", "plug-app"}})
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	mkns(t, c, "plug-gw")
	mkns(t, c, "plug-app")

	module := []byte("\x00asm\x01\x00\x00\x00")
	src := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "plug-app", Name: "mods"}, BinaryData: map[string][]byte{"guard.wasm": module}}
	for _, o := range []client.Object{
		src,
		&v1alpha1.SentinelPlugin{ObjectMeta: metav1.ObjectMeta{Namespace: "plug-app", Name: "guard"}, Spec: v1alpha1.SentinelPluginSpec{
			ConfigMapRef: &v1alpha1.PluginConfigMapRef{Name: "mods", Key: "guard.wasm"}, FailureMode: "open"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "plug-app", Name: "web"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}},
		&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "plugin-test"}, Spec: gwv1.GatewayClassSpec{ControllerName: name}},
		&gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "plug-gw", Name: "edge"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "plugin-test", Listeners: []gwv1.Listener{{Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr.To(gwv1.NamespacesFromAll)}}}},
		}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	route := func(name, plugin string) *gwv1.HTTPRoute {
		return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "plug-app", Name: name}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", Namespace: ptr.To(gwv1.Namespace("plug-gw"))}}},
			Rules: []gwv1.HTTPRouteRule{{
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{
					Group: gwv1.Group(v1alpha1.GroupVersion.Group), Kind: translate.KindSentinelPlugin, Name: gwv1.ObjectName(plugin)}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "web", Port: ptr.To[gwv1.PortNumber](8080)}}}},
			}},
		}}
	}
	guarded, lost := route("guarded", "guard"), route("lost", "nothere")
	for _, o := range []client.Object{guarded, lost} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	resolved := func(r *gwv1.HTTPRoute) (string, string) {
		var got gwv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(r), &got); err != nil || len(got.Status.Parents) != 1 {
			return fmt.Sprintf("no status (%v)", err), ""
		}
		cd := meta.FindStatusCondition(got.Status.Parents[0].Conditions, string(gwv1.RouteConditionResolvedRefs))
		if cd == nil {
			return "no ResolvedRefs", ""
		}
		return condOf(got.Status.Parents[0].Conditions, string(gwv1.RouteConditionResolvedRefs)), cd.Message
	}
	wantPath := translate.DefaultPluginDir + "/plug-app/guard/plugin.wasm"
	// check waits until the Gateway's objects deliver module.
	check := func(module []byte) {
		t.Helper()
		sum := sha256.Sum256(module)
		digest := hex.EncodeToString(sum[:])
		eventually(t, 30*time.Second, func() string {
			if s, _ := resolved(guarded); s != "ResolvedRefs=True/ResolvedRefs" {
				return "guarded: " + s
			}
			if s, msg := resolved(lost); s != "ResolvedRefs=False/BackendNotFound" || !strings.Contains(msg, "SentinelPlugin plug-app/nothere not found") {
				return "lost: " + s + " " + msg
			}
			var cfg corev1.ConfigMap
			if err := c.Get(ctx, types.NamespacedName{Namespace: "plug-gw", Name: "edge-sentinel-config"}, &cfg); err != nil {
				return err.Error()
			}
			if js := cfg.Data[controller.ConfigKey]; !strings.Contains(js, `"path":"`+wantPath+`","sha256":"`+digest+`"`) {
				return "config: " + js
			}
			var copies corev1.ConfigMapList
			if err := c.List(ctx, &copies, client.InNamespace("plug-gw"), client.MatchingLabels{controller.PluginLabel: "true"}); err != nil {
				return err.Error()
			}
			if len(copies.Items) != 1 || !bytes.Equal(copies.Items[0].BinaryData[v1alpha1.PluginModuleKey], module) ||
				copies.Items[0].Annotations[controller.PluginAnnotation] != "plug-app/guard" || len(copies.Items[0].OwnerReferences) != 1 {
				return fmt.Sprintf("module copies: %d", len(copies.Items))
			}
			var d appsv1.Deployment
			if err := c.Get(ctx, types.NamespacedName{Namespace: "plug-gw", Name: "edge-sentinel"}, &d); err != nil {
				return err.Error()
			}
			pod := d.Spec.Template
			if pod.Annotations[controller.ModuleSHA256Annotation] == "" {
				return "no modules digest on the pod template"
			}
			var vol *corev1.Volume
			for i := range pod.Spec.Volumes {
				if pod.Spec.Volumes[i].Name == "config" {
					vol = &pod.Spec.Volumes[i]
				}
			}
			if vol == nil || vol.Projected == nil || len(vol.Projected.Sources) != 2 {
				return fmt.Sprintf("config volume %+v", vol)
			}
			srcs := vol.Projected.Sources
			if srcs[0].ConfigMap.Name != "edge-sentinel-config" || srcs[1].ConfigMap.Name != copies.Items[0].Name ||
				srcs[1].ConfigMap.Items[0] != (corev1.KeyToPath{Key: v1alpha1.PluginModuleKey, Path: "plugins/plug-app/guard/plugin.wasm"}) {
				return fmt.Sprintf("projection %+v", srcs)
			}
			if m := pod.Spec.Containers[0].VolumeMounts[0]; m.Name != "config" || m.MountPath != controller.ConfigMountDir || !m.ReadOnly {
				return fmt.Sprintf("mount %+v", m)
			}
			return ""
		})
	}
	check(module)
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: "plug-gw", Name: "edge-sentinel"}, &d); err != nil {
		t.Fatal(err)
	}
	before := d.Spec.Template.Annotations[controller.ModuleSHA256Annotation]

	// A new module: only the ConfigMap changes.
	module2 := append(append([]byte(nil), module...), 0, 3, 'n', 'e', 'w', 1)
	src.BinaryData["guard.wasm"] = module2
	if err := c.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	check(module2)
	// The Deployment is updated after the copy check sees: wait for it.
	eventually(t, 30*time.Second, func() string {
		if err := c.Get(ctx, types.NamespacedName{Namespace: "plug-gw", Name: "edge-sentinel"}, &d); err != nil {
			return err.Error()
		}
		if d.Spec.Template.Annotations[controller.ModuleSHA256Annotation] == before {
			return "a changed module did not change the pod template"
		}
		return ""
	})

	// The route stops using the plugin: the copy and the projection go.
	if err := c.Get(ctx, client.ObjectKeyFromObject(guarded), guarded); err != nil {
		t.Fatal(err)
	}
	guarded.Spec.Rules[0].Filters = nil
	if err := c.Update(ctx, guarded); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		var copies corev1.ConfigMapList
		if err := c.List(ctx, &copies, client.InNamespace("plug-gw"), client.MatchingLabels{controller.PluginLabel: "true"}); err != nil {
			return err.Error()
		}
		if len(copies.Items) != 0 {
			return "the unused copy is still there"
		}
		var d appsv1.Deployment
		if err := c.Get(ctx, types.NamespacedName{Namespace: "plug-gw", Name: "edge-sentinel"}, &d); err != nil {
			return err.Error()
		}
		if v := d.Spec.Template.Spec.Volumes[0]; v.Name != "config" || v.ConfigMap == nil {
			return fmt.Sprintf("config volume %+v", v)
		}
		return ""
	})
}

// TestSentinelPluginValidation: the API server (the CRD's schema and CEL
// rules) refuses a SentinelPlugin without exactly one module source,
// with a malformed pin or a config that is not an object, and keeps a
// valid one's free-form config as written.
func TestSentinelPluginValidation(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	s := scheme(t)
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	mkns(t, c, "plug-cel")
	cm := &v1alpha1.PluginConfigMapRef{Name: "mods"}
	plugin := func(name string, spec v1alpha1.SentinelPluginSpec) *v1alpha1.SentinelPlugin {
		return &v1alpha1.SentinelPlugin{ObjectMeta: metav1.ObjectMeta{Namespace: "plug-cel", Name: name}, Spec: spec}
	}
	for _, tc := range []struct {
		p    *v1alpha1.SentinelPlugin
		want string
	}{
		{plugin("both", v1alpha1.SentinelPluginSpec{ConfigMapRef: cm, Path: "/p.wasm"}), "give exactly one module source"},
		{plugin("none", v1alpha1.SentinelPluginSpec{}), "give exactly one module source"},
		{plugin("relative", v1alpha1.SentinelPluginSpec{Path: "p.wasm"}), "spec.path"},
		{plugin("pin", v1alpha1.SentinelPluginSpec{Path: "/p.wasm", SHA256: "abc"}), "spec.sha256"},
		{plugin("mode", v1alpha1.SentinelPluginSpec{Path: "/p.wasm", FailureMode: "maybe"}), "spec.failureMode"},
		{plugin("memory", v1alpha1.SentinelPluginSpec{Path: "/p.wasm", MaxMemory: "lots"}), "spec.maxMemory"},
		{plugin("config", v1alpha1.SentinelPluginSpec{Path: "/p.wasm", Config: &apiextensionsv1.JSON{Raw: []byte(`["a"]`)}}), "spec.config"},
	} {
		err := c.Create(ctx, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.p.Name, err, tc.want)
		}
	}
	ok := plugin("ok", v1alpha1.SentinelPluginSpec{ConfigMapRef: cm, Config: &apiextensionsv1.JSON{Raw: []byte(`{"allow":["/api"],"deep":{"n":1}}`)}})
	if err := c.Create(ctx, ok); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.SentinelPlugin
	if err := c.Get(ctx, client.ObjectKeyFromObject(ok), &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Spec.Config.Raw) != `{"allow":["/api"],"deep":{"n":1}}` || got.Spec.ConfigMapRef.Key != v1alpha1.PluginModuleKey {
		t.Errorf("stored: config %s, key %q", got.Spec.Config.Raw, got.Spec.ConfigMapRef.Key)
	}
}
