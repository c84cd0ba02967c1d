// Package cors provides the `sentinel_cors` handler, which implements
// Cross-Origin Resource Sharing: it answers preflight requests itself and
// adds the CORS response headers to the responses of allowed origins.
package cors

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/headerhook"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(CORS{})
	httpcaddyfile.RegisterHandlerDirective("sentinel_cors", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_cors", httpcaddyfile.Before, "header")
}

// DefaultMaxAge is how long browsers may cache a preflight response when
// max_age is not configured.
const DefaultMaxAge = 24 * time.Hour

// DefaultAllowedMethods returns the methods allowed when allowed_methods
// is not configured: GET, POST, PUT, PATCH, DELETE and OPTIONS.
func DefaultAllowedMethods() []string {
	return []string{
		http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions,
	}
}

// CORS is a middleware implementing Cross-Origin Resource Sharing, with
// the behavior of Envoy's and rs/cors' CORS filters:
//
//   - A request without an `Origin` header is passed on untouched.
//   - A preflight request (`OPTIONS` with `Origin` and
//     `Access-Control-Request-Method`) is answered by this handler and
//     never passed on: from an allowed origin, asking for an allowed method
//     and allowed headers, with 204 No Content and the
//     `Access-Control-Allow-*` headers; otherwise with 403 Forbidden. Both
//     carry `Vary: Origin, Access-Control-Request-Method,
//     Access-Control-Request-Headers`.
//   - Any other request from an allowed origin is passed on, and
//     `Access-Control-Allow-Origin` (plus `Access-Control-Allow-Credentials`
//     and `Access-Control-Expose-Headers` when configured) are set on its
//     response when the response header is written, replacing any the
//     next handlers (such as a proxied upstream) set, and `Origin` is added
//     to `Vary`. They are also set if the next handler fails, so that the
//     browser can read the error response.
//   - Any other request from a disallowed origin is passed on without CORS
//     headers (only `Vary: Origin` is added, so that caches keep the
//     responses for different origins apart).
type CORS struct {
	// The origins allowed to make cross-origin requests; required. Each
	// entry is one of:
	//
	// - `*`: any origin except `null`;
	// - an origin, `scheme://host[:port]`, such as `https://app.example.com`,
	//   compared case-insensitively;
	// - a wildcard origin such as `https://*.example.com`, which allows
	//   every origin of that scheme (and port) whose host has at least one
	//   label in front of `.example.com` (`https://a.example.com`,
	//   `https://a.b.example.com`, but not `https://example.com` nor
	//   `http://a.example.com`);
	// - `null`, the origin of sandboxed documents and local files, which is
	//   only allowed when listed explicitly.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// The methods a preflight request may ask for; they are listed in
	// `Access-Control-Allow-Methods`. Defaults to GET, POST, PUT, PATCH,
	// DELETE and OPTIONS. The CORS-safelisted methods GET, HEAD and POST
	// are always allowed, as browsers never restrict them.
	AllowedMethods []string `json:"allowed_methods,omitempty"`

	// The request headers a preflight request may ask for
	// (case-insensitive); they are listed in `Access-Control-Allow-Headers`.
	// If empty, or if it contains `*`, any requested headers are allowed and
	// `Access-Control-Allow-Headers` repeats the preflight's
	// `Access-Control-Request-Headers`.
	AllowedHeaders []string `json:"allowed_headers,omitempty"`

	// The response headers that browsers may expose to the page, sent in
	// `Access-Control-Expose-Headers` on actual (non-preflight) responses.
	ExposedHeaders []string `json:"exposed_headers,omitempty"`

	// Whether the browser may send credentials (cookies, HTTP
	// authentication, client certificates) and expose the response. When
	// true, `Access-Control-Allow-Credentials: true` is sent and the
	// `Access-Control-Allow-Origin` is always the request's origin, never
	// `*`; allowed_origins must then list the origins (exact or wildcard
	// ones): `*` with credentials is refused, since it would let every web
	// site read its visitors' authenticated responses. When false, an `Access-Control-Allow-Credentials` header set by
	// the next handlers is removed from responses to allowed origins.
	AllowCredentials bool `json:"allow_credentials,omitempty"`

	// How long browsers may cache a preflight response, sent in whole
	// seconds in `Access-Control-Max-Age`. Defaults to 86400s (24h) when
	// omitted; `0s` sends `Access-Control-Max-Age: 0` (no caching); a
	// negative duration omits the header (browsers then use their own
	// default of a few seconds).
	MaxAge *caddy.Duration `json:"max_age,omitempty"`

	origins       originMatcher
	methods       map[string]struct{}
	allowMethods  string
	headers       map[string]struct{} // nil: any header
	allowHeaders  string
	exposeHeaders string
	maxAge        string
	varyPreflight string
	logger        *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (CORS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_cors",
		New: func() caddy.Module { return new(CORS) },
	}
}

