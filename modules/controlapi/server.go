// Package controlapi is Sentinel's control-plane HTTP API, /api/v1: it
// lists and changes the upstreams and targets of the registry (adding,
// removing, reweighting and draining targets), switches routes on and
// off, reloads and validates the configuration, and describes itself as
// an OpenAPI 3.0 document at /api/v1/openapi.json.
//
// The sentinel app serves a Server on a listener of its own. Every call
// is authenticated (bearer tokens with scopes, or verified client
// certificates), every mutation is written to the audit log, and request
// bodies are decoded strictly (unknown or repeated fields, trailing data
// and oversized bodies are refused).
package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

// Hooks are the app's callbacks for what the registry cannot do. A nil
// hook disables its endpoints (501 for reload and validate, an empty list
// or 404 for agents).
type Hooks struct {
	// Reload re-reads the config file and applies it. Its result is added
	// to the 200 response; an error is answered 422, each of its lines
	// (or joined errors) an element of "errors".
	Reload func(ctx context.Context) (map[string]any, error)

	// Validate adapts and provisions the config file without applying
	// it. It returns the problems found as "file:line:col: msg" lines; an
	// error means the file could not be validated at all.
	Validate func(ctx context.Context) ([]string, error)

	// Agents lists the agents, each with at least an "id"; nil until
	// agents exist.
	Agents func() []map[string]any

	// OwnAddresses lists the proxy's own listening addresses (host:port;
	// an empty host is a wildcard), which targets added through the API
	// may never point at. Nil: none besides the API's own.
	OwnAddresses func() []string

	// Resolve looks up the addresses of a target's host name (nil: the
	// system resolver).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Server is the handler of the control-plane API.
type Server struct {
	reg        *registry.Registry
	audit      *zap.Logger
	hooks      Hooks
	tokens     []tokenEntry
	identities map[string]struct{}
	maxBody    int64
	routes     []route
	csrf       *http.CrossOriginProtection
	policy     *targetPolicy
	// refusals bounds the audit entries of refused read calls, so that
	// a flood of unauthenticated requests cannot fill a disk.
	refusals *rate.Limiter
	// suppressed counts the refused reads not audited since the last
	// entry.
	suppressed atomic.Int64
	// reloading is held while a reload runs; concurrent reloads are
	// refused.
	reloading sync.Mutex
}

// New validates cfg and returns the API's handler for reg. audit receives
// one entry per mutation (nil: none); hooks may be left zero.
func New(cfg Config, reg *registry.Registry, audit *zap.Logger, hooks Hooks) (*Server, error) {
	if reg == nil {
		return nil, errors.New("controlapi: no registry")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if audit == nil {
		audit = zap.NewNop()
	}
	s := &Server{
		reg:        reg,
		audit:      audit,
		hooks:      hooks,
		tokens:     newTokenEntries(cfg.Tokens),
		identities: map[string]struct{}{},
		maxBody:    cfg.maxBody(),
		csrf:       http.NewCrossOriginProtection(),
	}
	if cfg.certAuth() {
		for _, id := range cfg.TLS.AllowedIdentities {
			s.identities[strings.ToLower(id)] = struct{}{}
		}
	}
	own := hooks.OwnAddresses
	listen := cfg.ListenAddress()
	hooks.OwnAddresses = func() []string {
		var out []string
		if own != nil {
			out = own()
		}
		return append(out, listen)
	}
	s.policy = newTargetPolicy(cfg, hooks)
	s.refusals = rate.NewLimiter(refusalRate, refusalBurst)
	s.routes = s.routeTable()
	return s, nil
}

// call is one request being served.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	who    *principal
	params map[string]string
	status int
	// audit details: what the call is about, its state before and after,
	// and the error answered.
	kind    string
	id      string
	before  any
	after   any
	errText string
	extra   []zap.Field
}

// ServeHTTP serves the API: it authenticates the caller, routes the
// request, checks the scope, runs the endpoint and audits mutations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	defer func() {
		if mutation(r.Method) || c.status == http.StatusUnauthorized || c.status == http.StatusForbidden {
			s.auditCall(c)
		}
	}()

	if err := s.csrf.Check(r); err != nil {
		c.fail(newError(http.StatusForbidden, "cross-origin browser requests are refused"))
		return
	}
	who, why := s.authenticate(r)
	if who == nil {
		h.Set("WWW-Authenticate", `Bearer realm="sentinel"`)
		c.fail(newError(http.StatusUnauthorized, "%s", string(why)))
		return
	}
	c.who = who

	rt, params, allow := s.match(r)
	if rt == nil {
		if allow != nil {
			h.Set("Allow", strings.Join(allow, ", "))
			c.fail(newError(http.StatusMethodNotAllowed, "method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		c.fail(newError(http.StatusNotFound, "no such endpoint: %s", r.URL.Path))
		return
	}
	c.params = params
	if who.scope < rt.scope {
		c.fail(newError(http.StatusForbidden, "%s %s needs the %s scope; %q has %s", r.Method, rt.pattern, rt.scope, who.name, who.scope))
		return
	}
	if err := rt.handle(c); err != nil {
		c.fail(err)
	}
}

// mutation reports whether a method changes state (and is audited).
func mutation(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// reply writes a JSON response; v nil writes no body.
func (c *call) reply(status int, v any) {
	c.status = status
	h := c.w.Header()
	if v == nil {
		c.w.WriteHeader(status)
		return
	}
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
		c.status = status
	}
	body = append(body, '\n')
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

// fail answers an error.
func (c *call) fail(err error) {
	ae := toAPIError(err)
	if errors.Is(err, registry.ErrPersist) {
		c.extra = append(c.extra, zap.String("cause", err.Error()))
	}
	c.errText = ae.message
	c.reply(ae.status, errorBody{Error: ae.message, Field: ae.field})
}

// route is an endpoint of the API.
type route struct {
	method string
	// pattern is the path, with {name} for a parameter segment.
	pattern  string
	segments []string
	scope    scope
	handle   func(*call) error
}

// routeTable returns the endpoints.
func (s *Server) routeTable() []route {
	rs := []route{
		{method: http.MethodGet, pattern: "/api/v1/upstreams", scope: scopeRead, handle: s.listUpstreams},
		{method: http.MethodPost, pattern: "/api/v1/upstreams", scope: scopeAdmin, handle: s.createUpstream},
		{method: http.MethodGet, pattern: "/api/v1/upstreams/{id}", scope: scopeRead, handle: s.getUpstream},
		{method: http.MethodDelete, pattern: "/api/v1/upstreams/{id}", scope: scopeAdmin, handle: s.deleteUpstream},
		{method: http.MethodPut, pattern: "/api/v1/upstreams/{id}/targets", scope: scopeAdmin, handle: s.putTargets},
		{method: http.MethodPost, pattern: "/api/v1/upstreams/{id}/targets", scope: scopeAdmin, handle: s.addTarget},
		{method: http.MethodPatch, pattern: "/api/v1/upstreams/{id}/targets/{address}", scope: scopeOperate, handle: s.patchTarget},
		{method: http.MethodDelete, pattern: "/api/v1/upstreams/{id}/targets/{address}", scope: scopeAdmin, handle: s.removeTarget},
		{method: http.MethodPost, pattern: "/api/v1/upstreams/{id}/drain", scope: scopeOperate, handle: s.drainUpstream},
		{method: http.MethodPost, pattern: "/api/v1/upstreams/{id}/targets/{address}/drain", scope: scopeOperate, handle: s.drainTarget},
		{method: http.MethodGet, pattern: "/api/v1/routes", scope: scopeRead, handle: s.listRoutes},
		{method: http.MethodPut, pattern: "/api/v1/routes/{id}/enabled", scope: scopeOperate, handle: s.setRouteEnabled},
		{method: http.MethodGet, pattern: "/api/v1/agents", scope: scopeRead, handle: s.listAgents},
		{method: http.MethodGet, pattern: "/api/v1/agents/{id}/status", scope: scopeRead, handle: s.agentStatus},
		{method: http.MethodPost, pattern: "/api/v1/config/reload", scope: scopeAdmin, handle: s.reload},
		{method: http.MethodGet, pattern: "/api/v1/config/validate", scope: scopeAdmin, handle: s.validate},
		{method: http.MethodGet, pattern: "/api/v1/state", scope: scopeRead, handle: s.stateStatus},
		{method: http.MethodGet, pattern: "/api/v1/openapi.json", scope: scopeRead, handle: s.openAPI},
	}
	for i := range rs {
		rs[i].segments = strings.Split(strings.TrimPrefix(rs[i].pattern, "/"), "/")
	}
	return rs
}

// match finds the route of r and its parameters. With no route for the
// method but some for the path, it returns the allowed methods.
func (s *Server) match(r *http.Request) (*route, map[string]string, []string) {
	raw := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	segs := make([]string, len(raw))
	for i, seg := range raw {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, nil, nil
		}
		segs[i] = u
	}
	var allow []string
	for i := range s.routes {
		rt := &s.routes[i]
		params, ok := rt.matchPath(segs)
		if !ok {
			continue
		}
		if rt.method == r.Method {
			return rt, params, nil
		}
		allow = append(allow, rt.method)
	}
	sort.Strings(allow)
	return nil, nil, allow
}

// matchPath matches the unescaped segments of a path.
func (rt *route) matchPath(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segments) {
		return nil, false
	}
	var params map[string]string
	for i, p := range rt.segments {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[strings.Trim(p, "{}")] = segs[i]
			continue
		}
		if segs[i] != p {
			return nil, false
		}
	}
	return params, true
}
