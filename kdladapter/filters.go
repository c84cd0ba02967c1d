package kdladapter

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	caddyencode "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	caddygzip "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode/gzip"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/cors"
	"github.com/sentinel-proxy/sentinel/modules/geo"
	"github.com/sentinel-proxy/sentinel/modules/grpcweb"
	"github.com/sentinel-proxy/sentinel/modules/ratelimit"
	"github.com/sentinel-proxy/sentinel/modules/timeout"
)

// proxyOverrides are transport settings a route's filters impose on its
// reverse proxy.
type proxyOverrides struct {
	dialTimeout           string
	responseHeaderTimeout string
}

func (a *adapter) sortedFilters() []*kdl.Node {
	out := make([]*kdl.Node, 0, len(a.filters))
	for _, id := range a.filterIDs() {
		out = append(out, a.filters[id])
	}
	sort.SliceStable(out, func(i, j int) bool { return posLess(out[i].Pos, out[j].Pos) })
	return out
}

// filterType returns the type of a filter block ("" when missing or bad;
// the error is reported by checkFilter).
func filterType(f *kdl.Node) string {
	if v, ok := f.Prop("type"); ok && v.Kind == kdl.KindString {
		return strings.ToLower(v.Str)
	}
	if n := setting(f, "type"); n != nil && len(n.Args) > 0 && n.Args[0].Kind == kdl.KindString {
		return strings.ToLower(n.Args[0].Str)
	}
	return ""
}

// checkFilter validates a filter definition against its type's keys.
func (a *adapter) checkFilter(f *kdl.Node) {
	id := f.Args[0].Str
	typ := filterType(f)
	types := filterTypeKeys
	spec := types[typ]
	if spec == nil {
		names := make([]string, 0, len(types))
		for n := range types {
			names = append(names, n)
		}
		sort.Strings(names)
		if typ == "" {
			a.d.errorf(f.Pos, "filter %q needs a type (one of %s)", id, strings.Join(names, ", "))
		} else {
			a.d.errorf(f.Pos, "filter %q: unknown type %q%s", id, typ, suggest(typ, names))
		}
		return
	}
	if spec.Status == NotYet {
		a.d.notYet(f.Pos, spec.Note, "filter \""+id+"\" of type \""+typ+"\"")
		return
	}
	full := &Key{Name: spec.Name, Children: append([]*Key{h("type", "filter type")}, spec.Children...)}
	a.checkBlock(f, full, "filters.filter["+typ+"]")
}

// filterHandlers maps one filter used by a route (not an agent filter:
// those form the route's sentinel_agents handler). It reports whether
// the filter answers the request itself (redirect) and whether it asks
// for access logging.
func (a *adapter) filterHandlers(routeID string, f *kdl.Node, prefixes []string, po *proxyOverrides) (hs []any, terminal, logged bool) {
	if c := a.filterOut[f]; c != nil {
		c.po.apply(po)
		return c.hs, false, c.logged
	}
	errs, warns := len(a.d.errs), len(a.d.warns)
	var own proxyOverrides
	hs, terminal, logged, shared := a.mapFilter(routeID, f, prefixes, &own)
	own.apply(po)
	if shared && len(a.d.errs) == errs && len(a.d.warns) == warns {
		// The same for every route, and nothing to report: mapped
		// once (a filter named by 100,000 routes was mapped, and its
		// handlers encoded, 100,000 times).
		if a.filterOut == nil {
			a.filterOut = make(map[*kdl.Node]*mappedFilter)
		}
		hs = slices.Clip(hs) // the callers' appends copy
		a.filterOut[f] = &mappedFilter{hs: hs, logged: logged, po: own}
	}
	return hs, terminal, logged
}

// mappedFilter is the mapping of a filter that does not depend on the
// route naming it (see filterHandlers).
type mappedFilter struct {
	hs     []any
	logged bool
	po     proxyOverrides
}

// apply sets what o sets in po.
func (o proxyOverrides) apply(po *proxyOverrides) {
	if o.dialTimeout != "" {
		po.dialTimeout = o.dialTimeout
	}
	if o.responseHeaderTimeout != "" {
		po.responseHeaderTimeout = o.responseHeaderTimeout
	}
}

