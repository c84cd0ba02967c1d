package kdladapter

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
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
	types := filterTypes()
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

// filterHandlers maps one filter used by a route. It reports whether the
// filter answers the request itself (redirect) and whether it asks for
// access logging.
func (a *adapter) filterHandlers(routeID string, f *kdl.Node, prefixes []string, po *proxyOverrides) (hs []obj, terminal, logged bool) {
	id := f.Args[0].Str
	switch filterType(f) {
	case "headers":
		phase := "request"
		if n := setting(f, "phase"); n != nil {
			if s, ok := a.str(n); ok {
				phase, _ = a.oneOf(n, s, "request", "response", "both")
			}
		}
		if phase == "request" || phase == "both" {
			hs = append(hs, a.headerHandlers(f, "request")...)
		}
		if phase == "response" || phase == "both" {
			hs = append(hs, a.headerHandlers(f, "response")...)
		}
	case "compress":
		hs = append(hs, a.compress(f))
	case "cors":
		hs = append(hs, a.cors(f))
	case "timeout":
		if n := setting(f, "request-timeout-secs"); n != nil {
			if d, ok := a.seconds(n); ok && d != "0s" {
				hs = append(hs, obj{"handler": "sentinel_timeout", "timeout": d})
			}
		}
		if n := setting(f, "upstream-timeout-secs"); n != nil {
			po.responseHeaderTimeout, _ = a.seconds(n)
		}
		if n := setting(f, "connect-timeout-secs"); n != nil {
			po.dialTimeout, _ = a.seconds(n)
		}
	case "log":
		logged = true
		if n := setting(f, "log-request"); n != nil {
			if b, ok := a.boolean(n); ok && !b {
				logged = false
			}
		}
		if n := setting(f, "level"); n != nil {
			if s, ok := a.str(n); ok {
				a.oneOf(n, s, "trace", "debug", "info", "warn", "error")
			}
		}
		if n := setting(f, "log-response"); n != nil {
			a.boolean(n)
		}
	case "rate-limit":
		hs = append(hs, a.rateLimitFilter(routeID, id, f))
	case "grpc-web":
		hs = append(hs, obj{"handler": "grpc_web"})
	case "wasm":
		if h := a.wasmFilter(id, f); h != nil {
			hs = append(hs, h)
		}
	case "url-rewrite":
		hs = append(hs, a.rewrite(routeID, id, f, prefixes)...)
	case "redirect":
		hs = append(hs, a.redirect(routeID, id, f, prefixes))
		terminal = true
	}
	return hs, terminal, logged
}

