package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/translate"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// Labels and annotations of the copies of SentinelPlugin modules.
const (
	// PluginLabel marks the ConfigMaps holding a copy of a module
	// ("true"), next to GatewayNameLabel.
	PluginLabel = "gateway.sentinel-proxy.io/plugin-module"
	// PluginAnnotation names the SentinelPlugin (namespace/name) of a
	// module copy.
	PluginAnnotation = "gateway.sentinel-proxy.io/plugin"
	// ModuleSHA256Annotation is the SHA-256 of a module copy, and, on the
	// pod template, of the list of the modules the pods mount.
	ModuleSHA256Annotation = "gateway.sentinel-proxy.io/modules-sha256"
)

// ModuleProgrammer is a Programmer that also delivers the WASM modules of
// the SentinelPlugins taken from ConfigMaps (translate.Output.Modules) to
// the Gateway's replicas, under translate.DefaultPluginDir. The
// reconciler calls ProgramModules instead of Program when the Programmer
// has it.
type ModuleProgrammer interface {
	Programmer
	// ProgramModules is Program with the modules cfg runs.
	ProgramModules(ctx context.Context, gw *gwv1.Gateway, cfg []byte, modules []translate.Module) ([]gwv1.GatewayStatusAddress, error)
}

var _ ModuleProgrammer = (*ConfigMapProgrammer)(nil)

// moduleCopyName is the ConfigMap, in the Gateway's namespace, holding
// the copy of SentinelPlugin plugin's module (the pods can only mount
// ConfigMaps of their own namespace; the plugin may be in the route's).
func moduleCopyName(gw *gwv1.Gateway, plugin types.NamespacedName) string {
	sum := sha256.Sum256([]byte(plugin.String()))
	return gw.Name + "-sentinel-plugin-" + hex.EncodeToString(sum[:])[:10]
}

// modulesHash is the SHA-256 of the modules' paths and digests: on the
// pod template, so that a changed module rolls the replicas.
func modulesHash(modules []translate.Module) string {
	var b strings.Builder
	for _, m := range modules {
		fmt.Fprintf(&b, "%s=%s\n", m.Path, m.SHA256)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// moduleVolumeSources are the projected volume's sources putting the
// modules at plugins/<namespace>/<name>/plugin.wasm of the config
// volume (mounted at ConfigMountDir: translate.DefaultPluginDir).
func moduleVolumeSources(gw *gwv1.Gateway, modules []translate.Module) []corev1.VolumeProjection {
	var out []corev1.VolumeProjection
	for _, m := range modules {
		out = append(out, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: moduleCopyName(gw, m.Plugin)},
			Items:                []corev1.KeyToPath{{Key: v1alpha1.PluginModuleKey, Path: path.Join("plugins", m.Path)}},
		}})
	}
	return out
}

// deliverModules writes the copies of the modules into the Gateway's
// namespace (created, or updated when the digest differs) and deletes
// the copies of modules no longer used.
func (p *ConfigMapProgrammer) deliverModules(ctx context.Context, gw *gwv1.Gateway, modules []translate.Module) error {
	want := map[string]bool{}
	for _, m := range modules {
		name := moduleCopyName(gw, m.Plugin)
		want[name] = true
		key := types.NamespacedName{Namespace: gw.Namespace, Name: name}
		var cm corev1.ConfigMap
		err := p.reader().Get(ctx, key, &cm)
		switch {
		case apierrors.IsNotFound(err):
			cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Namespace: key.Namespace, Name: key.Name,
				Labels:          map[string]string{GatewayNameLabel: gw.Name, PluginLabel: "true"},
				Annotations:     map[string]string{PluginAnnotation: m.Plugin.String(), ModuleSHA256Annotation: m.SHA256},
				OwnerReferences: owner(gw),
			}, BinaryData: map[string][]byte{v1alpha1.PluginModuleKey: m.Data}}
			if err := p.C.Create(ctx, &cm); err != nil {
				return fmt.Errorf("SentinelPlugin %s: creating the module's copy %s: %w", m.Plugin, key, err)
			}
		case err != nil:
			return fmt.Errorf("SentinelPlugin %s: reading the module's copy %s: %w", m.Plugin, key, err)
		case !ownedBy(&cm, gw):
			return fmt.Errorf("SentinelPlugin %s: %w", m.Plugin, notOwnedError("ConfigMap", &cm, gw))
		case cm.Annotations[ModuleSHA256Annotation] != m.SHA256:
			if cm.Annotations == nil {
				cm.Annotations = map[string]string{}
			}
			cm.Annotations[PluginAnnotation], cm.Annotations[ModuleSHA256Annotation] = m.Plugin.String(), m.SHA256
			cm.BinaryData = map[string][]byte{v1alpha1.PluginModuleKey: m.Data}
			if err := p.C.Update(ctx, &cm); err != nil {
				return fmt.Errorf("SentinelPlugin %s: updating the module's copy %s: %w", m.Plugin, key, err)
			}
		}
	}
	var list corev1.ConfigMapList
	if err := p.reader().List(ctx, &list, client.InNamespace(gw.Namespace), client.MatchingLabels{GatewayNameLabel: gw.Name, PluginLabel: "true"}); err != nil {
		return fmt.Errorf("listing the module copies of gateway %s/%s: %w", gw.Namespace, gw.Name, err)
	}
	for i := range list.Items {
		cm := &list.Items[i]
		if want[cm.Name] || !ownedBy(cm, gw) {
			continue // in use, or not a copy the controller made
		}
		if err := p.C.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting the unused module copy %s/%s: %w", cm.Namespace, cm.Name, err)
		}
	}
	return nil
}

// gatherPlugins reads the SentinelPlugins and, for those the routes of in
// name, their ConfigMaps (with the API reader: only these are read).
func (r *gatewayReconciler) gatherPlugins(ctx context.Context, in *translate.Input) error {
	var plugins v1alpha1.SentinelPluginList
	if err := r.c.List(ctx, &plugins); err != nil {
		return fmt.Errorf("listing SentinelPlugins: %w", err)
	}
	in.Plugins = map[types.NamespacedName]*v1alpha1.SentinelPlugin{}
	for i := range plugins.Items {
		p := &plugins.Items[i]
		in.Plugins[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	}
	in.ConfigMaps = map[types.NamespacedName]*corev1.ConfigMap{}
	for _, k := range translate.PluginRefs(in.Routes, in.GRPCRoutes) {
		p := in.Plugins[k]
		if p == nil || p.Spec.ConfigMapRef == nil {
			continue
		}
		key := types.NamespacedName{Namespace: k.Namespace, Name: p.Spec.ConfigMapRef.Name}
		if in.ConfigMaps[key] != nil {
			continue
		}
		var cm corev1.ConfigMap
		if err := r.reader.Get(ctx, key, &cm); err == nil {
			in.ConfigMaps[key] = &cm
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("SentinelPlugin %s: reading ConfigMap %s: %w", k, key, err)
		}
	}
	return nil
}

// pluginConfigMapGateways maps a ConfigMap (its metadata) to every
// Gateway when a SentinelPlugin of its namespace takes its module from
// it, else to none.
func (r *gatewayReconciler) pluginConfigMapGateways(ctx context.Context, o client.Object) []reconcile.Request {
	if !r.plugins.Load() {
		return nil
	}
	var list v1alpha1.SentinelPluginList
	if err := r.c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	for _, p := range list.Items {
		if p.Spec.ConfigMapRef != nil && p.Spec.ConfigMapRef.Name == o.GetName() {
			return r.allGateways(ctx, o)
		}
	}
	return nil
}