// mapFilter maps filter f for route routeID; shared reports a mapping
// that does not depend on the route (nor its path prefixes).
func (a *adapter) mapFilter(routeID string, f *kdl.Node, prefixes []string, po *proxyOverrides) (hs []any, terminal, logged, shared bool) {
	id := f.Args[0].Str
	typ := filterType(f)
	k := filterTypeKeys[typ]
	if k == nil || k.Map == nil {
		return nil, false, false, false // reported by checkFilter
	}
	switch v := k.Map(a, f).(type) {
	case *headersFilter:
		shared = true
		if v.phase == "request" || v.phase == "both" {
			hs = append(hs, v.handlers("request")...)
		}
		if v.phase == "response" || v.phase == "both" {
			hs = append(hs, v.handlers("response")...)
		}
	case *compressFilter:
		shared = true
		hs = append(hs, a.compress(f, v))
	case *cors.CORS:
		shared = true
		hs = append(hs, corsHandler.raw(v))
	case *timeoutFilter:
		shared = true
		if v.request != 0 {
			hs = append(hs, timeoutHandler.raw(&timeout.Timeout{Timeout: v.request}))
		}
		if v.upstream != nil {
			po.responseHeaderTimeout = dur(time.Duration(*v.upstream))
		}
		if v.connect != nil {
			po.dialTimeout = dur(time.Duration(*v.connect))
		}
	case *logFilter:
		shared = true
		logged = v.request
	case *ratelimit.Handler:
		hs = append(hs, a.rateLimitFilter(routeID, id, f, v))
	case *geo.Handler:
		hs = append(hs, a.geoFilter(id, f, v))
	case *grpcweb.Handler:
		shared = true
		hs = append(hs, grpcWebHandler.raw(v))
	case *wasmFilterBlock:
		if h := a.wasmFilter(routeID, id, f); h != nil {
			hs = append(hs, h)
		}
	case *rewriteFilter:
		hs = append(hs, a.rewrite(routeID, id, f, v, prefixes)...)
	case *redirectFilter:
		hs = append(hs, a.redirect(routeID, id, f, v, prefixes))
		terminal = true
	}
	return hs, terminal, logged, shared
}

