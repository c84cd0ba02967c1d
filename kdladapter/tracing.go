package kdladapter

import (
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/tracing"
)

// Tracing: observability.tracing maps onto the sentinel_tracing app (the
// exporter, sampling and service name), a sentinel_tracing handler first
// in each server (the request's span) and in each route (its name), and
// the sentinel_traced selection policy around each upstream's (the
// load-balancing span). The spans of the agents, the WASM plugins and
// the upstream attempts need no config: their modules see the app. See
// docs/tracing.md.

// tracingKey declares observability.tracing and maps it onto the app.
var tracingKey = tracingKeys()

func tracingKeys() *Key {
	type T = tracing.App
	return typedBlock(h("tracing", "`sentinel_tracing` app (OTLP export), spans of the request, agent calls, WASM plugins, load-balancing selection and upstream attempts (docs/tracing.md)"),
		field[T]{key: h("enabled", "tracing on or off (default #true when the block is given)")},
		plainField(h("backend", "`otlp` (gRPC or HTTP); `jaeger` is exported as OTLP (Jaeger reads it); `zipkin`: error",
			h("endpoint", "`endpoint`: the collector's URL (default `http://localhost:4317`; `https` for TLS)"),
			ext(h("protocol", "`protocol`: `grpc` (default) or `http` (OTLP/HTTP protobuf; the path defaults to `/v1/traces`)")),
		), (*adapter).tracingBackend),
		fieldOf("sampling-rate", "ratio of the requests traced, 0 to 1 (default 0.01), parent-based", (*adapter).samplingRate, func(t *T) **float64 { return &t.SamplingRatio }),
		stringField("service-name", "`service.name` of the resource (default `sentinel`)", func(t *T) *string { return &t.ServiceName }),
	)
}

// tracingBackend reads `backend "otlp" { endpoint …; protocol … }`.
func (a *adapter) tracingBackend(n *kdl.Node, t *tracing.App) {
	if s, ok := a.str(n); ok {
		kind, ok := a.oneOf(n, s, "otlp", "jaeger", "zipkin")
		switch {
		case !ok:
			return
		case kind == "zipkin":
			a.d.errorf(n.Args[0].Pos, "tracing backend %q is not supported: export OTLP (`backend \"otlp\"`) to a collector that forwards to Zipkin", s)
			return
		case kind == "jaeger":
			a.d.warnf(n.Args[0].Pos, "observability.tracing.backend", "backend \"jaeger\" is exported as OTLP: point endpoint at Jaeger's OTLP port (4317 gRPC, 4318 HTTP)")
		}
	}
	if e := setting(n, "endpoint"); e != nil {
		if s, ok := a.str(e); ok {
			u, err := url.Parse(s)
			switch {
			case err != nil || u.Host == "":
				a.d.errorf(e.Args[0].Pos, "tracing endpoint: expected a URL such as \"http://collector:4317\"")
			case u.Scheme != "http" && u.Scheme != "https":
				a.d.errorf(e.Args[0].Pos, "tracing endpoint: scheme %q: expected http or https", u.Scheme)
			case u.User != nil:
				a.d.errorf(e.Args[0].Pos, "tracing endpoint: credentials in the URL are not supported")
			default:
				t.Endpoint = s
			}
		}
	}
	if p := setting(n, "protocol"); p != nil {
		if s, ok := a.str(p); ok {
			if v, ok := a.oneOf(p, s, "grpc", "http", "http/protobuf"); ok {
				t.Protocol = strings.TrimSuffix(v, "/protobuf")
			}
		}
	}
	if t.Protocol != tracing.ProtocolHTTP && t.Endpoint != "" {
		if u, _ := url.Parse(t.Endpoint); u != nil && u.Path != "" && u.Path != "/" {
			a.d.errorf(setting(n, "endpoint").Args[0].Pos, "tracing endpoint: a gRPC endpoint has no path (got %q); for OTLP/HTTP add `protocol \"http\"`", u.Path)
		}
	}
}

// samplingRate reads sampling-rate: a ratio from 0 to 1.
func (a *adapter) samplingRate(n *kdl.Node) (*float64, bool) {
	f, ok := a.number(n)
	if !ok {
		return nil, false
	}
	if f < 0 || f > 1 {
		a.d.errorf(n.Args[0].Pos, "sampling-rate must be between 0 and 1 (a ratio: 0.01 traces 1 request in 100), not %v", f)
		return nil, false
	}
	return &f, true
}

// tracingNode is observability.tracing when tracing is on, else nil.
// Its enabled setting is checked by mapTracing.
func (a *adapter) tracingNode() *kdl.Node {
	n := setting(a.observability, "tracing")
	if n == nil {
		return nil
	}
	if e := setting(n, "enabled"); e != nil && len(e.Args) > 0 && e.Args[0].Kind == kdl.KindBool && !e.Args[0].Bool {
		return nil
	}
	return n
}

// The JSON names of the tracing modules.
var (
	tracingHandler  = tracing.Handler{}.CaddyModule().ID.Name()
	tracedPolicy    = (*tracing.Selection)(nil).CaddyModule().ID.Name()
	tracedInnerKey  = jsonKeyOf(func(s *tracing.Selection) any { return &s.InnerRaw })
	tracingRouteKey = jsonKeyOf(func(h *tracing.Handler) any { return &h.Route })
	routeHandleKey  = jsonKeyOf(func(r *caddyhttp.Route) any { return &r.HandlersRaw })
)

// mapTracing adds the tracing app and the servers' span handlers (first
// in each server, before the metrics route mapMetrics adds, so that
// scrapes are not traced).
func (a *adapter) mapTracing(servers obj, apps obj) {
	n := setting(a.observability, "tracing")
	if n == nil {
		return
	}
	if e := setting(n, "enabled"); e != nil {
		if !boolOr(a, e, true) {
			return
		}
	}
	app := tracingKey.Map(a, n).(*tracing.App)
	apps[tracing.AppName] = typedObj(app, "", "")
	route := obj{routeHandleKey: []any{obj{handlerInlineKey: tracingHandler}}}
	for _, s := range servers {
		srv := s.(obj)
		routes, _ := srv[routesKey].([]any)
		srv[routesKey] = append([]any{route}, routes...)
	}
}

// tracingRoute is the handler that names the request's span after route
// id (nil when tracing is off).
func (a *adapter) tracingRoute(id string) any {
	if a.tracingNode() == nil {
		return nil
	}
	return obj{handlerInlineKey: tracingHandler, tracingRouteKey: id}
}

// tracedSelection wraps the selection policy of load-balancing settings
// lb in sentinel_traced when tracing is on; it returns lb (a new one
// when nil).
func (a *adapter) tracedSelection(lb obj) obj {
	if a.tracingNode() == nil {
		return lb
	}
	if lb == nil {
		lb = obj{}
	}
	p := obj{policyInlineKey: tracedPolicy}
	if inner, ok := lb[selectionKey]; ok {
		p[tracedInnerKey] = inner
	}
	lb[selectionKey] = p
	return lb
}
