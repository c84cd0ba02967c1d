// Package routeguard is the handler http.handlers.sentinel_route: the
// first handler of every Sentinel route, answering 503 at once when the
// route is disabled through the control-plane API (no reload). It also
// counts the route's requests by status code and times them
// (sentinel_route_requests_total, sentinel_route_request_duration_seconds:
// see package metrics), which Caddy's own HTTP metrics cannot do, since
// they label every request with the first handler's name only.
package routeguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/metrics"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Guard{})
	httpcaddyfile.RegisterHandlerDirective("sentinel_route", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_route", httpcaddyfile.Before, "map")
}

// Guard passes requests on while its route is enabled, and answers 503
// with a JSON body while it is disabled. (A route can instead fall
// through to the next one when disabled: see the `sentinel` matcher's
// `route` field.)
type Guard struct {
	// Route is the route id, as the control-plane API names it.
	Route string `json:"route"`

	// HandleRaw are the handlers the guard runs after itself, in order:
	// the rest of the route's handlers, folded into the guard. Optional;
	// without it, the guard passes the request on to the route's next
	// handler. Folded, the route's handlers cost nothing more per request
	// than without the guard: Caddy compiles a route's middleware chain
	// on every request, with one allocation per handler, while the guard
	// calls a single folded handler directly (several are chained per
	// request, as Caddy would).
	HandleRaw []json.RawMessage `json:"handle,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	// HandleInApp takes the folded handlers from the sentinel_routes app
	// (App), under the route id, instead of from handle (which must then
	// be empty). The KDL adapter writes routes so: Caddy decodes each
	// route's handler into a map and encodes it again to read its name,
	// which is cheap for a guard naming its route only (see App).
	HandleInApp bool `json:"handle_in_app,omitempty"`

	handlers []caddyhttp.MiddlewareHandler
	flag     *registry.RouteFlag
	body     []byte
	metrics  *metrics.Route
	writers  *statusWriters
	// reg is the metrics registry whose shared route metrics the guard
	// holds (released in Cleanup).
	reg prometheus.Registerer
}

// disabledBody is the JSON body of a disabled route's 503 (its fields in
// the order of their names, as a map would encode them).
type disabledBody struct {
	Error  string `json:"error"`
	Route  string `json:"route"`
	Status int    `json:"status"`
}

// CaddyModule returns the Caddy module information.
func (Guard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_route",
		New: func() caddy.Module { return new(Guard) },
	}
}

// Provision loads the folded handlers, looks up the route's switch and
// registers Sentinel's metrics on the config's metrics registry.
func (g *Guard) Provision(ctx caddy.Context) error {
	routes, err := registry.From(ctx)
	if err != nil {
		return fmt.Errorf("sentinel_route %q: %w", g.Route, err)
	}
	raws := g.HandleRaw
	var shared map[string]caddyhttp.MiddlewareHandler
	var proxies *proxyShares
	if g.HandleInApp {
		if len(raws) > 0 {
			return fmt.Errorf("sentinel_route %q: handle and handle_in_app exclude each other", g.Route)
		}
		mod, err := ctx.App(AppName)
		if err != nil {
			return fmt.Errorf("sentinel_route %q: %w", g.Route, err)
		}
		app := mod.(*App)
		if raws, err = app.handlersOf(g.Route); err != nil {
			return fmt.Errorf("sentinel_route %q: %w", g.Route, err)
		}
		shared, proxies = app.sharedHandlers(), app.proxyShares()
	}
	if raws != nil {
		// As ctx.LoadModule(g, "HandleRaw"), without its decoding and
		// encoding again of each handler's JSON (inline.go).
		hs, err := loadHandlers(ctx, raws, shared, proxies)
		if err != nil {
			return fmt.Errorf("sentinel_route %q: loading the route's handlers: %w", g.Route, err)
		}
		g.handlers, g.HandleRaw = hs, nil
	}
	g.flag = routes.RouteFlagOrNew(g.Route)
	g.writers = new(statusWriters)
	g.body, _ = json.Marshal(disabledBody{Error: fmt.Sprintf("route %q is disabled", g.Route), Route: g.Route, Status: http.StatusServiceUnavailable})
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		m, err := routeMetrics(reg, routes)
		if err != nil {
			return fmt.Errorf("sentinel_route %q: %w", g.Route, err)
		}
		g.reg = reg
		g.metrics = m.For(g.Route)
	}
	return nil
}

// Cleanup releases the guard's share of its config's route metrics.
func (g *Guard) Cleanup() error {
	if g.reg != nil {
		releaseMetrics(g.reg)
	}
	return nil
}

// Validate checks the route id.
func (g *Guard) Validate() error {
	if g.Route == "" {
		return fmt.Errorf("sentinel_route: route id is required")
	}
	return nil
}

// ServeHTTP answers 503 while the route is disabled, and records the
// request in the route's metrics.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.metrics == nil {
		return g.serve(w, r, next)
	}
	start := time.Now()
	sw := g.writers.get(w)
	err := g.serve(sw, r, next)
	code := sw.Status()
	g.writers.put(sw)
	if err != nil {
		// The server's error routes write the response after we return;
		// its status is the error's.
		code = http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			code = he.StatusCode
		}
	}
	g.metrics.Observe(code, time.Since(start))
	return err
}

// serve passes the request on, or answers 503 while the route is
// disabled.
func (g *Guard) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.flag.Enabled() {
		return g.pass(w, r, next)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, err := w.Write(g.body)
	return err
}

// pass runs the folded handlers, then next; next alone without them.
func (g *Guard) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch len(g.handlers) {
	case 0:
		return next.ServeHTTP(w, r)
	case 1:
		return g.handlers[0].ServeHTTP(w, r, next)
	}
	h := next
	for i := len(g.handlers) - 1; i >= 0; i-- {
		h = chained{g.handlers[i], h}
	}
	return h.ServeHTTP(w, r)
}

// chained is a middleware handler with its next handler.
type chained struct {
	mh   caddyhttp.MiddlewareHandler
	next caddyhttp.Handler
}

// ServeHTTP runs the handler with its next one.
func (c chained) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	return c.mh.ServeHTTP(w, r, c.next)
}

// UnmarshalCaddyfile reads `sentinel_route <id>`.
func (g *Guard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	g.Route = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Guard)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Guard)(nil)
	_ caddy.Validator             = (*Guard)(nil)
	_ caddy.CleanerUpper          = (*Guard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Guard)(nil)
	_ caddyfile.Unmarshaler       = (*Guard)(nil)
)
