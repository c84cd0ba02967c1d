package kdladapter

import (
	"runtime"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// caddyConfig assembles the Caddy JSON document.
func (a *adapter) caddyConfig() obj {
	httpApp := obj{}
	cfg := obj{}
	apps := obj{"http": httpApp}
	cfg["apps"] = apps

	a.mapSystem(cfg, httpApp)
	if a.system == nil && a.apiEnabled() {
		cfg["admin"] = obj{"disabled": true}
	}

	servers := obj{}
	order := make([]string, 0, len(a.listeners))
	for _, l := range a.listeners {
		id := l.Args[0].Str
		servers[id] = a.mapListener(l)
		order = append(order, id)
	}
	a.mapMetrics(servers, httpApp)
	httpApp["servers"] = servers

	if logging := a.mapLogging(servers); logging != nil {
		cfg["logging"] = logging
	}
	mergeServers(servers, order)
	if tls := a.tls.json(); tls != nil {
		apps["tls"] = tls
	}
	if a.tls.internal {
		// Never touch the system trust store from a config.
		apps["pki"] = obj{"certificate_authorities": obj{"local": obj{"install_trust": false}}}
	}
	if app := a.mapAgents(); app != nil {
		apps["sentinel_agents"] = app
	}
	if app := a.sentinelApp(); app != nil {
		apps["sentinel"] = app
	}
	if a.storageRoot != "" {
		cfg["storage"] = obj{"module": "file_system", "root": a.storageRoot}
	}
	return cfg
}

// mapSystem maps the `system` block.
func (a *adapter) mapSystem(cfg, httpApp obj) {
	sys := a.system
	if sys == nil {
		return
	}
	if n := setting(sys, "worker-threads"); n != nil {
		if i, ok := a.integer(n, 0, 1<<16); ok && i != 0 && int(i) != runtime.NumCPU() {
			a.d.warnf(n.Pos, "system.worker-threads", "worker-threads %d is not applied: set GOMAXPROCS=%d in the environment instead", i, i)
		}
	}
	if n := setting(sys, "graceful-shutdown-timeout-secs"); n != nil {
		if d, ok := a.seconds(n); ok {
			httpApp["grace_period"] = d
		}
	}
	if n := setting(sys, "daemon"); n != nil {
		if b, ok := a.boolean(n); ok && b {
			a.d.warnf(n.Pos, "system.daemon", "daemon #true is not applied: run sentinel under a supervisor (systemd, Kubernetes) or use `sentinel start`")
		}
	}
	if n := setting(sys, "auto-reload"); n != nil {
		if b, ok := a.boolean(n); ok && b {
			a.d.warnf(n.Pos, "system.auto-reload", "auto-reload #true is not applied from the file: use `sentinel run --watch`")
		}
	}
	if n := setting(sys, "trace-id-format"); n != nil {
		if s, ok := a.str(n); ok {
			if f, ok := a.oneOf(n, s, "tinyflake", "uuid"); ok && f == "tinyflake" {
				a.d.warnf(n.Pos, "system.trace-id-format", "trace-id-format \"tinyflake\" is not available: request ids are UUIDs")
			}
		}
	}
	if n := setting(sys, "route-cache-size"); n != nil {
		a.integer(n, 1, 1<<40)
	}
	if n := setting(sys, "caddy-admin"); n != nil {
		if s, ok := a.str(n); ok {
			if strings.EqualFold(s, "off") {
				cfg["admin"] = obj{"disabled": true}
			} else {
				cfg["admin"] = obj{"listen": s}
			}
		}
	} else if a.apiEnabled() {
		// Caddy's admin endpoint has no authentication: it shows the
		// whole config and accepts a new one (POST /load '{"apps":{}}'
		// stops the proxy). With the control-plane API, which has
		// tokens, it is off unless asked for (`caddy-admin "…"`).
		cfg["admin"] = obj{"disabled": true}
	}
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
