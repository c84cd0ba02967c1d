package routeguard

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(App{})
}

// AppName is the ID of the app holding the routes' folded handlers.
const AppName = "sentinel_routes"

// App holds the folded handlers of the configuration's routes, by route
// id: a guard with handle_in_app loads its route's handlers from here
// instead of from its own handle.
//
// Why: Caddy finds the module name of each handler of a route by
// decoding the handler's whole JSON into a map and encoding the map
// again (caddy.getModuleNameInline), at a cost per byte and per value. A
// guard holding its route's handlers (a reverse_proxy with its transport
// and selection policy, headers, timeouts…) made that the largest single
// cost of provisioning 10,000 routes (issue 13.8). A guard that names its
// route only is a few bytes for that round trip; the app is decoded once,
// its handlers kept as raw JSON, and each guard loads its own with the
// name scan of inline.go. Caddy's admin API shows the handlers under
// /config/apps/sentinel_routes/routes/<route id>.
type App struct {
	// Routes are the handlers of each route after its guard, in order,
	// by route id. The route's guards (one per server holding the route)
	// load them when provisioned.
	Routes map[string][]json.RawMessage `json:"routes,omitempty"`

	// shared are the config's handlers of shareable modules, by their
	// JSON (inline.go).
	shared map[string]caddyhttp.MiddlewareHandler
	// proxies are the modules the config's reverse proxies share
	// (proxy.go).
	proxies *proxyShares
	// started: the guards of the config are provisioned, the handlers'
	// JSON has been dropped. (Caddy provisions a config's modules one at
	// a time and starts its apps after: no lock.)
	started bool
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppName,
		New: func() caddy.Module { return new(App) },
	}
}

// handlersOf returns the folded handlers of route.
func (a *App) handlersOf(route string) ([]json.RawMessage, error) {
	if a.started {
		return nil, fmt.Errorf("the %s app no longer holds the handlers (the config is running)", AppName)
	}
	hs, ok := a.Routes[route]
	if !ok {
		return nil, fmt.Errorf("the %s app has no handlers for route %q", AppName, route)
	}
	return hs, nil
}

// sharedHandlers returns the handlers the config's guards share.
func (a *App) sharedHandlers() map[string]caddyhttp.MiddlewareHandler {
	if a.shared == nil {
		a.shared = make(map[string]caddyhttp.MiddlewareHandler)
	}
	return a.shared
}

// proxyShares returns the modules the config's reverse proxies share.
func (a *App) proxyShares() *proxyShares {
	if a.proxies == nil {
		a.proxies = &proxyShares{transports: make(map[string]http.RoundTripper), retry: make(map[string]caddyhttp.MatcherSets)}
	}
	return a.proxies
}

// Start drops the handlers' JSON: every guard of the config is
// provisioned by now (Caddy starts the apps after provisioning them all),
// and the JSON of 100,000 routes' handlers is tens of megabytes.
func (a *App) Start() error {
	a.started, a.Routes, a.shared, a.proxies = true, nil, nil, nil
	return nil
}

// Stop does nothing.
func (*App) Stop() error { return nil }

// Interface guards
var _ caddy.App = (*App)(nil)
