package kdladapter

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/logging"
	"github.com/caddyserver/caddy/v2/modules/metrics"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/accesslog"
	"github.com/sentinel-proxy/sentinel/modules/deferredlog"
)

// defaultMetricsAddress is the original's metrics address.
const defaultMetricsAddress = "0.0.0.0:9090"

// accessLogName is the Caddy logger name of the access log.
const accessLogName = "sentinel_access"

// metricsKey declares observability.metrics: a route with Caddy's
// `metrics` handler, read by mapMetrics (its settings together place the
// route).
var metricsKey = h("metrics", "Caddy metrics: `metrics` handler at address+path, http app `metrics`",
	h("enabled", "metrics on or off"),
	h("address", "served by the listener with that address, else by its own server"),
	h("path", "metrics path"),
	w("high-cardinality", "Caddy's metrics labels are fixed"),
)

// loggingSettings declares observability.logging: the default log
// (caddy.CustomLog); error-log is read over it when enabled, access-log
// is a log of its own (accessLogKey).
var loggingSettings = nested("logging", "Caddy logging",
	custom("level", "default logger level", logLevel, readLevel),
	readBy("format", "`json` or `pretty` (console encoder)", logEncoder),
	readBy("timestamps", "`#false` drops the time field", logEncoder),
	custom("file", "default logger file writer", logWriterOf, readWriter),
	// Read by mapLogging: the access log is a log of its own, the error
	// log is read over the default log when enabled.
	field[caddy.CustomLog]{key: h("access-log", "server access logs: a log of its own, the servers' `logs.default_logger_name`", accessLogKey.Children...)},
	field[caddy.CustomLog]{key: h("error-log", "default logger", errorLogSettings.key.Children...)},
	field[caddy.CustomLog]{key: auditLogKey()}, // read by mapAudit (audit.go)
)

var (
	logLevel    = func(l *caddy.CustomLog) *string { return &l.Level }
	logEncoder  = func(l *caddy.CustomLog) *json.RawMessage { return &l.EncoderRaw }
	logWriterOf = func(l *caddy.CustomLog) *json.RawMessage { return &l.WriterRaw }

	// errorLogSettings are read over the default log.
	errorLogSettings = nested("error-log", "",
		field[caddy.CustomLog]{key: h("enabled", "on or off")},
		custom("file", "file writer", logWriterOf, readWriter),
		custom("level", "level", logLevel, readLevel),
		field[caddy.CustomLog]{key: w("buffer-size", "Caddy's file writer is unbuffered")},
	)

	// accessLogKey declares access-log: the log of the servers' access
	// logs, with the original's fields (sentinel_access encoder).
	accessLogKey = typedBlock(h("access-log", ""),
		field[caddy.CustomLog]{key: h("enabled", "access logging on")},
		custom("file", "file writer (stderr when absent)", logWriterOf, readWriter),
		readBy("format", "`json` or `combined`, with the original's fields (`sentinel_access` encoder)", logEncoder),
		field[caddy.CustomLog]{key: w("buffer-size", "Caddy's file writer is unbuffered")},
		field[caddy.CustomLog]{key: w("sample-rate", "Caddy's sampling is count-based; not mapped")},
		field[caddy.CustomLog]{key: h("include-trace-id", "`trace_id` is the request's UUID, always logged")},
	)
)

func observabilityKeys() *Key {
	return h("observability", "metrics, logs and tracing", metricsKey, loggingSettings.key, tracingKey)
}

