package translate

import (
	"fmt"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// KindSentinelAgent is the kind of an ExtensionRef filter naming a
// SentinelAgent (group sentinel.sentinel-proxy.io, the operator's).
const KindSentinelAgent = "SentinelAgent"

// agentID is the id of SentinelAgent a (namespace ns) in the generated
// config: namespaced, so that two namespaces' agents never mix.
func agentID(ns string, a *v1alpha1.SentinelAgent) string { return ns + "/" + a.ID() }

// extensionHandler returns the handler of an ExtensionRef filter of
// route r, one resolver for the kinds of the operator's group that can
// be filters: a SentinelAgent of the route's namespace becomes a
// sentinel_agents handler calling it, a SentinelPlugin a sentinel_wasm
// handler running it (plugins.go). Another group or kind is
// InvalidKind; an object that does not exist, or a plugin whose module
// cannot be found, is BackendNotFound (the spec: the rule answers 500
// rather than skip the filter).
func extensionHandler(in *Input, r *gwv1.HTTPRoute, ri int, ref *gwv1.LocalObjectReference, where string) (map[string]any, *refError) {
	if ref == nil {
		return nil, &refError{gwv1.RouteReasonUnsupportedValue, where + ": extensionRef is missing"}
	}
	group, kind := string(ref.Group), string(ref.Kind)
	if group != v1alpha1.GroupVersion.Group || (kind != KindSentinelAgent && kind != KindSentinelPlugin) {
		return nil, &refError{gwv1.RouteReasonInvalidKind, fmt.Sprintf("%s: extensionRef %s/%s is not supported (only %s/%s and %s/%s)",
			where, refKind(ref), ref.Name, v1alpha1.GroupVersion.Group, KindSentinelAgent, v1alpha1.GroupVersion.Group, KindSentinelPlugin)}
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: string(ref.Name)}
	route := fmt.Sprintf("%s/%s/rules[%d]", r.Namespace, r.Name, ri)
	notFound := &refError{gwv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: %s %s not found", where, kind, key)}
	if kind == KindSentinelPlugin {
		p := in.Plugins[key]
		if p == nil {
			return nil, notFound
		}
		return pluginHandler(in, key, p, route, where)
	}
	a := in.Agents[key]
	if a == nil {
		return nil, notFound
	}
	return map[string]any{
		"handler": "sentinel_agents",
		"route":   route,
		"filters": []any{map[string]any{"agent": agentID(r.Namespace, a)}},
	}, nil
}

// agentsApp returns the sentinel_agents app of the agents the entries'
// handlers call (nil: none).
func agentsApp(in *Input, entries []*entry) map[string]any {
	used := map[string]bool{}
	for _, e := range entries {
		for _, h := range e.handlers {
			m, ok := h.(map[string]any)
			if !ok || m["handler"] != "sentinel_agents" {
				continue
			}
			for _, f := range m["filters"].([]any) {
				used[f.(map[string]any)["agent"].(string)] = true
			}
		}
	}
	if len(used) == 0 {
		return nil
	}
	var agents []map[string]any
	for k, a := range in.Agents {
		id := agentID(k.Namespace, a)
		if !used[id] {
			continue
		}
		c := map[string]any{"id": id}
		s := a.Spec
		if s.Type != "" {
			c["type"] = s.Type
		}
		if s.UnixSocket != "" {
			c["unix_socket"] = s.UnixSocket
		}
		if s.GRPC != "" {
			c["grpc"] = s.GRPC
		}
		if len(s.Events) > 0 {
			c["events"] = s.Events
		}
		if s.TimeoutMilliseconds != nil {
			c["timeout"] = strconv.Itoa(int(*s.TimeoutMilliseconds)) + "ms"
		}
		if s.FailureMode != "" {
			c["failure_mode"] = s.FailureMode
		}
		if s.MaxRequestBodyBytes != nil {
			c["max_request_body_bytes"] = *s.MaxRequestBodyBytes
		}
		agents = append(agents, c)
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i]["id"].(string) < agents[j]["id"].(string) })
	return map[string]any{"agents": agents}
}
