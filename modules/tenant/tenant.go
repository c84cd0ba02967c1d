// Package tenant identifies the tenant (the configuration namespace) of
// a request on a listener shared by several namespaces, and keeps each
// tenant to its own routes.
//
// The handler http.handlers.sentinel_tenant runs first on such a
// listener's server. It reads the tenant from the request's host (an
// exact host or a subdomain of a shared domain), from a header, and/or
// from a claim of a verified JWT, and stores it in the request variable
// VarNamespace (placeholder {http.vars.sentinel.namespace}), where the
// matcher http.matchers.sentinel_namespace, which the KDL adapter adds
// to every namespaced route of the listener, finds it. A request whose
// tenant is not identified, or is identified differently by two
// sources, gets the configured answer (default: 421 with a JSON body
// saying why), or, with Unidentified.Global, only the listener's global
// routes.
//
// Host and header identification say which tenant a request is for,
// not who sent it: anyone can send any Host or header. Only the JWT
// source authenticates (a token signed by a key of the configured JWKS,
// unexpired, for the configured audience).
package tenant

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
	caddy.RegisterModule(MatchNamespace(""))
}

// VarNamespace is the request variable holding the identified namespace
// ("" or absent when none).
const VarNamespace = "sentinel.namespace"

// Namespace returns the namespace identified for the request, or "".
func Namespace(ctx context.Context) string {
	s, _ := caddyhttp.GetVar(ctx, VarNamespace).(string)
	return s
}

// Handler identifies the tenant of each request.
type Handler struct {
	// Namespaces are the namespaces a request may be identified as. A
	// header, subdomain or claim naming another one does not identify
	// the request. Required.
	Namespaces []string `json:"namespaces"`

	// Hosts maps request hosts (lowercase, without port) to namespaces.
	Hosts map[string]string `json:"hosts,omitempty"`

	// SubdomainOf are shared domains: a request for
	// <namespace>.<domain> is for that namespace.
	SubdomainOf []string `json:"subdomain_of,omitempty"`

	// Header names a request header whose value is the namespace. The
	// header is removed before the request goes on.
	Header string `json:"header,omitempty"`

	// JWT identifies the namespace from a claim of a verified token.
	JWT *JWT `json:"jwt,omitempty"`

	// SNI identifies the namespace from the TLS server name of the
	// connection, mapped through Hosts and SubdomainOf like the Host. On
	// a TLS connection with a server name that names a namespace, the
	// Host must name the same one (by Hosts or SubdomainOf) or be the
	// server name itself: a request for another tenant on the
	// connection (domain fronting, or a client coalescing connections
	// under a wildcard certificate) gets the Unidentified answer (421
	// by default, which tells a browser to retry on a new connection).
	// A request without TLS or without a server name is identified by
	// the other sources.
	SNI bool `json:"sni,omitempty"`

	// Unidentified is the answer to a request no source identifies (or
	// that two sources identify differently). Default: status 421.
	Unidentified *Answer `json:"unidentified,omitempty"`

	known  map[string]bool
	logger *zap.Logger
}

// Answer is what a request without a tenant gets.
type Answer struct {
	// Status is the response status (400 to 599). Default 421.
	Status int `json:"status,omitempty"`
	// Message is the JSON body's "error" text. Default: "no tenant
	// identified for this request".
	Message string `json:"message,omitempty"`
	// Global lets the request through without a namespace: only the
	// listener's routes outside any namespace match it.
	Global bool `json:"global,omitempty"`
}

// DefaultUnidentifiedStatus is the default answer's status: 421
// Misdirected Request.
const DefaultUnidentifiedStatus = http.StatusMisdirectedRequest

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.sentinel_tenant", New: func() caddy.Module { return new(Handler) }}
}

// Provision sets the handler up.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.known = make(map[string]bool, len(h.Namespaces))
	for _, ns := range h.Namespaces {
		h.known[ns] = true
	}
	if h.Hosts != nil {
		hosts := make(map[string]string, len(h.Hosts))
		for k, v := range h.Hosts {
			hosts[normalizeHost(k)] = v
		}
		h.Hosts = hosts
	}
	for i, d := range h.SubdomainOf {
		h.SubdomainOf[i] = normalizeHost(d)
	}
	if h.Header != "" {
		h.Header = http.CanonicalHeaderKey(h.Header)
	}
	if h.JWT != nil {
		if err := h.JWT.provision(ctx); err != nil {
			return fmt.Errorf("jwt: %w", err)
		}
	}
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if len(h.Namespaces) == 0 {
		return fmt.Errorf("namespaces: at least one is needed")
	}
	known := make(map[string]bool, len(h.Namespaces))
	for _, ns := range h.Namespaces {
		if ns == "" || strings.Contains(ns, ":") {
			return fmt.Errorf("namespaces: %q is not a namespace name", ns)
		}
		known[ns] = true
	}
	if len(h.Hosts) == 0 && len(h.SubdomainOf) == 0 && h.Header == "" && h.JWT == nil {
		return fmt.Errorf("no source: give hosts, subdomain_of, header or jwt")
	}
	if h.SNI && len(h.Hosts) == 0 && len(h.SubdomainOf) == 0 {
		return fmt.Errorf("sni: the server name is mapped through hosts or subdomain_of; give one of them")
	}
	for host, ns := range h.Hosts {
		if !known[ns] {
			return fmt.Errorf("hosts: %q maps to %q, which is not in namespaces", host, ns)
		}
	}
	if u := h.Unidentified; u != nil && u.Status != 0 && (u.Status < 400 || u.Status > 599) {
		return fmt.Errorf("unidentified: status %d is not an error status (400 to 599)", u.Status)
	}
	if h.JWT != nil {
		if err := h.JWT.validate(); err != nil {
			return fmt.Errorf("jwt: %w", err)
		}
	}
	return nil
}

