package translate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// entry is one match of one rule of a route on one listener and
// hostname: one Caddy route, ordered by the spec's precedence.
type entry struct {
	route    *gwv1.HTTPRoute
	listener *listener
	hostname string // "" is any
	match    gwv1.HTTPRouteMatch
	rule     int
	index    int
	handlers []any
}

// refersTo reports whether parentRef p of route r names the Gateway gw.
func refersTo(p gwv1.ParentReference, r *gwv1.HTTPRoute, gw *gwv1.Gateway) bool {
	if p.Group != nil && string(*p.Group) != gwv1.GroupName {
		return false
	}
	if p.Kind != nil && *p.Kind != "Gateway" {
		return false
	}
	ns := r.Namespace
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	return ns == gw.Namespace && string(p.Name) == gw.Name
}

// attachRoute attaches route r to the listeners its parentRefs to the
// Gateway select, and returns its status entries for those parentRefs and
// its Caddy route entries.
func attachRoute(in *Input, ls []*listener, r *gwv1.HTTPRoute) ([]gwv1.RouteParentStatus, []*entry) {
	gw := in.Gateway
	gen := r.Generation
	var parents []gwv1.RouteParentStatus
	attached := map[*listener]bool{}
	for _, p := range r.Spec.ParentRefs {
		if !refersTo(p, r, gw) {
			continue
		}
		accepted := acceptParent(in, ls, r, p, attached)
		accepted.ObservedGeneration = gen
		parents = append(parents, gwv1.RouteParentStatus{
			ParentRef:      p,
			ControllerName: in.ControllerName,
			Conditions:     []metav1.Condition{accepted},
		})
	}
	if len(parents) == 0 {
		return nil, nil
	}
	// ResolvedRefs: the references do not depend on the listener.
	resolved := cond(string(gwv1.RouteConditionResolvedRefs), true, string(gwv1.RouteReasonResolvedRefs), "every reference is resolved", gen)
	for ri, rule := range r.Spec.Rules {
		if _, rerr := ruleHandlers(in, r, ri, rule, nil); rerr != nil {
			resolved = cond(string(gwv1.RouteConditionResolvedRefs), false, string(rerr.reason), rerr.msg, gen)
			break
		}
	}
	// Handlers per listener (redirects depend on its port and scheme).
	var entries []*entry
	for _, l := range ls {
		if !attached[l] || !l.serving() {
			continue
		}
		hosts := intersectHostnames(l.spec.Hostname, r.Spec.Hostnames)
		for ri, rule := range r.Spec.Rules {
			handlers, _ := ruleHandlers(in, r, ri, rule, l)
			matches := rule.Matches
			if len(matches) == 0 {
				matches = []gwv1.HTTPRouteMatch{{}}
			}
			for _, h := range hosts {
				for mi, m := range matches {
					entries = append(entries, &entry{route: r, listener: l, hostname: h, match: m, rule: ri, index: mi, handlers: handlers})
				}
			}
		}
	}
	for i := range parents {
		parents[i].Conditions = append(parents[i].Conditions, resolved)
	}
	return parents, entries
}

// acceptParent computes the Accepted condition of parentRef p, and marks
// the listeners it attaches to.
func acceptParent(in *Input, ls []*listener, r *gwv1.HTTPRoute, p gwv1.ParentReference, attached map[*listener]bool) metav1.Condition {
	gen := r.Generation
	fail := func(reason gwv1.RouteConditionReason, msg string) metav1.Condition {
		return cond(string(gwv1.RouteConditionAccepted), false, string(reason), msg, gen)
	}
	var candidates []*listener
	for _, l := range ls {
		if p.SectionName != nil && *p.SectionName != l.spec.Name {
			continue
		}
		if p.Port != nil && *p.Port != l.spec.Port {
			continue
		}
		candidates = append(candidates, l)
	}
	if len(candidates) == 0 {
		what := "the Gateway has no listener"
		if p.SectionName != nil {
			what += fmt.Sprintf(" named %s", *p.SectionName)
		}
		if p.Port != nil {
			what += fmt.Sprintf(" on port %d", *p.Port)
		}
		return fail(gwv1.RouteReasonNoMatchingParent, what)
	}
	allowed, hostOK := 0, 0
	for _, l := range candidates {
		// A listener with unresolved references (a missing certificate)
		// still counts its routes (attachedRoutes), though it serves none.
		if !l.accepted || !l.allowsHTTPRoute() || !l.allowsNamespace(in, r.Namespace) {
			continue
		}
		allowed++
		if len(intersectHostnames(l.spec.Hostname, r.Spec.Hostnames)) == 0 {
			continue
		}
		hostOK++
		if !attached[l] {
			attached[l] = true
			l.attached++
		}
	}
	switch {
	case allowed == 0:
		return fail(gwv1.RouteReasonNotAllowedByListeners, "no listener of the parent allows this route (kind, namespace or listener state)")
	case hostOK == 0:
		return fail(gwv1.RouteReasonNoMatchingListenerHostname, "no hostname of the route matches a listener's hostname")
	}
	return cond(string(gwv1.RouteConditionAccepted), true, string(gwv1.RouteReasonAccepted), "the route is accepted", gen)
}

// intersectHostnames returns the hostnames a route serves on a listener:
// nil when they do not intersect, [""] for any host.
func intersectHostnames(lh *gwv1.Hostname, rhs []gwv1.Hostname) []string {
	if lh == nil || *lh == "" {
		if len(rhs) == 0 {
			return []string{""}
		}
		out := make([]string, 0, len(rhs))
		for _, h := range rhs {
			out = append(out, strings.ToLower(string(h)))
		}
		return out
	}
	l := strings.ToLower(string(*lh))
	if len(rhs) == 0 {
		return []string{l}
	}
	var out []string
	seen := map[string]bool{}
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, rh := range rhs {
		h := strings.ToLower(string(rh))
		switch {
		case h == l:
			add(h)
		case wildcardMatches(l, h):
			add(h)
		case wildcardMatches(h, l):
			add(l)
		}
	}
	return out
}

// wildcardMatches reports whether the wildcard pattern p ("*.example.com")
// matches host h (an exact host, or a narrower wildcard).
func wildcardMatches(p, h string) bool {
	if !strings.HasPrefix(p, "*.") {
		return false
	}
	suffix := p[1:] // ".example.com"
	rest := strings.TrimPrefix(h, "*")
	return strings.HasSuffix(rest, suffix) && len(strings.TrimSuffix(rest, suffix)) > 0 && strings.TrimSuffix(rest, suffix) != "."
}
