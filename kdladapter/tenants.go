package kdladapter

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
)

// tenantsKey declares a listener's `tenants { }` block: tenant
// identification on a listener shared by several namespaces (the
// sentinel_tenant handler, first on the listener's server).
var tenantsKey = ext(h("tenants", "identifies each request's namespace (`sentinel_tenant` handler); a namespace's routes answer only its requests",
	h("namespaces", "the namespaces served (default: all)"),
	h("host", "`host \"a.example.com\" namespace=\"team-a\"` (repeatable)"),
	h("subdomain-of", "shared domains: `<namespace>.<domain>` is for that namespace"),
	h("header", "a request header naming the namespace (removed before the upstream)"),
	h("sni", "`#true`: the TLS server name, mapped through host and subdomain-of, names the namespace; a Host naming another tenant gets the unidentified answer (no domain fronting)"),
	h("jwt", "a claim of a verified JWT names the namespace",
		h("jwks-file", "file with the JSON Web Key Set"),
		h("jwks-url", "http(s) URL of the key set (cached, refetched for unknown key ids)"),
		h("cache-ttl-secs", "how long a fetched key set is used (default 300)"),
		h("audience", "accepted audiences (required)"),
		h("issuer", "required issuer"),
		h("claim", "the claim naming the namespace (default \"tenant\")"),
		h("header", "header carrying `Bearer <token>` (default Authorization)"),
	),
	h("unidentified", "answer to requests without a namespace: `status=421 message=\"…\"`, or `\"global\"` (only global routes)"),
))

// tenantHandlerName is the handler's module name.
var tenantHandlerName = tenant.Handler{}.CaddyModule().ID.Name()

// tenantMatcherName is the route matcher's module name.
var tenantMatcherName = tenant.MatchNamespace("").CaddyModule().ID.Name()

// tenantRoute maps a listener's tenants block to the first route of its
// server (nil without one).
func (a *adapter) tenantRoute(listenerID string, l *kdl.Node) json.RawMessage {
	b := setting(l, "tenants")
	if b == nil || a.tenancy == nil {
		return nil
	}
	t := a.tenancy
	h := tenant.Handler{Namespaces: t.names}
	if n := setting(b, "namespaces"); n != nil {
		h.Namespaces = nil
		for i, ns := range a.strs(n) {
			if t.ns[ns] == nil {
				a.d.errorf(n.Args[i].Pos, "listener %q: tenants: namespace %q is not declared%s", listenerID, ns, suggest(ns, t.names))
				continue
			}
			h.Namespaces = append(h.Namespaces, ns)
		}
	}
	for _, n := range settings(b, "host") {
		host, ok := a.str(n)
		ns, _ := n.Prop("namespace")
		if !ok || ns.Kind != kdl.KindString || ns.Str == "" {
			a.d.errorf(n.Pos, "listener %q: tenants: write host \"a.example.com\" namespace=\"team-a\"", listenerID)
			continue
		}
		if !slices.Contains(h.Namespaces, ns.Str) {
			a.d.errorf(ns.Pos, "listener %q: tenants: host %q: namespace %q is not one this listener serves%s", listenerID, host, ns.Str, suggest(ns.Str, h.Namespaces))
			continue
		}
		if h.Hosts == nil {
			h.Hosts = map[string]string{}
		}
		host = strings.ToLower(host)
		if prev, dup := h.Hosts[host]; dup && prev != ns.Str {
			a.d.errorf(n.Pos, "listener %q: tenants: host %q is given to namespaces %q and %q", listenerID, host, prev, ns.Str)
		}
		h.Hosts[host] = ns.Str
	}
	if n := setting(b, "subdomain-of"); n != nil {
		h.SubdomainOf = a.strs(n)
	}
	if n := setting(b, "header"); n != nil {
		h.Header, _ = a.str(n)
	}
	if n := setting(b, "sni"); n != nil {
		h.SNI, _ = a.boolean(n)
		if h.SNI && len(h.Hosts) == 0 && len(h.SubdomainOf) == 0 {
			a.d.errorf(n.Pos, "listener %q: tenants: sni maps the TLS server name through host and subdomain-of; give one of them", listenerID)
		}
		if h.SNI && setting(l, "tls") == nil {
			a.d.warnf(n.Pos, "listeners.listener.tenants.sni", "listener %q: tenants: sni has no effect without tls", listenerID)
		}
	}
	if j := setting(b, "jwt"); j != nil {
		h.JWT = a.tenantJWT(listenerID, j)
	}
	if n := setting(b, "unidentified"); n != nil {
		h.Unidentified = a.unidentified(listenerID, n)
	}
	if len(h.Hosts) == 0 && len(h.SubdomainOf) == 0 && h.Header == "" && h.JWT == nil {
		a.d.errorf(b.Pos, "listener %q: tenants needs a source: host, subdomain-of, header or jwt", listenerID)
	}
	handler := caddyconfig.JSONModuleObject(h, "handler", tenantHandlerName, nil)
	return routeJSONOf(&caddyhttp.Route{HandlersRaw: []json.RawMessage{handler}})
}

