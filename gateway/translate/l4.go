package translate

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Route kinds served by the layer-4 app (sentinel_l4, gateway/l4).
const (
	kindTLSRoute = "TLSRoute"
	kindTCPRoute = "TCPRoute"
)

var (
	routeKindTLS = gwv1.RouteGroupKind{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: kindTLSRoute}
	routeKindTCP = gwv1.RouteGroupKind{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: kindTCPRoute}
)

// tlsAsHTTP is TLSRoute t as an HTTPRoute of kind TLSRoute (hostnames,
// one rule per rule with its backendRefs): the translation of HTTPRoutes
// attaches it to listeners and resolves its references, the layer-4
// config is built from it by l4Entries.
func tlsAsHTTP(t *gwv1.TLSRoute) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{ObjectMeta: *t.ObjectMeta.DeepCopy()}
	r.Kind = kindTLSRoute
	r.Spec.CommonRouteSpec = *t.Spec.CommonRouteSpec.DeepCopy()
	r.Spec.Hostnames = append([]gwv1.Hostname(nil), t.Spec.Hostnames...)
	for _, tr := range t.Spec.Rules {
		r.Spec.Rules = append(r.Spec.Rules, l4Rule(tr.BackendRefs))
	}
	return r
}

// tcpAsHTTP is TCPRoute t as an HTTPRoute of kind TCPRoute.
func tcpAsHTTP(t *gwv1.TCPRoute) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{ObjectMeta: *t.ObjectMeta.DeepCopy()}
	r.Kind = kindTCPRoute
	r.Spec.CommonRouteSpec = *t.Spec.CommonRouteSpec.DeepCopy()
	for _, tr := range t.Spec.Rules {
		r.Spec.Rules = append(r.Spec.Rules, l4Rule(tr.BackendRefs))
	}
	return r
}

func l4Rule(refs []gwv1.BackendRef) gwv1.HTTPRouteRule {
	var hr gwv1.HTTPRouteRule
	for _, b := range refs {
		hr.BackendRefs = append(hr.BackendRefs, gwv1.HTTPBackendRef{BackendRef: *b.DeepCopy()})
	}
	return hr
}

// isL4 reports whether r is a TLSRoute or a TCPRoute.
func isL4(r *gwv1.HTTPRoute) bool { return r.Kind == kindTLSRoute || r.Kind == kindTCPRoute }

// l4Entry is one layer-4 route of a listener: a server name (TLS
// passthrough; "" any) and its weighted upstreams.
type l4Entry struct {
	route     *gwv1.HTTPRoute
	listener  *listener
	hostname  string
	upstreams []any
}

// l4Entries are the layer-4 routes of route r on the listeners it is
// attached to. Every rule's backendRefs share the connections by weight;
// the share of invalid backendRefs is rejected (the connection closed),
// as is every connection when no backendRef is valid.
func l4Entries(in *Input, ls []*listener, r *gwv1.HTTPRoute, attached map[*listener]bool) []*l4Entry {
	var ups []any
	total := 0
	for ri, rule := range r.Spec.Rules {
		for bi, ref := range rule.BackendRefs {
			w := 1
			if ref.Weight != nil {
				w = int(*ref.Weight)
			}
			if w == 0 {
				continue
			}
			total += w
			b, rerr := resolveBackend(in, r, ref.BackendObjectReference, fmt.Sprintf("rules[%d].backendRefs[%d]", ri, bi))
			if rerr != nil || len(b.targets) == 0 {
				ups = append(ups, map[string]any{"reject": true, "weight": w * 1000})
				continue
			}
			// The backend's weight spread over its endpoints (in
			// thousandths: exact enough for any endpoint count).
			per := w * 1000 / len(b.targets)
			if per == 0 {
				per = 1
			}
			for _, t := range b.targets {
				ups = append(ups, map[string]any{"dial": t, "weight": per})
			}
		}
	}
	if total == 0 {
		ups = []any{map[string]any{"reject": true}}
	}
	var out []*l4Entry
	for _, l := range ls {
		if !attached[l] || !l.serving() {
			continue
		}
		hosts := []string{""}
		if r.Kind == kindTLSRoute {
			hosts = intersectHostnames(l.spec.Hostname, r.Spec.Hostnames)
		}
		for _, h := range hosts {
			out = append(out, &l4Entry{route: r, listener: l, hostname: h, upstreams: ups})
		}
	}
	return out
}

// attachedListeners are the listeners route r's accepted parentRefs
// attach it to (as acceptParent counted them).
func attachedListeners(in *Input, ls []*listener, r *gwv1.HTTPRoute) map[*listener]bool {
	out := map[*listener]bool{}
	for _, p := range r.Spec.ParentRefs {
		if !refersTo(p, r, in.Gateway) {
			continue
		}
		for _, l := range ls {
			if p.SectionName != nil && *p.SectionName != l.spec.Name {
				continue
			}
			if p.Port != nil && *p.Port != l.spec.Port {
				continue
			}
			if !l.accepted || !l.allowsKind(routeKind(r)) || !l.allowsNamespace(in, r.Namespace) {
				continue
			}
			if r.Kind == kindTLSRoute && len(intersectHostnames(l.spec.Hostname, r.Spec.Hostnames)) == 0 {
				continue
			}
			out[l] = true
		}
	}
	return out
}

// buildL4 is the sentinel_l4 app's config: one server per port of the TLS
// (passthrough) and TCP listeners; a passthrough server's routes by
// server name, exact names first, then wildcards, the longest first, then
// "any"; a TCP server takes the oldest route attached (a listener serves
// one TCPRoute). nil: no layer-4 listener serves.
func buildL4(in *Input, ls []*listener, entries []*l4Entry) map[string]any {
	servers := map[string]any{}
	for _, l := range ls {
		if !l.serving() || (l.spec.Protocol != gwv1.TLSProtocolType && l.spec.Protocol != gwv1.TCPProtocolType) {
			continue
		}
		name := "gw-l4-" + strconv.Itoa(int(l.spec.Port))
		if _, ok := servers[name]; ok {
			continue
		}
		var es []*l4Entry
		for _, e := range entries {
			if e.listener.spec.Port == l.spec.Port {
				es = append(es, e)
			}
		}
		srv := map[string]any{"listen": []string{net.JoinHostPort(in.BindHost, strconv.Itoa(int(l.spec.Port)))}}
		var routes []any
		if l.spec.Protocol == gwv1.TLSProtocolType {
			srv["tls_passthrough"] = true
			sort.SliceStable(es, func(i, j int) bool { return sniBefore(es[i].hostname, es[j].hostname) })
			seen := map[string]bool{}
			for _, e := range es {
				if seen[e.hostname] {
					continue // the oldest route takes a name
				}
				seen[e.hostname] = true
				rt := map[string]any{"upstreams": e.upstreams}
				if e.hostname != "" {
					rt["server_names"] = []string{e.hostname}
				}
				routes = append(routes, rt)
			}
		} else if len(es) > 0 {
			routes = append(routes, map[string]any{"upstreams": es[0].upstreams})
		}
		srv["routes"] = routes
		servers[name] = srv
	}
	if len(servers) == 0 {
		return nil
	}
	return map[string]any{"servers": servers}
}

// sniBefore orders server names: exact before wildcard, longer first,
// "" (any) last.
func sniBefore(a, b string) bool {
	if (a == "") != (b == "") {
		return b == ""
	}
	wa, wb := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if wa != wb {
		return wb
	}
	return len(a) > len(b)
}
