package kdladapter

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddypki"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/routeguard"
)

// The keys of Caddy's config set here.
var (
	adminKey   = jsonKeyOf(func(c *caddy.Config) any { return &c.Admin })
	storageKey = jsonKeyOf(func(c *caddy.Config) any { return &c.StorageRaw })
)

// caddyConfig assembles the Caddy JSON document.
func (a *adapter) caddyConfig() obj {
	app, admin := a.mapSystem()
	httpApp := typedTree(app)
	cfg := obj{}
	apps := obj{string(caddyhttp.App{}.CaddyModule().ID): httpApp}
	cfg["apps"] = apps
	if admin != nil {
		cfg[adminKey] = typedTree(admin)
	}

	servers := obj{}
	order := make([]string, 0, len(a.listeners))
	for _, l := range a.listeners {
		id := l.Args[0].Str
		servers[id] = a.mapListener(l)
		order = append(order, id)
	}
	a.mapTracing(servers, apps)
	a.mapMetrics(servers, httpApp)
	a.warnSharedBreakers() // nsbreakers.go: the upstreams are mapped now
	httpApp["servers"] = servers

	if logging := a.mapLogging(servers); logging != nil {
		cfg[loggingKey] = logging
	}
	mergeServers(servers, order)
	tlsApp := a.tlsApp()
	if tls := tlsApp.json(); tls != nil {
		apps[string(caddytls.TLS{}.CaddyModule().ID)] = tls
	}
	if pki := tlsApp.pki(); pki != nil {
		apps[string(caddypki.PKI{}.CaddyModule().ID)] = pki
	}
	if app := a.mapAgents(); app != nil {
		apps["sentinel_agents"] = app
	}
	if app := a.mapAudit(); app != nil {
		apps[audit.AppName] = app
	}
	if app := a.routeHandlersApp(); app != nil { // routes.go
		apps[routeguard.AppName] = app
	}
	if app := a.sentinelApp(admin); app != nil {
		apps["sentinel"] = app
	}
	if storage := a.acmeStorage(); storage != nil {
		cfg[storageKey] = storage
	}
	return cfg
}

// limitSetting returns the first of the given spellings present in the
// limits block.
func (a *adapter) limitSetting(names ...string) *kdl.Node {
	for _, n := range names {
		if s := setting(a.limits, n); s != nil {
			return s
		}
	}
	return nil
}