// tenantJWT reads a tenants block's jwt block.
func (a *adapter) tenantJWT(listenerID string, b *kdl.Node) *tenant.JWT {
	j := &tenant.JWT{}
	str := func(name string, p *string) {
		if n := setting(b, name); n != nil {
			*p, _ = a.str(n)
		}
	}
	str("jwks-file", &j.JWKSFile)
	str("jwks-url", &j.JWKSURL)
	str("issuer", &j.Issuer)
	str("claim", &j.Claim)
	str("header", &j.Header)
	if n := setting(b, "audience"); n != nil {
		j.Audience = a.strs(n)
	}
	if n := setting(b, "cache-ttl-secs"); n != nil {
		if s, ok := a.integer(n, 1, 86400); ok {
			j.CacheTTL = caddy.Duration(time.Duration(s) * time.Second)
		}
	}
	if (j.JWKSFile == "") == (j.JWKSURL == "") {
		a.d.errorf(b.Pos, "listener %q: tenants: jwt needs exactly one of jwks-file and jwks-url", listenerID)
	}
	if j.JWKSURL != "" && !strings.HasPrefix(j.JWKSURL, "https://") && !strings.HasPrefix(j.JWKSURL, "http://") {
		a.d.errorf(setting(b, "jwks-url").Args[0].Pos, "listener %q: tenants: jwks-url %q must be an http(s) URL", listenerID, j.JWKSURL)
	}
	if len(j.Audience) == 0 {
		a.d.errorf(b.Pos, "listener %q: tenants: jwt needs audience \"…\" (tokens for other services must not pass)", listenerID)
	}
	return j
}

// unidentified reads `unidentified status=421 message="…"` or
// `unidentified "global"`.
func (a *adapter) unidentified(listenerID string, n *kdl.Node) *tenant.Answer {
	ans := &tenant.Answer{}
	if len(n.Args) > 0 {
		if s, ok := a.str(n); ok {
			if s != "global" {
				a.d.errorf(n.Args[0].Pos, "listener %q: tenants: unidentified %q: expected \"global\", or status=… message=\"…\"", listenerID, s)
			}
			ans.Global = true
		}
	}
	if v, ok := n.Prop("status"); ok {
		if i, ok := v.AsInt64(); !ok || i < 400 || i > 599 {
			a.d.errorf(v.Pos, "listener %q: tenants: unidentified status must be an error status (400 to 599)", listenerID)
		} else {
			ans.Status = int(i)
		}
	}
	if v, ok := n.Prop("message"); ok && v.Kind == kdl.KindString {
		ans.Message = v.Str
	}
	if ans.Global && (ans.Status != 0 || ans.Message != "") {
		a.d.errorf(n.Pos, "listener %q: tenants: unidentified \"global\" lets the request through; status and message do not apply", listenerID)
	}
	if ans.Status == 0 && !ans.Global {
		ans.Status = http.StatusMisdirectedRequest
	}
	return ans
}

// routeScope says which routes a listener serves: those whose id starts
// with prefix ("" for all), and whether the listener identifies tenants
// (shared: a namespace's routes then match only its requests).
func (a *adapter) routeScope(listenerID string) (prefix string, shared bool) {
	if a.tenancy == nil {
		return "", false
	}
	return a.tenancy.bound[listenerID], a.tenancy.shared[listenerID]
}

// sharedNamespace is the namespace a route's matcher requires on a
// listener identifying tenants ("" for a global route, or elsewhere).
func sharedNamespace(shared bool, routeID string) string {
	if !shared {
		return ""
	}
	return NamespaceOf(routeID)
}

// appendNamespaceMatch writes the sentinel_namespace matcher of a
// matcher set (after another matcher when more).
func appendNamespaceMatch(buf []byte, ns string, more bool) []byte {
	if ns == "" {
		return buf
	}
	if more {
		buf = append(buf, ',')
	}
	buf = append(buf, '"')
	buf = append(buf, tenantMatcherName...)
	buf = append(buf, `":`...)
	b, _ := json.Marshal(ns)
	return append(buf, b...)
}