// Provision compiles the configuration and applies the defaults.
func (c *CORS) Provision(ctx caddy.Context) error {
	c.logger = ctx.Logger()

	origins, err := compileOrigins(c.AllowedOrigins)
	if err != nil {
		return err
	}
	c.origins = origins

	if len(c.AllowedMethods) == 0 {
		c.AllowedMethods = DefaultAllowedMethods()
	}
	c.methods = make(map[string]struct{}, len(c.AllowedMethods))
	for i, m := range c.AllowedMethods {
		c.AllowedMethods[i] = strings.ToUpper(strings.TrimSpace(m))
		c.methods[c.AllowedMethods[i]] = struct{}{}
	}
	c.allowMethods = strings.Join(c.AllowedMethods, ", ")

	c.headers = nil
	for _, h := range c.AllowedHeaders {
		if strings.TrimSpace(h) == "*" {
			c.headers = nil
			break
		}
		if c.headers == nil {
			c.headers = make(map[string]struct{}, len(c.AllowedHeaders))
		}
		c.headers[strings.ToLower(strings.TrimSpace(h))] = struct{}{}
	}
	if c.headers != nil {
		c.allowHeaders = strings.Join(c.AllowedHeaders, ", ")
	}
	c.exposeHeaders = strings.Join(c.ExposedHeaders, ", ")

	maxAge := DefaultMaxAge
	if c.MaxAge != nil {
		maxAge = time.Duration(*c.MaxAge)
	}
	c.maxAge = ""
	if maxAge >= 0 {
		c.maxAge = strconv.FormatInt(int64(maxAge/time.Second), 10)
	}
	c.varyPreflight = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	return nil
}

// Validate checks the configuration.
func (c *CORS) Validate() error {
	if len(c.AllowedOrigins) == 0 {
		return fmt.Errorf("allowed_origins: at least one origin (or '*') is required")
	}
	origins, err := compileOrigins(c.AllowedOrigins)
	if err != nil {
		return err
	}
	if origins.any && c.AllowCredentials {
		// Reflecting any origin with credentials would let every web
		// site read its visitors' authenticated responses.
		return fmt.Errorf("allowed_origins: '*' cannot be combined with allow_credentials " +
			"(every web site could make credentialed requests and read the responses); " +
			"list the origins, or wildcard origins such as https://*.example.com")
	}
	for i, m := range c.AllowedMethods {
		if strings.TrimSpace(m) == "" {
			return fmt.Errorf("allowed_methods %d: empty method", i)
		}
	}
	for i, h := range c.AllowedHeaders {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("allowed_headers %d: empty header name", i)
		}
	}
	for i, h := range c.ExposedHeaders {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("exposed_headers %d: empty header name", i)
		}
	}
	return nil
}

// ServeHTTP applies the CORS policy to the request.
func (c *CORS) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return next.ServeHTTP(w, r)
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return c.preflight(w, r, origin)
	}

	allowOrigin, ok := c.allowOrigin(origin)
	if !ok {
		w.Header().Add("Vary", "Origin")
		c.logger.Debug("cross-origin request from a disallowed origin; passing it on without CORS headers",
			zap.String("origin", origin))
		return next.ServeHTTP(w, r)
	}

	apply := func(h http.Header) { c.applyActual(h, allowOrigin) }
	cw := headerhook.Wrap(w, apply)
	err := next.ServeHTTP(cw, r)
	if err != nil && !cw.WroteHeader() {
		// the error response is written by the server (or its error
		// routes) to w: let the browser read it
		apply(w.Header())
	}
	return err
}

