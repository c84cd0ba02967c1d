package translate

import (
	"encoding/json"
	"net"
	"net/textproto"
	"regexp"
	"sort"
	"strconv"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// buildConfig assembles the Caddy JSON config: one server per port of
// the listeners that serve, its routes in the spec's precedence order,
// then a 404.
func buildConfig(in *Input, ls []*listener, entries []*entry, l4 []*l4Entry) ([]byte, error) {
	servers := map[string]any{}
	var loadPEM []map[string]any
	ports := map[int32][]*listener{}
	var order []int32
	for _, l := range ls {
		if !l.serving() || (l.spec.Protocol != gwv1.HTTPProtocolType && l.spec.Protocol != gwv1.HTTPSProtocolType) {
			continue
		}
		if _, ok := ports[l.spec.Port]; !ok {
			order = append(order, l.spec.Port)
		}
		ports[l.spec.Port] = append(ports[l.spec.Port], l)
	}
	sort.SliceStable(entries, func(i, j int) bool { return precedes(entries[i], entries[j]) })
	for _, port := range order {
		pl := ports[port]
		var routes []any
		for _, e := range entries {
			if e.listener.spec.Port != port {
				continue
			}
			routes = append(routes, map[string]any{
				"match":    []any{matcherSet(e)},
				"handle":   e.handlers,
				"terminal": true,
			})
		}
		routes = append(routes, map[string]any{"handle": []any{status(404)}})
		srv := map[string]any{
			"listen":          []string{net.JoinHostPort(in.BindHost, strconv.Itoa(int(port)))},
			"routes":          routes,
			"automatic_https": map[string]any{"disable": true},
		}
		if pl[0].spec.Protocol == gwv1.HTTPSProtocolType {
			var policies []any
			var fallback any
			for _, l := range pl {
				tag := "gw-" + string(l.spec.Name)
				for _, c := range l.certs {
					loadPEM = append(loadPEM, map[string]any{"certificate": c.cert, "key": c.key, "tags": []string{tag}})
				}
				p := map[string]any{"certificate_selection": map[string]any{"any_tag": []string{tag}}}
				if l.spec.Hostname == nil {
					fallback = p
					continue
				}
				p["match"] = map[string]any{"sni": []string{string(*l.spec.Hostname)}}
				policies = append(policies, p)
			}
			if fallback != nil {
				policies = append(policies, fallback)
			} else {
				// A client without SNI, or with another name, still
				// completes the handshake with the first certificate.
				policies = append(policies, map[string]any{"certificate_selection": map[string]any{"any_tag": []string{"gw-" + string(pl[0].spec.Name)}}})
			}
			srv["tls_connection_policies"] = policies
		} else {
			// Cleartext HTTP/2 with prior knowledge: gRPC clients.
			srv["protocols"] = []string{"h1", "h2", "h2c"}
		}
		servers["gw-"+strconv.Itoa(int(port))] = srv
	}
	dial := invalidDial(in)
	for _, e := range entries {
		if usesInvalid(e.handlers, dial) {
			servers["gw-invalid-backends"] = map[string]any{
				"listen":          []string{dial},
				"protocols":       []string{"h1", "h2c"},
				"routes":          []any{map[string]any{"handle": []any{status(500)}}},
				"automatic_https": map[string]any{"disable": true},
			}
			break
		}
	}
	apps := map[string]any{"http": map[string]any{"servers": servers}}
	if app := agentsApp(in, entries); app != nil {
		apps["sentinel_agents"] = app
	}
	if app := buildL4(in, ls, l4); app != nil {
		apps["sentinel_l4"] = app
	} else {
		// Empty, it serves nothing: it checks the listen addresses
		// when the config replaces a running one (see gateway/l4).
		apps["sentinel_l4"] = map[string]any{}
	}
	if len(loadPEM) > 0 {
		apps["tls"] = map[string]any{
			"certificates": map[string]any{"load_pem": loadPEM},
			"automation":   map[string]any{"policies": []any{map[string]any{"subjects": []string{}, "disable_ocsp_stapling": true}}},
		}
	}
	cfg := map[string]any{"apps": apps}
	if in.Admin != nil {
		cfg["admin"] = in.Admin
	} else {
		cfg["admin"] = map[string]any{"disabled": true}
	}
	return json.Marshal(cfg)
}

// precedes orders entries as the spec orders HTTPRoute matches: the
// longest exact hostname, then the longest hostname, an exact path over a
// prefix (the longest first), a method, more header matches, more query
// matches, then the oldest route, its name, the rule's and match's order.
func precedes(a, b *entry) bool {
	if x, y := exactLen(a.hostname), exactLen(b.hostname); x != y {
		return x > y
	}
	if x, y := len(a.hostname), len(b.hostname); x != y {
		return x > y
	}
	if x, y := pathRank(a.match.Path), pathRank(b.match.Path); x != y {
		return x > y
	}
	if x, y := pathLen(a.match.Path), pathLen(b.match.Path); x != y {
		return x > y
	}
	if x, y := a.match.Method != nil, b.match.Method != nil; x != y {
		return x
	}
	if x, y := len(a.match.Headers), len(b.match.Headers); x != y {
		return x > y
	}
	if x, y := len(a.match.QueryParams), len(b.match.QueryParams); x != y {
		return x > y
	}
	if a.route != b.route {
		return olderRoute(a.route, b.route)
	}
	if a.rule != b.rule {
		return a.rule < b.rule
	}
	return a.index < b.index
}

func exactLen(h string) int {
	if strings.HasPrefix(h, "*") {
		return 0
	}
	return len(h)
}

func pathType(p *gwv1.HTTPPathMatch) gwv1.PathMatchType {
	if p == nil || p.Type == nil {
		return gwv1.PathMatchPathPrefix
	}
	return *p.Type
}

func pathValue(p *gwv1.HTTPPathMatch) string {
	if p == nil || p.Value == nil {
		return "/"
	}
	return *p.Value
}

// pathRank: an exact path 2, a prefix or a regular expression 1 (then
// the longest first: the spec leaves regular expressions' precedence to
// the implementation).
func pathRank(p *gwv1.HTTPPathMatch) int {
	if pathType(p) == gwv1.PathMatchExact {
		return 2
	}
	return 1
}

func pathLen(p *gwv1.HTTPPathMatch) int { return len(pathValue(p)) }

// matcherSet is the Caddy matcher set of an entry.
func matcherSet(e *entry) map[string]any {
	m := map[string]any{}
	hdrRE := map[string]any{}
	if h := e.hostname; h != "" {
		if strings.HasPrefix(h, "*.") {
			hdrRE["Host"] = map[string]string{"pattern": `(?i)^([^.:]+\.)+` + regexp.QuoteMeta(h[2:]) + `(:\d+)?$`}
		} else {
			m["host"] = []string{h}
		}
	}
	v := pathValue(e.match.Path)
	switch pathType(e.match.Path) {
	case gwv1.PathMatchExact:
		m["path_regexp"] = map[string]string{"pattern": "^" + regexp.QuoteMeta(v) + "$"}
	case gwv1.PathMatchRegularExpression:
		m["path_regexp"] = map[string]string{"pattern": "^(?:" + v + ")$"}
	default:
		if p := strings.TrimSuffix(v, "/"); p != "" {
			m["path_regexp"] = map[string]string{"pattern": "^" + regexp.QuoteMeta(p) + "(/.*)?$"}
		}
	}
	seen := map[string]bool{}
	for _, h := range e.match.Headers {
		name := textproto.CanonicalMIMEHeaderKey(string(h.Name))
		if seen[name] {
			continue // the spec: only the first match of a name counts
		}
		seen[name] = true
		pat := "^" + regexp.QuoteMeta(h.Value) + "$"
		if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
			pat = h.Value
		}
		hdrRE[name] = map[string]string{"pattern": pat}
	}
	if len(hdrRE) > 0 {
		m["header_regexp"] = hdrRE
	}
	if len(e.match.QueryParams) > 0 {
		q := map[string][]string{}
		for _, p := range e.match.QueryParams {
			if _, ok := q[string(p.Name)]; !ok {
				q[string(p.Name)] = []string{p.Value}
			}
		}
		m["query"] = q
	}
	if e.match.Method != nil {
		m["method"] = []string{string(*e.match.Method)}
	}
	return m
}
