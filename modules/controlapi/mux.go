package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

// call is one request being served.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	who *principal
	// ep is the endpoint serving the call, once routed.
	ep     *endpoint
	status int
	// code, when set, is the status to answer instead of the endpoint's.
	code int
	// audit details: what the call is about, its state before and after,
	// and the error answered.
	kind    string
	id      string
	before  any
	after   any
	errText string
	extra   []zap.Field
}

// callKey is the context key of the *call of a request.
type callKey struct{}

// ServeHTTP serves the API: it authenticates the caller before routing
// (an unauthenticated call to any path is answered 401, not 404), answers
// unknown paths 404 and wrong methods 405 as JSON, and hands the call to
// the ServeMux, whose handlers check the scope and run the endpoint.
// Mutations, and refused reads, are audited.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if uiPath(r.URL.Path) {
		s.ui.ServeHTTP(w, r)
		return
	}
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

	if ep, allow := s.lookup(r); ep == nil {
		if allow != nil {
			h.Set("Allow", strings.Join(allow, ", "))
			c.fail(newError(http.StatusMethodNotAllowed, "method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		c.fail(newError(http.StatusNotFound, "no such endpoint: %s", r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
}

// lookup returns the endpoint the ServeMux routes r to. Without one, it
// returns the methods the path allows (nil: no endpoint has the path).
// Unclean paths (with //, . or .. segments), which the ServeMux would
// redirect, have no endpoint; GET endpoints do not serve HEAD.
func (s *Server) lookup(r *http.Request) (*endpoint, []string) {
	if p := r.URL.EscapedPath(); cleanPath(p) != p {
		return nil, nil
	}
	if ep := s.routed(r); ep != nil && ep.method == r.Method {
		return ep, nil
	}
	var allow []string
	probe := r.Clone(r.Context())
	for _, m := range s.methods() {
		probe.Method = m
		if ep := s.routed(probe); ep != nil && ep.method == m {
			allow = append(allow, m)
		}
	}
	return nil, allow
}

// routed returns the endpoint the ServeMux has for r, if any.
func (s *Server) routed(r *http.Request) *endpoint {
	_, pattern := s.mux.Handler(r)
	return s.byPattern[pattern]
}

// methods returns the methods of the endpoints, sorted.
func (s *Server) methods() []string {
	seen := map[string]bool{}
	var out []string
	for _, ep := range s.endpoints {
		if !seen[ep.method] {
			seen[ep.method] = true
			out = append(out, ep.method)
		}
	}
	slices.Sort(out)
	return out
}

// cleanPath returns the canonical form of p, as the ServeMux computes it:
// no empty, . or .. segments; a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// endpointHandler is the ServeMux's handler of ep: it checks the scope
// of the caller, then runs the endpoint.
func (s *Server) endpointHandler(ep *endpoint) http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		// The mux is only reached through ServeHTTP, which authenticated
		// the call.
		c := r.Context().Value(callKey{}).(*call)
		c.r, c.ep = r, ep
		if c.who.scope < ep.scope {
			c.fail(newError(http.StatusForbidden, "%s %s needs the %s scope; %q has %s", r.Method, ep.pattern, ep.scope, c.who.name, c.who.scope))
			return
		}
		if ns := c.who.namespace; ns != "" {
			if !ep.namespaced {
				c.fail(newError(http.StatusForbidden, "%s %s is not available to a token scoped to a namespace; %q is scoped to %q", r.Method, ep.pattern, c.who.name, ns))
				return
			}
			if id := r.PathValue("id"); id != "" && !c.who.sees(id) {
				if ep.subject != "" {
					c.kind, c.id = ep.subject, id
				}
				c.fail(newError(http.StatusForbidden, "%q is scoped to namespace %q: %q is not in it", c.who.name, ns, id))
				return
			}
		}
		if ep.subject != "" {
			c.kind, c.id = ep.subject, r.PathValue("id")
		}
		if err := ep.run(s, c); err != nil {
			c.fail(err)
		}
	})
}

// mutation reports whether a method changes state (and is audited).
func mutation(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// reply writes a JSON response; v nil writes no body. A rawJSON is
// written as it is.
func (c *call) reply(status int, v any) {
	c.status = status
	h := c.w.Header()
	if v == nil {
		c.w.WriteHeader(status)
		return
	}
	body, ok := v.(rawJSON)
	if !ok {
		var err error
		if body, err = json.Marshal(v); err != nil {
			status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
			c.status = status
		}
		body = append(body, '\n')
	}
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
	c.reply(ae.status, errorBody{Error: ae.message, Field: ae.field, Errors: ae.lines})
}