// Keys and names of the parts of the config written here, from their
// modules.
var (
	metricsAppKey      = jsonKeyOf(func(app *caddyhttp.App) any { return &app.Metrics })
	loggingKey         = jsonKeyOf(func(c *caddy.Config) any { return &c.Logging })
	metricsHandlerJSON = caddyconfig.JSONModuleObject(metrics.Metrics{}, "handler", metrics.Metrics{}.CaddyModule().ID.Name(), nil)
	accessLogger       = "http.log.access." + accessLogName
)

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
		pathMatcher, _ := json.Marshal(caddyhttp.MatchPath{path})
		route := typedTree(caddyhttp.Route{
			MatcherSetsRaw: caddyhttp.RawMatcherSets{{caddyhttp.MatchPath{}.CaddyModule().ID.Name(): pathMatcher}},
			HandlersRaw:    []json.RawMessage{metricsHandlerJSON},
			Terminal:       true,
		})
		placed := false
		ids := make([]string, 0, len(servers))
		for id := range servers {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			srv := servers[id].(obj)
			if listen, _ := srv[listenKey].([]string); len(listen) == 1 && listen[0] == addr {
				routes, _ := srv[routesKey].([]any)
				srv[routesKey] = append([]any{route}, routes...)
				placed = true
			}
		}
		if !placed {
			ms := newServer(0)
			ms.Listen, ms.Protocols = []string{addr}, []string{"h1"}
			out := typedTree(ms)
			out[routesKey] = []obj{route, typedTree(caddyhttp.Route{HandlersRaw: []json.RawMessage{notFoundHandler}, Terminal: true})}
			servers["sentinel-metrics"] = out
		}
	}
	if enabled || a.routesSummary().metrics {
		httpApp[metricsAppKey] = typedTree(caddyhttp.Metrics{})
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

// readWriter reads a file setting into a Caddy log writer: stdout,
// stderr or a file.
func readWriter(a *adapter, n *kdl.Node, l *caddy.CustomLog) {
	f, ok := a.str(n)
	if !ok || f == "" {
		return
	}
	switch f {
	case "stdout":
		l.WriterRaw = caddyconfig.JSONModuleObject(caddy.StdoutWriter{}, "output", caddy.StdoutWriter{}.CaddyModule().ID.Name(), nil)
	case "stderr":
		l.WriterRaw = caddyconfig.JSONModuleObject(caddy.StderrWriter{}, "output", caddy.StderrWriter{}.CaddyModule().ID.Name(), nil)
	default:
		l.WriterRaw = caddyconfig.JSONModuleObject(logging.FileWriter{Filename: f}, "output", logging.FileWriter{}.CaddyModule().ID.Name(), nil)
	}
}

// readLevel reads a log level in Caddy's spelling.
func readLevel(a *adapter, n *kdl.Node, l *caddy.CustomLog) {
	s, ok := a.str(n)
	if !ok {
		return
	}
	lv, ok := a.oneOf(n, s, "trace", "debug", "info", "warn", "error")
	if !ok {
		return
	}
	if lv == "trace" {
		a.d.warnf(n.Pos, "observability.logging.level", "level \"trace\" is logged as debug")
		lv = "debug"
	}
	l.Level = strings.ToUpper(lv)
}

// deferredEncoder is the default log's encoder: wrapped (Caddy's default
// when nil) in sentinel_deferred, which encodes a logger's context fields
// only when an entry is written. Caddy's reverse proxy builds a logger
// with the request's fields on every request and rarely writes with it;
// its lines are written all the same. The access log is left as it is:
// it writes an entry for every request, there is nothing to save.
func deferredEncoder(wrapped json.RawMessage) json.RawMessage {
	return caddyconfig.JSONModuleObject(deferredlog.Encoder{WrappedRaw: wrapped}, "format", deferredlog.Encoder{}.CaddyModule().ID.Name(), nil)
}

// mapLogging maps observability.logging to Caddy's logging config and
// turns on the servers' access logs. Without a logging block, it is
// Caddy's default log with sentinel_deferred's encoding.
func (a *adapter) mapLogging(servers obj) obj {
	lg := setting(a.observability, "logging")
	anyLogged := false
	for _, r := range a.routeTable() {
		anyLogged = anyLogged || r.logged
	}
	def := new(caddy.CustomLog)
	if lg == nil && !anyLogged {
		// Caddy's default log (json, console on a terminal), its
		// encoding deferred.
		def.EncoderRaw = deferredEncoder(nil)
		return typedTree(caddy.Logging{Logs: map[string]*caddy.CustomLog{"default": def}})
	}
	if lg != nil {
		loggingSettings.read(a, lg, def)
	}
	// The encoder: json or console, with or without the time.
	pretty := false
	if n := setting(lg, "format"); n != nil {
		if s, ok := a.str(n); ok {
			f, ok := a.oneOf(n, s, "json", "pretty")
			pretty = ok && f == "pretty"
		}
	}
	var enc logging.LogEncoderConfig
	if n := setting(lg, "timestamps"); n != nil {
		if b, ok := a.boolean(n); ok && !b {
			noTime := "-"
			enc.TimeKey = &noTime
		}
	}
	if pretty {
		def.EncoderRaw = deferredEncoder(caddyconfig.JSONModuleObject(logging.ConsoleEncoder{LogEncoderConfig: enc}, "format", logging.ConsoleEncoder{}.CaddyModule().ID.Name(), nil))
	} else {
		def.EncoderRaw = deferredEncoder(caddyconfig.JSONModuleObject(logging.JSONEncoder{LogEncoderConfig: enc}, "format", logging.JSONEncoder{}.CaddyModule().ID.Name(), nil))
	}
	if el := setting(lg, "error-log"); el != nil {
		on := true
		if n := setting(el, "enabled"); n != nil {
			on = boolOr(a, n, true)
		}
		if on {
			errorLogSettings.read(a, el, def)
		}
	}
	logs := map[string]*caddy.CustomLog{"default": def}
	if a.accessLogEnabled() || anyLogged {
		access := new(caddy.CustomLog)
		al := setting(lg, "access-log")
		if al != nil {
			access = accessLogKey.Map(a, al).(*caddy.CustomLog)
		}
		// The original's entry fields, JSON or combined.
		style := "json"
		if n := setting(al, "format"); n != nil {
			if s, ok := a.str(n); ok {
				if f, ok := a.oneOf(n, s, "json", "combined"); ok {
					style = f
				}
			}
		}
		access.EncoderRaw = caddyconfig.JSONModuleObject(accesslog.Encoder{Style: style}, "format", accesslog.Encoder{}.CaddyModule().ID.Name(), nil)
		access.Include = []string{accessLogger}
		logs[accessLogName] = access
		def.Exclude = []string{accessLogger}
		serverLogs := typedTree(caddyhttp.ServerLogConfig{DefaultLoggerName: accessLogName})
		for _, srv := range servers {
			srv.(obj)[logsKey] = serverLogs
		}
	}
	return typedTree(caddy.Logging{Logs: logs})
}
