// Package translate turns a Gateway API Gateway and the HTTPRoutes
// attached to it into a Sentinel (Caddy JSON) configuration, and computes
// the status the spec asks for: the Gateway's and each listener's
// conditions, and each route's per-parent conditions. It reads nothing
// from the cluster: the controller gathers the objects (Input) and writes
// the result (Output). See docs/gateway-api.md.
package translate

import (
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// Input is everything the translation of one Gateway reads.
type Input struct {
	// ControllerName is the GatewayClass controller name routes' status
	// entries are written under.
	ControllerName gwv1.GatewayController
	// Gateway is the Gateway translated.
	Gateway *gwv1.Gateway
	// Routes are the HTTPRoutes that may reference the Gateway (the
	// translation checks their parentRefs).
	Routes []*gwv1.HTTPRoute
	// GRPCRoutes are the GRPCRoutes that may reference the Gateway.
	GRPCRoutes []*gwv1.GRPCRoute
	// TLSRoutes are the TLSRoutes that may reference the Gateway
	// (passthrough by SNI, on TLS listeners).
	TLSRoutes []*gwv1.TLSRoute
	// TCPRoutes are the TCPRoutes that may reference the Gateway.
	TCPRoutes []*gwv1.TCPRoute
	// Namespaces maps a namespace's name to its labels (for listeners'
	// allowedRoutes selectors).
	Namespaces map[string]map[string]string
	// Services are the Services by namespace/name.
	Services map[types.NamespacedName]*corev1.Service
	// EndpointSlices are the EndpointSlices by the namespace/name of
	// their Service (label kubernetes.io/service-name).
	EndpointSlices map[types.NamespacedName][]*discoveryv1.EndpointSlice
	// Secrets are the Secrets by namespace/name (listener certificates).
	Secrets map[types.NamespacedName]*corev1.Secret
	// Agents are the SentinelAgents by namespace/name (ExtensionRef
	// filters of kind SentinelAgent).
	Agents map[types.NamespacedName]*v1alpha1.SentinelAgent
	// Plugins are the SentinelPlugins by namespace/name (ExtensionRef
	// filters of kind SentinelPlugin).
	Plugins map[types.NamespacedName]*v1alpha1.SentinelPlugin
	// ConfigMaps are the ConfigMaps by namespace/name that Plugins'
	// configMapRefs name (their modules).
	ConfigMaps map[types.NamespacedName]*corev1.ConfigMap
	// PluginDir is where the replicas find the ConfigMap modules
	// (Output.Modules); default DefaultPluginDir.
	PluginDir string
	// Grants are the ReferenceGrants of every namespace.
	Grants []*gwv1.ReferenceGrant
	// BindHost is the address the listeners bind to ("" is every
	// interface).
	BindHost string
	// Admin is the Caddy admin configuration put into the generated
	// config (nil: admin endpoint off).
	Admin json.RawMessage
}

// Output is the result of a translation.
type Output struct {
	// Config is the Caddy JSON configuration of the Gateway's replicas.
	Config []byte
	// Accepted is the Gateway's Accepted condition (Programmed depends on
	// the delivery of Config, so the controller sets it).
	Accepted metav1.Condition
	// Listeners are the listeners' statuses, in spec order, without the
	// Programmed condition's final word: a listener whose config could
	// be generated has Programmed True here.
	Listeners []gwv1.ListenerStatus
	// RouteParents are, for each route that references the Gateway, its
	// status entries for those references.
	RouteParents map[types.NamespacedName][]gwv1.RouteParentStatus
	// GRPCRouteParents are the same for the GRPCRoutes.
	GRPCRouteParents map[types.NamespacedName][]gwv1.RouteParentStatus
	// TLSRouteParents and TCPRouteParents are the same for the TLSRoutes
	// and TCPRoutes.
	TLSRouteParents, TCPRouteParents map[types.NamespacedName][]gwv1.RouteParentStatus
	// Modules are the WASM modules of the SentinelPlugins taken from
	// ConfigMaps that Config runs, which the replicas must find under
	// Input.PluginDir; sorted by path.
	Modules []Module
}

// Translate translates in.Gateway. It returns an error only for a
// configuration it cannot encode (a bug); invalid objects become
// conditions.
func Translate(in *Input) (*Output, error) {
	gw := in.Gateway
	out := &Output{RouteParents: map[types.NamespacedName][]gwv1.RouteParentStatus{}, GRPCRouteParents: map[types.NamespacedName][]gwv1.RouteParentStatus{},
		TLSRouteParents: map[types.NamespacedName][]gwv1.RouteParentStatus{}, TCPRouteParents: map[types.NamespacedName][]gwv1.RouteParentStatus{}}
	ls := validateListeners(in)
	// Routes, oldest first (the spec's tie breaker), then by name.
	routes := append([]*gwv1.HTTPRoute(nil), in.Routes...)
	for _, g := range in.GRPCRoutes {
		routes = append(routes, grpcAsHTTP(g))
	}
	for _, t := range in.TLSRoutes {
		routes = append(routes, tlsAsHTTP(t))
	}
	for _, t := range in.TCPRoutes {
		routes = append(routes, tcpAsHTTP(t))
	}
	sort.SliceStable(routes, func(i, j int) bool { return olderRoute(routes[i], routes[j]) })
	var entries []*entry
	var l4 []*l4Entry
	for _, r := range routes {
		key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
		parents, es := attachRoute(in, ls, r)
		if isL4(r) {
			if len(parents) > 0 {
				l4 = append(l4, l4Entries(in, ls, r, attachedListeners(in, ls, r))...)
				if r.Kind == kindTLSRoute {
					out.TLSRouteParents[key] = parents
				} else {
					out.TCPRouteParents[key] = parents
				}
			}
			continue
		}
		switch {
		case len(parents) == 0:
		case routeKind(r) == kindGRPCRoute:
			out.GRPCRouteParents[key] = parents
		default:
			out.RouteParents[key] = parents
		}
		entries = append(entries, es...)
	}
	for _, l := range ls {
		out.Listeners = append(out.Listeners, l.status(gw.Generation))
	}
	out.Accepted = gatewayAccepted(gw, ls)
	cfg, err := buildConfig(in, ls, entries, l4)
	if err != nil {
		return nil, fmt.Errorf("gateway %s/%s: encoding the config: %w", gw.Namespace, gw.Name, err)
	}
	out.Config = cfg
	out.Modules = pluginModules(in, entries)
	return out, nil
}

// olderRoute orders routes by creation time, then namespace/name.
func olderRoute(a, b *gwv1.HTTPRoute) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// gatewayAccepted is the Gateway's Accepted condition.
func gatewayAccepted(gw *gwv1.Gateway, ls []*listener) metav1.Condition {
	c := metav1.Condition{
		Type:               string(gwv1.GatewayConditionAccepted),
		Status:             metav1.ConditionTrue,
		Reason:             string(gwv1.GatewayReasonAccepted),
		Message:            "the Gateway is accepted",
		ObservedGeneration: gw.Generation,
	}
	if len(gw.Spec.Addresses) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, string(gwv1.GatewayReasonUnsupportedAddress)
		c.Message = "spec.addresses is not supported: the address is the one of the Sentinel replicas"
		return c
	}
	invalid := 0
	for _, l := range ls {
		if !l.accepted {
			invalid++
		}
	}
	if invalid > 0 {
		c.Reason = string(gwv1.GatewayReasonListenersNotValid)
		c.Message = fmt.Sprintf("%d of %d listeners are not valid", invalid, len(ls))
		if invalid == len(ls) {
			c.Status = metav1.ConditionFalse
		}
	}
	return c
}

// cond builds a condition.
func cond(t string, ok bool, reason, msg string, gen int64) metav1.Condition {
	s := metav1.ConditionTrue
	if !ok {
		s = metav1.ConditionFalse
	}
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen}
}