// preflight answers a preflight request; it never calls the next handler.
func (c *CORS) preflight(w http.ResponseWriter, r *http.Request, origin string) error {
	hdr := w.Header()
	hdr.Add("Vary", c.varyPreflight)

	allowOrigin, ok := c.allowOrigin(origin)
	if !ok {
		return caddyhttp.Error(http.StatusForbidden,
			fmt.Errorf("CORS preflight rejected: origin %q is not allowed", origin))
	}
	method := r.Header.Get("Access-Control-Request-Method")
	if !c.methodAllowed(method) {
		return caddyhttp.Error(http.StatusForbidden,
			fmt.Errorf("CORS preflight rejected: method %q is not allowed for origin %q", method, origin))
	}
	requested := requestedHeaders(r.Header)
	for _, h := range requested {
		if !c.headerAllowed(h) {
			return caddyhttp.Error(http.StatusForbidden,
				fmt.Errorf("CORS preflight rejected: header %q is not allowed for origin %q", h, origin))
		}
	}

	hdr.Set("Access-Control-Allow-Origin", allowOrigin)
	if c.AllowCredentials {
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}
	hdr.Set("Access-Control-Allow-Methods", c.allowMethods)
	switch {
	case c.headers != nil:
		hdr.Set("Access-Control-Allow-Headers", c.allowHeaders)
	case len(requested) > 0:
		hdr.Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
	}
	if c.maxAge != "" {
		hdr.Set("Access-Control-Max-Age", c.maxAge)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// applyActual sets the CORS headers of a response to an actual request
// from an allowed origin, replacing any set by the next handlers.
func (c *CORS) applyActual(hdr http.Header, allowOrigin string) {
	hdr.Set("Access-Control-Allow-Origin", allowOrigin)
	if c.AllowCredentials {
		hdr.Set("Access-Control-Allow-Credentials", "true")
	} else {
		hdr.Del("Access-Control-Allow-Credentials")
	}
	if c.exposeHeaders != "" {
		hdr.Set("Access-Control-Expose-Headers", c.exposeHeaders)
	}
	addVary(hdr, "Origin")
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin,
// and whether the origin is allowed at all.
func (c *CORS) allowOrigin(origin string) (string, bool) {
	allowed, viaAny := c.origins.match(origin)
	if !allowed {
		return "", false
	}
	if viaAny && !c.AllowCredentials {
		return "*", true
	}
	return origin, true
}

// methodAllowed reports whether a preflight may ask for method. The
// CORS-safelisted methods are always allowed, as in the Fetch standard.
func (c *CORS) methodAllowed(method string) bool {
	method = strings.ToUpper(strings.TrimSpace(method))
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return true
	}
	_, ok := c.methods[method]
	return ok
}

// headerAllowed reports whether a preflight may ask for the (lower-case)
// request header name.
func (c *CORS) headerAllowed(name string) bool {
	if c.headers == nil {
		return true
	}
	_, ok := c.headers[name]
	return ok
}

// requestedHeaders returns the lower-cased, non-empty header names listed
// in the preflight's Access-Control-Request-Headers fields.
func requestedHeaders(hdr http.Header) []string {
	var names []string
	for _, line := range hdr.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(line, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// addVary adds field to the Vary header unless it is already listed.
func addVary(hdr http.Header, field string) {
	for _, line := range hdr.Values("Vary") {
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v == "*" || strings.EqualFold(v, field) {
				return
			}
		}
	}
	hdr.Add("Vary", field)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*CORS)(nil)
	_ caddy.Validator             = (*CORS)(nil)
	_ caddyhttp.MiddlewareHandler = (*CORS)(nil)
)
