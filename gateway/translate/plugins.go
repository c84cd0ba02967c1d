package translate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/types"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// KindSentinelPlugin is the kind of an ExtensionRef filter naming a
// SentinelPlugin (a WASM plugin, group sentinel.sentinel-proxy.io).
const KindSentinelPlugin = "SentinelPlugin"

// DefaultPluginDir is where the Gateway's replicas find the modules of
// the SentinelPlugins taken from a ConfigMap:
// <dir>/<namespace>/<name>/plugin.wasm.
const DefaultPluginDir = "/etc/sentinel/plugins"

// Module is the WASM module of a SentinelPlugin taken from a ConfigMap
// that the Gateway's config runs: the controller delivers Data to the
// replicas at <Input.PluginDir>/<Path>.
type Module struct {
	// Plugin is the SentinelPlugin.
	Plugin types.NamespacedName
	// Data is the module (the ConfigMap's bytes, not copied).
	Data []byte
	// SHA256 is the hex SHA-256 of Data (the config pins it).
	SHA256 string
	// Path is the module's path under the plugin folder:
	// <namespace>/<name>/plugin.wasm.
	Path string
}

// wasmMagic starts every WASM module.
var wasmMagic = []byte("\x00asm")

// pluginDir is the folder of the ConfigMap modules.
func pluginDir(in *Input) string {
	if in.PluginDir != "" {
		return in.PluginDir
	}
	return DefaultPluginDir
}

// pluginModule resolves the module of a configMapRef SentinelPlugin p
// (key): its bytes, digest and path; the error says what is wrong.
func pluginModule(in *Input, key types.NamespacedName, p *v1alpha1.SentinelPlugin) (*Module, string) {
	ref := p.Spec.ConfigMapRef
	k := ref.Key
	if k == "" {
		k = v1alpha1.PluginModuleKey
	}
	cmKey := types.NamespacedName{Namespace: key.Namespace, Name: ref.Name}
	cm := in.ConfigMaps[cmKey]
	if cm == nil {
		return nil, fmt.Sprintf("its ConfigMap %s not found", cmKey)
	}
	data, ok := cm.BinaryData[k]
	if !ok {
		return nil, fmt.Sprintf("its ConfigMap %s has no binaryData key %q (the module goes into binaryData)", cmKey, k)
	}
	if !bytes.HasPrefix(data, wasmMagic) {
		return nil, fmt.Sprintf("ConfigMap %s key %q is not a WASM module (%d bytes, no \\0asm header)", cmKey, k, len(data))
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if p.Spec.SHA256 != "" && p.Spec.SHA256 != digest {
		return nil, fmt.Sprintf("ConfigMap %s key %q has sha256 %s, spec.sha256 pins %s", cmKey, k, digest, p.Spec.SHA256)
	}
	return &Module{Plugin: key, Data: data, SHA256: digest, Path: path.Join(key.Namespace, key.Name, v1alpha1.PluginModuleKey)}, ""
}

// pluginHandler returns the sentinel_wasm handler running SentinelPlugin
// p (key) for route (the route id plugins read).
func pluginHandler(in *Input, key types.NamespacedName, p *v1alpha1.SentinelPlugin, route, where string) (map[string]any, *refError) {
	s := p.Spec
	c := map[string]any{"id": key.String()}
	switch {
	case s.ConfigMapRef != nil:
		m, msg := pluginModule(in, key, p)
		if m == nil {
			return nil, &refError{gwv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: SentinelPlugin %s: %s", where, key, msg)}
		}
		c["path"], c["sha256"] = path.Join(pluginDir(in), m.Path), m.SHA256
	case s.Path != "":
		c["path"] = s.Path
		if s.SHA256 != "" {
			c["sha256"] = s.SHA256
		}
	default:
		return nil, &refError{gwv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: SentinelPlugin %s has no module (configMapRef or path)", where, key)}
	}
	if s.ABI != "" {
		c["abi"] = s.ABI
	}
	if s.Config != nil && len(s.Config.Raw) > 0 {
		c["config"] = json.RawMessage(s.Config.Raw)
	}
	if s.FailureMode != "" {
		c["failure_mode"] = s.FailureMode
	}
	if s.TimeoutMilliseconds != nil {
		c["timeout"] = strconv.Itoa(int(*s.TimeoutMilliseconds)) + "ms"
	}
	if s.MaxMemory != "" {
		c["max_memory"] = s.MaxMemory
	}
	if s.MaxBodyBytes != nil {
		c["max_body_bytes"] = *s.MaxBodyBytes
	}
	if s.MaxIdleInstances != nil {
		c["max_idle_instances"] = *s.MaxIdleInstances
	}
	return map[string]any{"handler": "sentinel_wasm", "route": route, "plugins": []any{c}}, nil
}

// pluginModules returns the ConfigMap modules the entries' handlers
// run, by plugin.
func pluginModules(in *Input, entries []*entry) []Module {
	used := map[string]bool{}
	for _, e := range entries {
		for _, h := range e.handlers {
			m, ok := h.(map[string]any)
			if !ok || m["handler"] != "sentinel_wasm" {
				continue
			}
			for _, p := range m["plugins"].([]any) {
				used[p.(map[string]any)["id"].(string)] = true
			}
		}
	}
	var out []Module
	for key, p := range in.Plugins {
		if !used[key.String()] || p.Spec.ConfigMapRef == nil {
			continue
		}
		if m, _ := pluginModule(in, key, p); m != nil {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// PluginRefs returns the SentinelPlugins (namespace/name) the filters of
// the routes name, so that the controller reads only their ConfigMaps.
func PluginRefs(routes []*gwv1.HTTPRoute, grpc []*gwv1.GRPCRoute) []types.NamespacedName {
	seen := map[types.NamespacedName]bool{}
	add := func(ns string, ref *gwv1.LocalObjectReference) {
		if ref != nil && string(ref.Group) == v1alpha1.GroupVersion.Group && ref.Kind == KindSentinelPlugin {
			seen[types.NamespacedName{Namespace: ns, Name: string(ref.Name)}] = true
		}
	}
	for _, r := range routes {
		for _, rule := range r.Spec.Rules {
			for _, f := range rule.Filters {
				add(r.Namespace, f.ExtensionRef)
			}
		}
	}
	for _, r := range grpc {
		for _, rule := range r.Spec.Rules {
			for _, f := range rule.Filters {
				add(r.Namespace, f.ExtensionRef)
			}
		}
	}
	out := make([]types.NamespacedName, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