// The filter types' declarations: each type's keys with its mapper
// (filterTypes in schema.go lists them). Built once, not changed after.
var (
	headersFilterKey = typedBlockInit(h("headers", "Caddy `headers` (+ `header_rename`)"),
		func(f *headersFilter) { f.phase = "request" },
		append([]field[headersFilter]{
			plainField(h("phase", "`request`, `response` or `both`"), func(a *adapter, n *kdl.Node, f *headersFilter) {
				if s, ok := a.str(n); ok {
					f.phase, _ = a.oneOf(n, s, "request", "response", "both")
				}
			}),
		}, headerOpFields(func(f *headersFilter) *headerOps { return &f.headerOps })...)...)
	compressFilterKey = typedBlockInit(h("compress", "Caddy `encode`"),
		func(c *compressFilter) { c.MinLength, c.algorithms = 1024, []string{"gzip", "br"} },
		plainField(h("algorithms", "`gzip`, `zstd` (`br`/`brotli`, `deflate`: warning, not in Caddy)"), func(a *adapter, n *kdl.Node, c *compressFilter) {
			c.algorithms = nil
			for _, s := range a.strs(n) {
				for _, x := range strings.Split(s, ",") {
					if x = strings.TrimSpace(strings.ToLower(x)); x != "" {
						c.algorithms = append(c.algorithms, x)
					}
				}
			}
		}),
		fieldOf("min-size", "", func(a *adapter, n *kdl.Node) (int, bool) {
			sz, ok := a.byteSize(n)
			return int(sz), ok
		}, func(c *compressFilter) *int { return &c.MinLength }),
		plainField(h("level", "gzip level"), func(a *adapter, n *kdl.Node, c *compressFilter) {
			if l, ok := a.integer(n, 1, 9); ok {
				c.level = int(l)
			}
		}),
		fieldOf("content-types", "`Content-Type` response header", func(a *adapter, n *kdl.Node) (*caddyhttp.ResponseMatcher, bool) {
			return &caddyhttp.ResponseMatcher{Headers: http.Header{"Content-Type": a.strs(n)}}, true
		}, func(c *compressFilter) **caddyhttp.ResponseMatcher { return &c.Matcher }),
	)
	corsFilterKey = typedBlockInit(h("cors", "`sentinel_cors` handler (the original ignored these keys)"),
		func(c *cors.CORS) { c.AllowedOrigins = []string{"*"} },
		commaListField("allowed-origins", "origins, `*` or `https://*.example.com`", func(c *cors.CORS) *[]string { return &c.AllowedOrigins }),
		commaListField("allowed-methods", "methods", func(c *cors.CORS) *[]string { return &c.AllowedMethods }),
		commaListField("allowed-headers", "request headers", func(c *cors.CORS) *[]string { return &c.AllowedHeaders }),
		commaListField("exposed-headers", "response headers exposed", func(c *cors.CORS) *[]string { return &c.ExposedHeaders }),
		boolField("allow-credentials", "credentials", func(c *cors.CORS) *bool { return &c.AllowCredentials }),
		fieldOf("max-age-secs", "preflight cache", func(a *adapter, n *kdl.Node) (*caddy.Duration, bool) {
			d, ok := a.secondsDuration(n)
			return &d, ok
		}, func(c *cors.CORS) **caddy.Duration { return &c.MaxAge }),
	)
	timeoutFilterKey = typedBlock(h("timeout", "`sentinel_timeout` and transport timeouts"),
		plainField(h("request-timeout-secs", "`sentinel_timeout`"), func(a *adapter, n *kdl.Node, t *timeoutFilter) {
			t.request, _ = a.secondsDuration(n)
		}),
		plainField(h("upstream-timeout-secs", "transport `response_header_timeout`"), func(a *adapter, n *kdl.Node, t *timeoutFilter) {
			if d, ok := a.secondsDuration(n); ok {
				t.upstream = &d
			}
		}),
		plainField(h("connect-timeout-secs", "transport `dial_timeout`"), func(a *adapter, n *kdl.Node, t *timeoutFilter) {
			if d, ok := a.secondsDuration(n); ok {
				t.connect = &d
			}
		}),
	)
	logFilterKey = typedBlockInit(h("log", "the server's access log"),
		func(l *logFilter) { l.request = true },
		plainField(h("log-request", "access log entry for the route"), func(a *adapter, n *kdl.Node, l *logFilter) {
			if b, ok := a.boolean(n); ok && !b {
				l.request = false
			}
		}),
		plainField(h("log-response", "status and size are part of every entry"), func(a *adapter, n *kdl.Node, _ *logFilter) {
			a.boolean(n)
		}),
		field[logFilter]{key: w("log-body", "bodies are not logged")},
		field[logFilter]{key: w("max-body-log-size", "bodies are not logged")},
		plainField(h("level", "access log entries are at info level"), func(a *adapter, n *kdl.Node, _ *logFilter) {
			if s, ok := a.str(n); ok {
				a.oneOf(n, s, "trace", "debug", "info", "warn", "error")
			}
		}),
	)
	redirectFilterKey = typedBlockInit(h("redirect", "`static_response` with `Location`"),
		func(r *redirectFilter) { r.status, r.scheme = 302, "{http.request.scheme}" },
		plainField(h("status-code", "3xx status"), func(a *adapter, n *kdl.Node, r *redirectFilter) {
			r.status, _ = a.integer(n, 300, 308)
		}),
		plainField(h("hostname", "target host"), func(a *adapter, n *kdl.Node, r *redirectFilter) {
			s, _ := a.str(n)
			r.hostname = &s
		}),
		plainField(h("scheme", "target scheme"), func(a *adapter, n *kdl.Node, r *redirectFilter) {
			if s, ok := a.str(n); ok {
				r.scheme, _ = a.oneOf(n, s, "http", "https")
			}
		}),
		plainField(h("port", "target port"), func(a *adapter, n *kdl.Node, r *redirectFilter) {
			if p, ok := a.integer(n, 1, 65535); ok {
				r.port = p
			}
		}),
		plainField(h("replace-full-path", "new path"), func(_ *adapter, n *kdl.Node, r *redirectFilter) { r.full = n }),
		plainField(h("replace-prefix-match", "replaces the route's path-prefix"), func(_ *adapter, n *kdl.Node, r *redirectFilter) { r.prefix = n }),
	)
	wasmFilterKey = ext(typedBlock(h("wasm", "`sentinel_wasm` handler running the plugin"),
		plainField(h("plugin", "plugin id from `plugins { }`"), func(*adapter, *kdl.Node, *wasmFilterBlock) {}),
	))
	grpcWebFilterKey    = ext(typedBlock[grpcweb.Handler](h("grpc-web", "`grpc_web` handler: gRPC-Web (binary and text) from browsers to gRPC upstreams")))
	urlRewriteFilterKey = typedBlock(h("url-rewrite", "Caddy `rewrite` (+ `Host` header)"),
		plainField(h("hostname", "`Host` sent upstream"), func(a *adapter, n *kdl.Node, r *rewriteFilter) {
			if s, ok := a.str(n); ok {
				r.hostname = &s
			}
		}),
		plainField(h("replace-full-path", "`uri`"), func(_ *adapter, n *kdl.Node, r *rewriteFilter) { r.full = n }),
		plainField(h("replace-prefix-match", "`path_regexp` on the route's path-prefix"), func(_ *adapter, n *kdl.Node, r *rewriteFilter) { r.prefix = n }),
	)
)

