package translate

import (
	"regexp"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// kindGRPCRoute marks, in TypeMeta.Kind, the HTTPRoute a GRPCRoute is
// translated into (grpcAsHTTP): the translation of HTTPRoutes serves
// both, and routeKind tells them apart where they differ (the kind a
// ReferenceGrant must allow, the listener's allowed kinds, the h2c
// transport to the backends, the status written).
const kindGRPCRoute = "GRPCRoute"

// routeKind is the kind of a translated GRPCRoute, TLSRoute or TCPRoute,
// else "HTTPRoute".
func routeKind(r *gwv1.HTTPRoute) string {
	switch r.Kind {
	case kindGRPCRoute, kindTLSRoute, kindTCPRoute:
		return r.Kind
	}
	return "HTTPRoute"
}

// grpcAsHTTP translates a GRPCRoute into the HTTPRoute that matches the
// same requests: a gRPC call is a POST to /<service>/<method>, its
// metadata HTTP/2 headers. A method match becomes a path match (service
// and method exact: the exact path; service only: the path prefix
// /<service>; method only or regular expressions: a regular expression
// with [^/]+ for the part not given), header matches stay header
// matches; the filters and backendRefs keep their meaning. The copy
// shares nothing mutable with g.
func grpcAsHTTP(g *gwv1.GRPCRoute) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{ObjectMeta: *g.ObjectMeta.DeepCopy()}
	r.Kind = kindGRPCRoute
	r.Spec.CommonRouteSpec = *g.Spec.CommonRouteSpec.DeepCopy()
	r.Spec.Hostnames = append([]gwv1.Hostname(nil), g.Spec.Hostnames...)
	for _, gr := range g.Spec.Rules {
		hr := gwv1.HTTPRouteRule{Name: gr.Name}
		for _, gm := range gr.Matches {
			hm := gwv1.HTTPRouteMatch{Path: grpcPath(gm.Method)}
			for _, h := range gm.Headers {
				t := gwv1.HeaderMatchExact
				if h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression {
					t = gwv1.HeaderMatchRegularExpression
				}
				hm.Headers = append(hm.Headers, gwv1.HTTPHeaderMatch{Type: &t, Name: gwv1.HTTPHeaderName(h.Name), Value: h.Value})
			}
			hr.Matches = append(hr.Matches, hm)
		}
		for _, f := range gr.Filters {
			hr.Filters = append(hr.Filters, gwv1.HTTPRouteFilter{
				Type:                   gwv1.HTTPRouteFilterType(f.Type),
				RequestHeaderModifier:  f.RequestHeaderModifier.DeepCopy(),
				ResponseHeaderModifier: f.ResponseHeaderModifier.DeepCopy(),
				RequestMirror:          f.RequestMirror.DeepCopy(),
				ExtensionRef:           f.ExtensionRef.DeepCopy(),
			})
		}
		for _, b := range gr.BackendRefs {
			hb := gwv1.HTTPBackendRef{BackendRef: *b.BackendRef.DeepCopy()}
			for _, f := range b.Filters {
				hb.Filters = append(hb.Filters, gwv1.HTTPRouteFilter{
					Type:                   gwv1.HTTPRouteFilterType(f.Type),
					RequestHeaderModifier:  f.RequestHeaderModifier.DeepCopy(),
					ResponseHeaderModifier: f.ResponseHeaderModifier.DeepCopy(),
					RequestMirror:          f.RequestMirror.DeepCopy(),
					ExtensionRef:           f.ExtensionRef.DeepCopy(),
				})
			}
			hr.BackendRefs = append(hr.BackendRefs, hb)
		}
		r.Spec.Rules = append(r.Spec.Rules, hr)
	}
	return r
}

// grpcPath is the path match of a gRPC method match (nil: any path).
func grpcPath(m *gwv1.GRPCMethodMatch) *gwv1.HTTPPathMatch {
	if m == nil || (m.Service == nil && m.Method == nil) {
		return nil
	}
	re := m.Type != nil && *m.Type == gwv1.GRPCMethodMatchRegularExpression
	part := func(s *string) string {
		switch {
		case s == nil:
			return `[^/]+`
		case re:
			return "(?:" + *s + ")"
		}
		return regexp.QuoteMeta(*s)
	}
	var t gwv1.PathMatchType
	var v string
	switch {
	case !re && m.Service != nil && m.Method != nil:
		t, v = gwv1.PathMatchExact, "/"+*m.Service+"/"+*m.Method
	case !re && m.Method == nil:
		t, v = gwv1.PathMatchPathPrefix, "/"+*m.Service
	default:
		t, v = gwv1.PathMatchRegularExpression, "/"+part(m.Service)+"/"+part(m.Method)
	}
	return &gwv1.HTTPPathMatch{Type: &t, Value: &v}
}
