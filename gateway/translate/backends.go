package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// granted reports whether a ReferenceGrant in toNS allows objects of
// fromGroup/fromKind in fromNS to reference toGroup/toKind toName.
func granted(grants []*gwv1.ReferenceGrant, fromGroup, fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	for _, g := range grants {
		if g.Namespace != toNS {
			continue
		}
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == fromGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS {
				from = true
				break
			}
		}
		if !from {
			continue
		}
		for _, t := range g.Spec.To {
			if string(t.Group) == toGroup && string(t.Kind) == toKind && (t.Name == nil || string(*t.Name) == toName) {
				return true
			}
		}
	}
	return false
}

// backend is a resolved backendRef: its targets (host:port) and weight.
type backend struct {
	// id is namespace/name:port, a label.
	id      string
	targets []string
	weight  int32
	// h2c: the backend is proxied to over HTTP/2 in cleartext.
	h2c bool
	// headers are the backendRef's own header filters (nil: none).
	headers *backendHeaders
}

// refError is why a backendRef does not resolve: a ResolvedRefs reason.
type refError struct {
	reason gwv1.RouteConditionReason
	msg    string
}

func (e *refError) Error() string { return e.msg }

// resolveBackend resolves a backendRef of route (kind Service) to its
// ready endpoints.
func resolveBackend(in *Input, route *gwv1.HTTPRoute, ref gwv1.BackendObjectReference, where string) (*backend, *refError) {
	group, kind := "", "Service"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if group != "" || kind != "Service" {
		return nil, &refError{gwv1.RouteReasonInvalidKind, fmt.Sprintf("%s: kind %s (group %q) is not supported: only Services are", where, kind, group)}
	}
	ns := route.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	if ns != route.Namespace && !granted(in.Grants, gwv1.GroupName, routeKind(route), route.Namespace, "", "Service", ns, string(ref.Name)) {
		return nil, &refError{gwv1.RouteReasonRefNotPermitted,
			fmt.Sprintf("%s: no ReferenceGrant in namespace %s allows %ss of %s to reference Service %s", where, ns, routeKind(route), route.Namespace, ref.Name)}
	}
	key := types.NamespacedName{Namespace: ns, Name: string(ref.Name)}
	svc := in.Services[key]
	if svc == nil {
		return nil, &refError{gwv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: Service %s not found", where, key)}
	}
	if ref.Port == nil {
		return nil, &refError{gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s: port is required for a Service", where)}
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == *ref.Port {
			sp = &svc.Spec.Ports[i]
			break
		}
	}
	if sp == nil {
		return nil, &refError{gwv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: Service %s has no port %d", where, key, *ref.Port)}
	}
	w := int32(1)
	b := &backend{id: fmt.Sprintf("%s:%d", key, *ref.Port), weight: w,
		// gRPC backends, and Services whose port says so, speak HTTP/2
		// in cleartext (prior knowledge).
		h2c: routeKind(route) == kindGRPCRoute || sp.AppProtocol != nil && *sp.AppProtocol == "kubernetes.io/h2c"}
	for _, es := range in.EndpointSlices[key] {
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			// Names are not checked by the API server as addresses are:
			// a slice naming metadata.google.internal, or a name that
			// resolves to 127.0.0.1, would make the replicas dial the
			// metadata service or themselves. IP slices only, as
			// kube-proxy.
			continue
		}
		port := int32(-1)
		for _, p := range es.Ports {
			if p.Port != nil && (p.Name == nil && sp.Name == "" || p.Name != nil && *p.Name == sp.Name) {
				port = *p.Port
				break
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				if !endpointIP(a) {
					continue
				}
				b.targets = append(b.targets, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	return b, nil
}

// endpointIP reports whether an EndpointSlice address may be dialed: an
// IP literal (the API server refuses loopback, link-local and unspecified
// addresses in IP slices, never names, which could resolve to anything).
func endpointIP(a string) bool {
	ip, err := netip.ParseAddr(a)
	return err == nil && ip.Zone() == ""
}

// invalidDial is the address of the Gateway's internal server that
// answers 500: the share of a rule's requests that goes to its invalid
// backendRefs is proxied there, so that the valid backends keep only
// their share (the smooth weighted sequence includes it). It is an
// abstract unix socket (Linux: no file, gone with the process), named
// after the Gateway's UID so that replicas of several Gateways sharing a
// network namespace do not clash.
func invalidDial(in *Input) string {
	id := string(in.Gateway.UID)
	if id == "" {
		sum := sha256.Sum256([]byte(in.Gateway.Namespace + "/" + in.Gateway.Name))
		id = hex.EncodeToString(sum[:16])
	}
	return "unix/@sentinel-gateway-" + id + "-500"
}

// usesInvalid reports whether a handler list proxies to invalidDial.
func usesInvalid(handlers []any, dial string) bool {
	for _, h := range handlers {
		m, ok := h.(map[string]any)
		if !ok || m["handler"] != "reverse_proxy" {
			continue
		}
		ups, _ := m["upstreams"].([]map[string]any)
		for _, u := range ups {
			if u["dial"] == dial {
				return true
			}
		}
	}
	return false
}
