// Package routematch provides the `sentinel` request matcher, which
// combines the route conditions of a Sentinel route (path, path prefix,
// path regular expressions, hosts, headers, methods and query parameters)
// into a single Caddy request matcher.
package routematch

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(MatchRoute{})
}

// MatchRoute matches requests by the conditions of a Sentinel route.
//
// Every condition group that is configured (non-empty) must match; groups
// that are left empty are ignored, so an empty matcher matches every
// request. Within the groups:
//
//   - `path` and `path_prefix` together form one group of alternatives:
//     any single exact path or path prefix matching is enough.
//   - every `path_regex` must match.
//   - any single `host` matching is enough.
//   - every `header` condition must match.
//   - any single `method` matching is enough.
//   - every `query` condition must match.
//
// A CONNECT request with an authority as its target (`CONNECT
// host:port`, which asks for a tunnel; not an HTTP/2 extended CONNECT,
// which has a path) matches only a matcher whose `method` lists CONNECT,
// and no path condition: a route written for paths, hosts or headers is
// never asked to tunnel to an authority the client chose.
//
// Paths are matched against the decoded (unescaped) request path after it
// has been cleaned the way Caddy's own path matchers clean it: `.` and `..`
// segments are resolved and repeated slashes are merged, so that
// `/api/../admin` or `//admin` cannot slip past a matcher written for
// `/admin`. Unlike Caddy's `path` matcher, path comparisons are
// case-sensitive.
type MatchRoute struct {
	// Exact request paths; the request matches if its cleaned, decoded
	// path equals one of them (case-sensitive). Each must begin with `/`.
	// Alternatives to (and combined with) `path_prefix`.
	Path []string `json:"path,omitempty"`

	// Path prefixes, matched segment by segment: the prefix `/api` matches
	// `/api` and `/api/users`, but not `/apiary`. A prefix that ends in
	// `/` (including `/` itself) matches any path that starts with it.
	// Each must begin with `/`. Alternatives to (and combined with) `path`.
	PathPrefix []string `json:"path_prefix,omitempty"`

	// Regular expressions (Go RE2 syntax) that must all be found in the
	// cleaned, decoded request path. They are not anchored: use `^` and
	// `$` to match the whole path. Invalid expressions are a configuration
	// error.
	PathRegex []string `json:"path_regex,omitempty"`

	// Hosts; the request matches if its host (port removed, case
	// insensitive, trailing dot ignored) matches any of them. An entry
	// may be an exact host name or IP address (IPv6 addresses may be
	// written with or without brackets), a wildcard `*.example.com` that
	// matches any host with at least one label in front of
	// `.example.com` (`a.example.com`, `a.b.example.com`, but not
	// `example.com`), or any other pattern containing `*` or `[`, which is
	// a regular expression anchored to the whole host (if it is not a
	// valid regular expression, it is compared as an exact string).
	Host []string `json:"host,omitempty"`

	// Header conditions, all of which must match.
	Header []HeaderMatch `json:"header,omitempty"`

	// HTTP methods; the request matches if its method is any of them
	// (case-insensitive).
	Method []string `json:"method,omitempty"`

	// Query parameter conditions, all of which must match.
	Query []QueryMatch `json:"query,omitempty"`

	// SkipWhenDisabled names a route: while the control-plane API has
	// that route disabled, this matcher does not match, so the request
	// falls through to the next route instead of being answered 503 by
	// the route's guard.
	SkipWhenDisabled string `json:"skip_when_disabled,omitempty"`

	flag *registry.RouteFlag

	pathRegexps []*regexp.Regexp
	hosts       []hostPattern
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (MatchRoute) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.matchers.sentinel",
		New: func() caddy.Module { return new(MatchRoute) },
	}
}

// Provision compiles the path regular expressions and host patterns.
func (m *MatchRoute) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if m.SkipWhenDisabled != "" {
		routes, err := registry.From(ctx)
		if err != nil {
			return fmt.Errorf("skip_when_disabled: %w", err)
		}
		m.flag = routes.RouteFlagOrNew(m.SkipWhenDisabled)
	}

	m.pathRegexps = make([]*regexp.Regexp, 0, len(m.PathRegex))
	for i, expr := range m.PathRegex {
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("path_regex %d (%q): %w", i, expr, err)
		}
		m.pathRegexps = append(m.pathRegexps, re)
	}

	m.hosts = make([]hostPattern, 0, len(m.Host))
	for _, h := range m.Host {
		p, err := compileHostPattern(h)
		if err != nil {
			m.logger.Warn("host pattern is not a valid regular expression; comparing it as an exact host",
				zap.String("host", h), zap.Error(err))
		}
		m.hosts = append(m.hosts, p)
	}

	for i, method := range m.Method {
		m.Method[i] = strings.ToUpper(method)
	}
	return nil
}