// pathRewrite builds the rewrite handler for replace-full-path or
// replace-prefix-match, or nil.
func (a *adapter) pathRewrite(routeID, filterID string, f *kdl.Node, prefixes []string) obj {
	full, pre := setting(f, "replace-full-path"), setting(f, "replace-prefix-match")
	switch {
	case full != nil && pre != nil:
		a.d.errorf(f.Pos, "filter %q: replace-full-path and replace-prefix-match exclude each other", filterID)
	case full != nil:
		if p, ok := a.str(full); ok {
			return obj{"handler": "rewrite", "uri": p + "?{http.request.uri.query}"}
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
func (a *adapter) rewrite(routeID, filterID string, f *kdl.Node, prefixes []string) []obj {
	var out []obj
	if rw := a.pathRewrite(routeID, filterID, f, prefixes); rw != nil {
		out = append(out, rw)
	}
	if n := setting(f, "hostname"); n != nil {
		if h, ok := a.str(n); ok {
			out = append(out, obj{"handler": "headers", "request": obj{"set": map[string][]string{"Host": {h}}}})
		}
	}
	if len(out) == 0 {
		a.d.errorf(f.Pos, "filter %q: url-rewrite needs hostname, replace-full-path or replace-prefix-match", filterID)
	}
	return out
}

// redirect maps a redirect filter to a subroute answering with Location.
func (a *adapter) redirect(routeID, filterID string, f *kdl.Node, prefixes []string) obj {
	status := int64(302)
	if n := setting(f, "status-code"); n != nil {
		status, _ = a.integer(n, 300, 308)
	}
	scheme := "{http.request.scheme}"
	if n := setting(f, "scheme"); n != nil {
		if s, ok := a.str(n); ok {
			scheme, _ = a.oneOf(n, s, "http", "https")
		}
	}
	host := "{http.request.hostport}"
	hostname := setting(f, "hostname")
	if hostname != nil {
		host, _ = a.str(hostname)
	}
	if n := setting(f, "port"); n != nil {
		if p, ok := a.integer(n, 1, 65535); ok {
			if hostname == nil {
				host = "{http.request.host}"
			}
			host += ":" + itoa64(p)
		}
	}
	var routes []obj
	if rw := a.pathRewrite(routeID, filterID, f, prefixes); rw != nil {
		routes = append(routes, obj{"handle": []obj{rw}})
	}
	routes = append(routes, obj{"handle": []obj{{
		"handler":     "static_response",
		"status_code": status,
		"headers":     map[string][]string{"Location": {scheme + "://" + host + "{http.request.uri}"}},
	}}})
	return obj{"handler": "subroute", "routes": routes}
}

// compress maps a compress filter to Caddy's encode handler.
func (a *adapter) compress(f *kdl.Node) obj {
	enc := obj{}
	var prefer []string
	level := int64(0)
	if n := setting(f, "level"); n != nil {
		level, _ = a.integer(n, 1, 9)
	}
	algs := []string{"gzip", "br"}
	if n := setting(f, "algorithms"); n != nil {
		algs = nil
		for _, s := range a.strs(n) {
			for _, x := range strings.Split(s, ",") {
				if x = strings.TrimSpace(strings.ToLower(x)); x != "" {
					algs = append(algs, x)
				}
			}
		}
	}
	for _, alg := range algs {
		switch alg {
		case "gzip":
			g := obj{}
			if level > 0 {
				g["level"] = level
			}
			enc["gzip"] = g
			prefer = append(prefer, "gzip")
		case "zstd":
			enc["zstd"] = obj{}
			prefer = append(prefer, "zstd")
		case "br", "brotli", "deflate":
			a.d.warnf(f.Pos, "filters.filter[compress].algorithms", "compression algorithm %q is not available in Caddy; gzip and zstd are", alg)
		default:
			a.d.errorf(f.Pos, "unknown compression algorithm %q (gzip, br, deflate, zstd)", alg)
		}
	}
	if len(enc) == 0 {
		enc["gzip"] = obj{}
		prefer = []string{"gzip"}
	}
	h := obj{"handler": "encode", "encodings": enc, "prefer": prefer, "minimum_length": 1024}
	if n := setting(f, "min-size"); n != nil {
		if sz, ok := a.byteSize(n); ok {
			h["minimum_length"] = sz
		}
	}
	if n := setting(f, "content-types"); n != nil {
		h["match"] = obj{"headers": map[string][]string{"Content-Type": a.strs(n)}}
	}
	return h
}

// cors maps a cors filter to the sentinel_cors handler.
func (a *adapter) cors(f *kdl.Node) obj {
	h := obj{"handler": "sentinel_cors", "allowed_origins": []string{"*"}}
	list := func(key, field string) {
		if n := setting(f, key); n != nil {
			var vals []string
			for _, s := range a.strs(n) {
				for _, x := range strings.Split(s, ",") {
					if x = strings.TrimSpace(x); x != "" {
						vals = append(vals, x)
					}
				}
			}
			h[field] = vals
		}
	}
	list("allowed-origins", "allowed_origins")
	list("allowed-methods", "allowed_methods")
	list("allowed-headers", "allowed_headers")
	list("exposed-headers", "exposed_headers")
	if n := setting(f, "allow-credentials"); n != nil {
		if b, ok := a.boolean(n); ok && b {
			h["allow_credentials"] = true
		}
	}
	if n := setting(f, "max-age-secs"); n != nil {
		if d, ok := a.seconds(n); ok {
			h["max_age"] = d
		}
	}
	return h
}

func itoa64(i int64) string { return strconv.FormatInt(i, 10) }