// ServeHTTP identifies the request's tenant and passes it on, or answers
// for an unidentified one.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ns, why := h.identify(r)
	if h.Header != "" {
		// The backends never see the client's claim.
		r.Header.Del(h.Header)
	}
	if ns == "" {
		u := h.Unidentified
		if u != nil && u.Global {
			caddyhttp.SetVar(r.Context(), VarNamespace, "")
			return next.ServeHTTP(w, r)
		}
		status, msg := DefaultUnidentifiedStatus, "no tenant identified for this request"
		if u != nil && u.Status != 0 {
			status = u.Status
		}
		if u != nil && u.Message != "" {
			msg = u.Message
		}
		h.logger.Debug("request without a tenant", zap.String("reason", why), zap.String("host", r.Host))
		body, _ := json.Marshal(map[string]string{"error": msg, "reason": why})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
		w.WriteHeader(status)
		_, err := w.Write(append(body, '\n'))
		return err
	}
	caddyhttp.SetVar(r.Context(), VarNamespace, ns)
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Add(zap.String("namespace", ns))
	}
	return next.ServeHTTP(w, r)
}

// identify returns the request's namespace, or "" and why not. Every
// configured source is read: when two disagree, the request has none.
func (h *Handler) identify(r *http.Request) (ns, why string) {
	var found, source string
	add := func(candidate, from string) string {
		switch {
		case candidate == "":
			return ""
		case !h.known[candidate]:
			return from + " names no namespace of this listener"
		case found != "" && found != candidate:
			return "the " + source + " and the " + from + " name different namespaces"
		}
		found, source = candidate, from
		return ""
	}
	host := normalizeHost(r.Host)
	if h.SNI && r.TLS != nil && r.TLS.ServerName != "" {
		sni := normalizeHost(r.TLS.ServerName)
		if sniNS, n := h.byName(sni); n > 0 {
			if hostNS, m := h.byName(host); host != sni && (m == 0 || hostNS[0].ns != sniNS[0].ns) {
				return "", "the TLS server name and the Host name different tenants (or the Host names none)"
			}
			if e := add(sniNS[0].ns, "TLS server name"); e != "" {
				return "", e
			}
		}
	}
	names, n := h.byName(host)
	for _, c := range names[:n] {
		if e := add(c.ns, c.from); e != "" {
			return "", e
		}
	}
	if h.Header != "" {
		if v := r.Header.Values(h.Header); len(v) > 1 {
			return "", "more than one " + h.Header + " header"
		} else if len(v) == 1 {
			if e := add(strings.TrimSpace(v[0]), "header"); e != "" {
				return "", e
			}
		}
	}
	if h.JWT != nil {
		claim, err := h.JWT.namespace(r)
		if err != nil {
			return "", "token: " + err.Error()
		}
		if e := add(claim, "token"); e != "" {
			return "", e
		}
	}
	if found == "" {
		return "", "no host, subdomain, header or token names a namespace"
	}
	return found, ""
}

// named is a namespace a host name names, and how.
type named struct{ ns, from string }

// byName maps a host name through Hosts and SubdomainOf: the namespaces
// it names (none, one, or two that may differ) and the source of each.
// It returns them in an array, not a slice: it runs on every request.
func (h *Handler) byName(host string) (out [2]named, n int) {
	if ns, ok := h.Hosts[host]; ok {
		out[n] = named{ns, "host"}
		n++
	}
	for _, d := range h.SubdomainOf {
		if sub, ok := strings.CutSuffix(host, "."+d); ok && sub != "" && !strings.Contains(sub, ".") {
			out[n] = named{sub, "subdomain"}
			n++
			break
		}
	}
	return out, n
}

// normalizeHost lowercases a host and removes its port and trailing dot.
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// MatchNamespace matches the requests identified (by sentinel_tenant) as
// this namespace.
type MatchNamespace string

// CaddyModule returns the Caddy module information.
func (MatchNamespace) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.matchers.sentinel_namespace", New: func() caddy.Module { return new(MatchNamespace) }}
}

// Match reports whether the request's namespace is m.
func (m MatchNamespace) Match(r *http.Request) bool {
	ok, _ := m.MatchWithError(r)
	return ok
}

// MatchWithError reports whether the request's namespace is m.
func (m MatchNamespace) MatchWithError(r *http.Request) (bool, error) {
	return m != "" && Namespace(r.Context()) == string(m), nil
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler       = (*Handler)(nil)
	_ caddy.Provisioner                 = (*Handler)(nil)
	_ caddy.Validator                   = (*Handler)(nil)
	_ caddyhttp.RequestMatcherWithError = MatchNamespace("")
)
