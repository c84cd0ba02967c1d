package kdladapter

import (
	"slices"
	"sort"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// defaultMetricsAddress is the original's metrics address.
const defaultMetricsAddress = "0.0.0.0:9090"

// accessLogName is the Caddy logger name of the access log.
const accessLogName = "sentinel_access"

// mapMetrics serves Prometheus metrics at observability.metrics'
// address and path: on the listener with that address, or on a server of
// its own. It enables Caddy's HTTP metrics whenever metrics are served.
func (a *adapter) mapMetrics(servers obj, httpApp obj) {
	m := setting(a.observability, "metrics")
	enabled := m != nil
	if n := setting(m, "enabled"); n != nil {
		enabled = boolOr(a, n, true)
	}
	if n := setting(m, "high-cardinality"); n != nil {
		if b, ok := a.boolean(n); ok && b {
			a.d.warnf(n.Pos, "observability.metrics.high-cardinality", "high-cardinality #true is not applied: Caddy's metric labels are fixed")
		}
	}
	if enabled {
		addr, path := defaultMetricsAddress, "/metrics"
		if n := setting(m, "address"); n != nil {
			if s, ok := a.str(n); ok {
				addr = s
			}
		}
		if n := setting(m, "path"); n != nil {
			if s, ok := a.str(n); ok {
				if !strings.HasPrefix(s, "/") {
					a.d.errorf(n.Args[0].Pos, "metrics path %q must start with /", s)
				}
				path = s
			}
		}
		route := obj{"match": []obj{{"path": []string{path}}}, "handle": []obj{{"handler": "metrics"}}, "terminal": true}
		placed := false
		ids := make([]string, 0, len(servers))
		for id := range servers {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			srv := servers[id].(obj)
			if listen, _ := srv["listen"].([]string); len(listen) == 1 && listen[0] == addr {
				routes, _ := srv["routes"].([]any)
				srv["routes"] = append([]any{route}, routes...)
				placed = true
			}
		}
		if !placed {
			servers["sentinel-metrics"] = obj{
				"listen":            []string{addr},
				"listener_wrappers": []obj{{"wrapper": "sentinel_handoff"}, {"wrapper": "tls"}, {"wrapper": "sentinel_framing"}},
				"automatic_https":   obj{"disable": true},
				"protocols":         []string{"h1"},
				"routes":            []obj{route, {"handle": []obj{{"handler": "sentinel_builtin", "kind": "not_found"}}, "terminal": true}},
			}
		}
	}
	if enabled || slices.ContainsFunc(a.routes, servesMetrics) {
		httpApp["metrics"] = obj{}
	}
}

// accessLogEnabled reports whether observability.logging.access-log is on.
func (a *adapter) accessLogEnabled() bool {
	al := setting(setting(a.observability, "logging"), "access-log")
	if al == nil {
		return false
	}
	if n := setting(al, "enabled"); n != nil {
		return boolOr(a, n, true)
	}
	return true
}

// logWriter maps a file setting to a Caddy log writer.
func (a *adapter) logWriter(n *kdl.Node) obj {
	if n == nil {
		return nil
	}
	f, ok := a.str(n)
	if !ok || f == "" {
		return nil
	}
	switch f {
	case "stdout", "stderr":
		return obj{"output": f}
	}
	return obj{"output": "file", "filename": f}
}

// level checks a log level and returns Caddy's spelling.
func (a *adapter) level(n *kdl.Node) string {
	s, ok := a.str(n)
	if !ok {
		return ""
	}
	l, ok := a.oneOf(n, s, "trace", "debug", "info", "warn", "error")
	if !ok {
		return ""
	}
	if l == "trace" {
		a.d.warnf(n.Pos, "observability.logging.level", "level \"trace\" is logged as debug")
		l = "debug"
	}
	return strings.ToUpper(l)
}

// mapLogging maps observability.logging to Caddy's logging config and
// turns on the servers' access logs. It returns nil when nothing is set.
func (a *adapter) mapLogging(servers obj) obj {
	lg := setting(a.observability, "logging")
	anyLogged := false
	for _, r := range a.routeTable() {
		anyLogged = anyLogged || r.logged
	}
	if lg == nil && !anyLogged {
		return nil
	}
	def := obj{}
	encoder := obj{"format": "json"}
	if n := setting(lg, "format"); n != nil {
		if s, ok := a.str(n); ok {
			if f, ok := a.oneOf(n, s, "json", "pretty"); ok && f == "pretty" {
				encoder = obj{"format": "console"}
			}
		}
	}
	if n := setting(lg, "timestamps"); n != nil {
		if b, ok := a.boolean(n); ok && !b {
			encoder["time_key"] = "-"
		}
	}
	def["encoder"] = encoder
	if n := setting(lg, "level"); n != nil {
		if l := a.level(n); l != "" {
			def["level"] = l
		}
	}
	if w := a.logWriter(setting(lg, "file")); w != nil {
		def["writer"] = w
	}
	if el := setting(lg, "error-log"); el != nil {
		on := true
		if n := setting(el, "enabled"); n != nil {
			on = boolOr(a, n, true)
		}
		if on {
			if w := a.logWriter(setting(el, "file")); w != nil {
				def["writer"] = w
			}
			if n := setting(el, "level"); n != nil {
				if l := a.level(n); l != "" {
					def["level"] = l
				}
			}
		}
	}
	if al := setting(lg, "audit-log"); al != nil {
		if n := setting(al, "enabled"); n == nil || boolOr(a, n, true) {
			a.d.notYet(al.Pos, "audit log of agent decisions", "observability.logging.audit-log")
		}
	}
	logs := obj{"default": def}
	if a.accessLogEnabled() || anyLogged {
		al := setting(lg, "access-log")
		// The original's entry fields, JSON or combined.
		style := "json"
		if n := setting(al, "format"); n != nil {
			if s, ok := a.str(n); ok {
				if f, ok := a.oneOf(n, s, "json", "combined"); ok {
					style = f
				}
			}
		}
		access := obj{"encoder": obj{"format": "sentinel_access", "style": style}, "include": []string{"http.log.access." + accessLogName}}
		if w := a.logWriter(setting(al, "file")); w != nil {
			access["writer"] = w
		}
		logs[accessLogName] = access
		def["exclude"] = []string{"http.log.access." + accessLogName}
		for _, srv := range servers {
			srv.(obj)["logs"] = obj{"default_logger_name": accessLogName}
		}
	}
	return obj{"logs": logs}
}