// Validate checks the matcher's configuration.
func (m *MatchRoute) Validate() error {
	for _, p := range m.Path {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("path %q: must begin with '/'", p)
		}
	}
	for _, p := range m.PathPrefix {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("path_prefix %q: must begin with '/'", p)
		}
	}
	if len(m.pathRegexps) != len(m.PathRegex) {
		// not provisioned (or provisioning failed); compile to report
		for i, expr := range m.PathRegex {
			if _, err := regexp.Compile(expr); err != nil {
				return fmt.Errorf("path_regex %d (%q): %w", i, expr, err)
			}
		}
	}
	for i, h := range m.Host {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("host %d: empty host", i)
		}
	}
	for i, h := range m.Header {
		if h.Name == "" {
			return fmt.Errorf("header %d: missing name", i)
		}
	}
	for i, method := range m.Method {
		if method == "" {
			return fmt.Errorf("method %d: empty method", i)
		}
	}
	for i, q := range m.Query {
		if q.Name == "" {
			return fmt.Errorf("query %d: missing name", i)
		}
	}
	return nil
}

// Match returns true if r matches m.
func (m *MatchRoute) Match(r *http.Request) bool {
	match, _ := m.MatchWithError(r)
	return match
}

// MatchWithError returns true if r matches m. It never returns an error;
// it implements caddyhttp.RequestMatcherWithError so that it composes with
// Caddy's other matchers.
func (m *MatchRoute) MatchWithError(r *http.Request) (bool, error) {
	if m.flag != nil && !m.flag.Enabled() {
		return false, nil
	}
	if r.Method == http.MethodConnect && r.URL.Path == "" && !slices.Contains(m.Method, http.MethodConnect) {
		// a CONNECT to an authority asks for a tunnel, which only a
		// route that lists the method CONNECT provides
		return false, nil
	}
	if len(m.Path) > 0 || len(m.PathPrefix) > 0 || len(m.pathRegexps) > 0 {
		reqPath := requestPath(r)
		if (len(m.Path) > 0 || len(m.PathPrefix) > 0) && !m.matchPathGroup(reqPath) {
			return false, nil
		}
		for _, re := range m.pathRegexps {
			if !re.MatchString(reqPath) {
				return false, nil
			}
		}
	}
	if len(m.hosts) > 0 && !m.matchHost(r) {
		return false, nil
	}
	if len(m.Method) > 0 && !m.matchMethod(r) {
		return false, nil
	}
	for _, h := range m.Header {
		if !h.match(r) {
			return false, nil
		}
	}
	if len(m.Query) > 0 {
		// a malformed query string never matches (same as Caddy's query
		// matcher): parsers disagree on such input, and relying on parser
		// alignment for security is doomed
		query, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return false, nil
		}
		for _, q := range m.Query {
			if !q.match(query) {
				return false, nil
			}
		}
	}
	return true, nil
}

// matchPathGroup reports whether reqPath equals one of the exact paths or
// falls under one of the path prefixes.
func (m *MatchRoute) matchPathGroup(reqPath string) bool {
	for _, p := range m.Path {
		if reqPath == p {
			return true
		}
	}
	for _, prefix := range m.PathPrefix {
		if hasPathPrefix(reqPath, prefix) {
			return true
		}
	}
	return false
}

// matchHost reports whether the request's host matches any host pattern.
func (m *MatchRoute) matchHost(r *http.Request) bool {
	host := requestHost(r)
	for _, p := range m.hosts {
		if p.match(host) {
			return true
		}
	}
	return false
}

// matchMethod reports whether the request's method is one of m.Method,
// which Provision has upper-cased.
func (m *MatchRoute) matchMethod(r *http.Request) bool {
	method := strings.ToUpper(r.Method)
	for _, want := range m.Method {
		if method == want {
			return true
		}
	}
	return false
}

// Interface guards
var (
	_ caddy.Provisioner                 = (*MatchRoute)(nil)
	_ caddy.Validator                   = (*MatchRoute)(nil)
	_ caddyhttp.RequestMatcherWithError = (*MatchRoute)(nil)
)