// filterTypeKeys are the filter types by name (see filterTypes).
var filterTypeKeys = filterTypes()

// The values the filter types map to, where a type is not one module's
// struct.
type (
	// headersFilter is a headers filter: its operations, for its phases.
	headersFilter struct {
		headerOps
		phase string
	}
	// compressFilter is Caddy's encode handler with the algorithms and
	// gzip level it is built from.
	compressFilter struct {
		caddyencode.Encode
		algorithms []string
		level      int
	}
	// timeoutFilter is a sentinel_timeout handler (request) and the
	// timeouts of the route's reverse proxy.
	timeoutFilter struct {
		request           caddy.Duration
		upstream, connect *caddy.Duration
	}
	// logFilter asks for the route's access log entries.
	logFilter struct{ request bool }
	// wasmFilterBlock names a plugin (see wasmFilter).
	wasmFilterBlock struct{}
	// rewriteFilter is a url-rewrite filter: a new Host, a new path.
	rewriteFilter struct {
		hostname     *string
		full, prefix *kdl.Node
	}
	// redirectFilter is a redirect filter: where to, with which status.
	redirectFilter struct {
		status       int64
		scheme       string
		hostname     *string
		port         int64
		full, prefix *kdl.Node
	}
)

var (
	corsHandler           = newModuleJSON[cors.CORS]("handler", "sentinel_cors")
	grpcWebHandler        = newModuleJSON[grpcweb.Handler]("handler", "grpc_web")
	staticResponseHandler = newModuleJSON[caddyhttp.StaticResponse]("handler", "static_response")
	gzipJSON              = newModuleJSON[caddygzip.Gzip]("", "")
)

// commaListField is a list of strings, each of which may be a
// comma-separated list.
func commaListField[T any](name, note string, p func(*T) *[]string) field[T] {
	return fieldOf(name, note, func(a *adapter, n *kdl.Node) ([]string, bool) {
		var vals []string
		for _, s := range a.strs(n) {
			for _, x := range strings.Split(s, ",") {
				if x = strings.TrimSpace(x); x != "" {
					vals = append(vals, x)
				}
			}
		}
		return vals, true
	}, p)
}

// pathRewrite builds the rewrite handler for replace-full-path or
// replace-prefix-match, or nil.
func (a *adapter) pathRewrite(routeID, filterID string, f, full, pre *kdl.Node, prefixes []string) any {
	switch {
	case full != nil && pre != nil:
		a.d.errorf(f.Pos, "filter %q: replace-full-path and replace-prefix-match exclude each other", filterID)
	case full != nil:
		if p, ok := a.str(full); ok {
			return rewriteHandler.raw(&rewrite.Rewrite{URI: p + "?{http.request.uri.query}"})
		}
	case pre != nil:
		p, ok := a.str(pre)
		if !ok {
			return nil
		}
		if len(prefixes) == 0 {
			a.d.errorf(pre.Pos, "route %q uses filter %q with replace-prefix-match, but the route has no path-prefix to replace", routeID, filterID)
			return nil
		}
		// One anchored expression over all of the route's prefixes (they
		// are alternatives), cut at a segment boundary like the matcher.
		// ("$1", not "${1}": Caddy would read {1} as a placeholder.)
		// (An obj: the elements of Caddy's path_regexp are of an
		// unexported type.)
		quoted := make([]string, len(prefixes))
		for i, old := range prefixes {
			quoted[i] = regexp.QuoteMeta(strings.TrimSuffix(old, "/"))
		}
		repl := strings.TrimSuffix(p, "/")
		if repl == "" {
			return obj{"handler": "rewrite", "path_regexp": []obj{{"find": "^(?:" + strings.Join(quoted, "|") + ")(?:/|$)", "replace": "/"}}}
		}
		return obj{"handler": "rewrite", "path_regexp": []obj{{"find": "^(?:" + strings.Join(quoted, "|") + ")(/|$)", "replace": repl + "$1"}}}
	}
	return nil
}

// rewrite maps a url-rewrite filter.
func (a *adapter) rewrite(routeID, filterID string, f *kdl.Node, r *rewriteFilter, prefixes []string) []any {
	var out []any
	if rw := a.pathRewrite(routeID, filterID, f, r.full, r.prefix, prefixes); rw != nil {
		out = append(out, rw)
	}
	if r.hostname != nil {
		out = append(out, headersHandler.raw(&headers.Handler{Request: &headers.HeaderOps{Set: http.Header{"Host": {*r.hostname}}}}))
	}
	if len(out) == 0 {
		a.d.errorf(f.Pos, "filter %q: url-rewrite needs hostname, replace-full-path or replace-prefix-match", filterID)
	}
	return out
}

// redirect maps a redirect filter to a subroute answering with Location.
func (a *adapter) redirect(routeID, filterID string, f *kdl.Node, r *redirectFilter, prefixes []string) json.RawMessage {
	host := "{http.request.hostport}"
	if r.hostname != nil {
		host = *r.hostname
	}
	if r.port != 0 {
		if r.hostname == nil {
			host = "{http.request.host}"
		}
		host += ":" + itoa64(r.port)
	}
	var routes caddyhttp.RouteList
	if rw := a.pathRewrite(routeID, filterID, f, r.full, r.prefix, prefixes); rw != nil {
		routes = append(routes, caddyhttp.Route{HandlersRaw: []json.RawMessage{encode(nil, rw)}})
	}
	routes = append(routes, caddyhttp.Route{HandlersRaw: []json.RawMessage{staticResponseHandler.raw(&caddyhttp.StaticResponse{
		StatusCode: caddyhttp.WeakString(itoa64(r.status)),
		Headers:    http.Header{"Location": {r.scheme + "://" + host + "{http.request.uri}"}},
	})}})
	return subrouteHandler.raw(&caddyhttp.Subroute{Routes: routes})
}

// compress maps a compress filter to Caddy's encode handler.
func (a *adapter) compress(f *kdl.Node, c *compressFilter) json.RawMessage {
	c.EncodingsRaw = caddy.ModuleMap{}
	for _, alg := range c.algorithms {
		switch alg {
		case "gzip":
			c.EncodingsRaw["gzip"] = gzipJSON.raw(&caddygzip.Gzip{Level: c.level})
			c.Prefer = append(c.Prefer, "gzip")
		case "zstd":
			c.EncodingsRaw["zstd"] = emptyModule
			c.Prefer = append(c.Prefer, "zstd")
		case "br", "brotli", "deflate":
			a.d.warnf(f.Pos, "filters.filter[compress].algorithms", "compression algorithm %q is not available in Caddy; gzip and zstd are", alg)
		default:
			a.d.errorf(f.Pos, "unknown compression algorithm %q (gzip, br, deflate, zstd)", alg)
		}
	}
	if len(c.EncodingsRaw) == 0 {
		c.EncodingsRaw["gzip"] = emptyModule
		c.Prefer = []string{"gzip"}
	}
	return encodeHandler.raw(&c.Encode)
}

func itoa64(i int64) string { return strconv.FormatInt(i, 10) }
