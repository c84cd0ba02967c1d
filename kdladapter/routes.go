package kdladapter

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// builtRoute is a route mapped once and placed in every listener's
// server. Its handlers and matcher are kept encoded (in the adapter's
// fragments), not as maps: a large config holds 100,000 of them.
type builtRoute struct {
	id          string
	priority    int64
	specificity int
	logged      bool   // has a `log` filter
	handle      []byte // the handlers, encoded and comma-separated
	match       []byte // the sentinel matcher, encoded; nil when the route has no condition
}

// routeJSON is a route as an element of a server's routes: {"handle":
// […], "match": [{"sentinel": …}], "terminal": true}.
type routeJSON struct {
	r *builtRoute
	// skipLog prepends a handler that keeps the route out of the access
	// log.
	skipLog bool
	// noMatch leaves the matcher out (a listener's default route).
	noMatch bool
}

// logSkip is the handler that keeps a route out of the access log.
var logSkip = []byte(`{"handler":"vars","log_skip":true},`)

// appendTo writes the route (the keys in order, as encode would).
func (rj routeJSON) appendTo(e *encoder, buf []byte) []byte {
	buf = append(buf, `{"handle":[`...)
	if rj.skipLog {
		buf = e.appendRaw(buf, logSkip)
	}
	buf = e.appendRaw(buf, rj.r.handle)
	buf = append(buf, ']')
	if rj.r.match != nil && !rj.noMatch {
		buf = append(buf, `,"match":[{"sentinel":`...)
		buf = e.appendRaw(buf, rj.r.match)
		buf = append(buf, "}]"...)
	}
	return append(buf, `,"terminal":true}`...)
}

// priorities are the named priorities of the original.
var priorities = map[string]int64{"low": 10, "normal": 50, "high": 100, "critical": 1000}

// routeTable maps every route once, sorted in the original's order:
// priority, then specificity (both descending), then configuration order.
func (a *adapter) routeTable() []*builtRoute {
	if a.built != nil {
		return a.built
	}
	a.built = make([]*builtRoute, 0, len(a.routes))
	for _, r := range a.routes {
		a.built = append(a.built, a.mapRoute(r))
	}
	a.warnUnused()
	sort.SliceStable(a.built, func(i, j int) bool {
		x, y := a.built[i], a.built[j]
		if x.priority != y.priority {
			return x.priority > y.priority
		}
		return x.specificity > y.specificity
	})
	return a.built
}

// warnUnused warns about filters and upstreams no route uses.
func (a *adapter) warnUnused() {
	used := map[string]bool{}
	for _, r := range a.routes {
		if n := setting(r, "upstream"); n != nil && len(n.Args) > 0 {
			used["upstream/"+n.Args[0].Str] = true
		}
		if n := setting(r, "filters"); n != nil {
			for _, v := range n.Args {
				used["filter/"+v.Str] = true
			}
		}
	}
	for _, id := range a.upstreamIDs() {
		if !used["upstream/"+id] {
			a.d.warnf(a.upstreams[id].Pos, "upstreams.upstream", "upstream %q is not used by any route", id)
		}
	}
	for _, id := range a.filterIDs() {
		if !used["filter/"+id] {
			a.d.warnf(a.filters[id].Pos, "filters.filter", "filter %q is not used by any route", id)
		}
	}
}

// serverRoutes lists the Caddy routes of one listener's server.
func (a *adapter) serverRoutes(listenerID, defaultRoute string, defaultNode *kdl.Node) []any {
	table := a.routeTable()
	anyLogged := false
	for _, r := range table {
		anyLogged = anyLogged || r.logged
	}
	skipUnlogged := anyLogged && !a.accessLogEnabled()
	out := make([]any, 0, len(table)+1)
	for _, r := range table {
		out = append(out, routeJSON{r: r, skipLog: skipUnlogged && !r.logged})
	}
	if defaultRoute != "" {
		var found *builtRoute
		var ids []string
		for _, r := range table {
			ids = append(ids, r.id)
			if r.id == defaultRoute {
				found = r
			}
		}
		if found == nil {
			a.d.errorf(defaultNode.Args[0].Pos, "listener %q: default-route %q is not a route%s", listenerID, defaultRoute, suggest(defaultRoute, ids))
		} else {
			out = append(out, routeJSON{r: found, noMatch: true})
			return out
		}
	}
	return append(out, obj{"handle": []obj{{"handler": "sentinel_builtin", "kind": "not_found"}}, "terminal": true})
}

// mapRoute maps one route block.
func (a *adapter) mapRoute(r *kdl.Node) *builtRoute {
	id := r.Args[0].Str
	br := &builtRoute{id: id, priority: 50}
	var match obj
	if n := setting(r, "priority"); n != nil {
		br.priority = a.priority(n)
	}
	var prefixes []string
	if m := setting(r, "matches"); m != nil {
		match, br.specificity, prefixes = a.mapMatches(id, m)
	}
	if n := setting(r, "when-disabled"); n != nil {
		if s, ok := a.str(n); ok {
			if mode, ok := a.oneOf(n, s, "503", "next-route"); ok && mode == "next-route" {
				if match == nil {
					match = obj{}
				}
				match["skip_when_disabled"] = id
			}
		}
	}

	policies := setting(r, "policies")
	handlers := a.routeRateLimits(id, policies)
	if n := setting(policies, "max-body-size"); n != nil {
		if sz, ok := a.byteSize(n); ok {
			handlers = append(handlers, obj{"handler": "request_body", "max_size": sz})
		}
	} else if n := a.limitSetting("max-body-size-bytes", "max-body-size"); n != nil {
		if sz, ok := a.byteSize(n); ok {
			handlers = append(handlers, obj{"handler": "request_body", "max_size": sz})
		}
	}
	if n := setting(policies, "timeout-secs"); n != nil {
		if d, ok := a.seconds(n); ok && d != "0s" {
			handlers = append(handlers, obj{"handler": "sentinel_timeout", "timeout": d})
		}
	}
	if n := setting(policies, "failure-mode"); n != nil {
		if s, ok := a.str(n); ok {
			a.oneOf(n, s, "open", "closed")
		}
	}
	if n := setting(policies, "request-headers"); n != nil {
		handlers = append(handlers, a.headerHandlers(n, "request")...)
	}
	if n := setting(policies, "response-headers"); n != nil {
		handlers = append(handlers, a.headerHandlers(n, "response")...)
	}

	// Filters, in the route's order.
	var proxyOpts proxyOverrides
	terminalByFilter := false
	// The route's agent filters form one sentinel_agents handler, at the
	// place of the first one (request headers go to all in parallel).
	agentAt := -1
	var agentFilters []obj
	if n := setting(r, "filters"); n != nil {
		for _, fid := range a.strs(n) {
			f := a.filters[fid]
			if f == nil {
				a.d.errorf(n.Pos, "route %q: filter %q is not defined in filters { }%s", id, fid, suggest(fid, a.filterIDs()))
				continue
			}
			if filterType(f) == "agent" {
				if e := a.agentFilter(fid, f); e != nil {
					if agentAt < 0 {
						agentAt = len(handlers)
						handlers = append(handlers, nil)
					}
					agentFilters = append(agentFilters, e)
				}
				continue
			}
			hs, terminal, logged := a.filterHandlers(id, f, prefixes, &proxyOpts)
			handlers = append(handlers, hs...)
			terminalByFilter = terminalByFilter || terminal
			br.logged = br.logged || logged
		}
	}

	if agentAt >= 0 {
		ah := obj{"handler": "sentinel_agents", "route": id, "filters": agentFilters}
		if up := setting(r, "upstream"); up != nil && len(up.Args) > 0 && up.Args[0].Kind == kdl.KindString {
			ah["upstream"] = up.Args[0].Str
		}
		handlers[agentAt] = ah
	}
	for _, f := range routeNotYet {
		if n := setting(r, f.flag); n != nil {
			if b, ok := a.boolean(n); ok && b {
				a.d.notYet(n.Pos, f.feature, f.flag+" #true")
			}
		}
	}
	if n := setting(r, "websocket"); n != nil {
		a.boolean(n)
	}

	// The responder.
	up, static, builtin := setting(r, "upstream"), setting(r, "static-files"), setting(r, "builtin-handler")
	count := 0
	for _, x := range []*kdl.Node{up, static, builtin} {
		if x != nil {
			count++
		}
	}
	if count > 1 {
		a.d.errorf(r.Pos, "route %q: upstream, static-files and builtin-handler exclude each other; give one", id)
	}
	a.checkServiceType(r, id, up, static, builtin)
	switch {
	case up != nil:
		if uid, ok := a.str(up); ok {
			if u := a.upstreams[uid]; u == nil {
				a.d.errorf(up.Args[0].Pos, "route %q: upstream %q is not defined in upstreams { }%s", id, uid, suggest(uid, a.upstreamIDs()))
			} else {
				handlers = append(handlers, a.reverseProxy(u, setting(r, "retry-policy"), proxyOpts))
			}
		}
	case static != nil:
		handlers = append(handlers, a.staticFiles(id, static)...)
	case builtin != nil:
		handlers = append(handlers, a.builtin(id, builtin)...)
	case !terminalByFilter:
		a.d.errorf(r.Pos, "route %q has nothing to answer with: give it an upstream, static-files, builtin-handler or a redirect filter", id)
	}
	if n := setting(r, "retry-policy"); n != nil && up == nil {
		a.d.warnf(n.Pos, "routes.route.retry-policy", "route %q: retry-policy applies only to routes with an upstream", id)
	}
	// The route guard first: a route disabled through the API answers
	// 503 at once.
	head := []obj{{"handler": "sentinel_route", "route": id}}
	if a.accessLogEnabled() || br.logged {
		// Fields of the original's access log entries.
		head = append([]obj{
			{"handler": "log_append", "key": "trace_id", "value": "{http.request.uuid}"},
			{"handler": "log_append", "key": "route_id", "value": id},
		}, head...)
		if up != nil && len(up.Args) > 0 {
			head = append(head,
				obj{"handler": "log_append", "key": "upstream", "value": up.Args[0].Str},
				obj{"handler": "log_append", "key": "upstream_addr", "value": "{http.reverse_proxy.upstream.hostport}"})
		}
	}
	br.handle = a.frags.encodeItems(append(head, handlers...))
	if match != nil {
		br.match = a.frags.encode(match)
	}
	return br
}

// routeNotYet are the route flags of features not available yet.
var routeNotYet = []struct{ flag, feature string }{
	{"waf-enabled", "WAF (runs as an agent)"},
	{"websocket-inspection", "WebSocket frame inspection"},
}

// checkServiceType checks `service-type` against what the route does.
func (a *adapter) checkServiceType(r *kdl.Node, id string, up, static, builtin *kdl.Node) {
	n := setting(r, "service-type")
	if n == nil {
		return
	}
	s, ok := a.str(n)
	if !ok {
		return
	}
	st, ok := a.oneOf(n, s, "web", "api", "static", "builtin", "inference")
	if !ok {
		return
	}
	switch {
	case st == "static" && static == nil:
		a.d.errorf(n.Pos, "route %q: service-type \"static\" needs a static-files block", id)
	case st == "builtin" && builtin == nil:
		a.d.errorf(n.Pos, "route %q: service-type \"builtin\" needs builtin-handler", id)
	case st == "inference" && setting(r, "inference") == nil:
		a.d.notYet(n.Pos, "inference routing", "service-type \"inference\"")
	}
}

// priority reads an integer or named priority.
func (a *adapter) priority(n *kdl.Node) int64 {
	v, ok := a.arg(n)
	if !ok {
		return 50
	}
	if v.Kind == kdl.KindString {
		if p, ok := priorities[strings.ToLower(v.Str)]; ok {
			return p
		}
		a.d.errorf(v.Pos, "priority %q is not low, normal, high, critical or an integer%s", v.Str, suggest(strings.ToLower(v.Str), []string{"low", "normal", "high", "critical"}))
		return 50
	}
	p, _ := a.integer(n, -1<<31, 1<<31)
	return p
}

// mapMatches maps a `matches` block to the sentinel matcher and computes
// the route's specificity (the original's table). It also returns the
// path prefixes, which prefix-rewriting filters replace.
func (a *adapter) mapMatches(id string, m *kdl.Node) (obj, int, []string) {
	match := obj{}
	var paths, prefixes, regexes, hosts, methods []string
	var headers, queries []obj
	pathScore, hostScore, condScore := 0, 0, 0
	for _, c := range m.Children {
		switch c.Name {
		case "path":
			for _, p := range a.strs(c) {
				paths = append(paths, p)
				pathScore = max(pathScore, 10000)
			}
		case "path-prefix":
			for _, p := range a.strs(c) {
				prefixes = append(prefixes, p)
				pathScore = max(pathScore, 1000+len(p))
			}
		case "path-regex":
			for _, p := range a.strs(c) {
				if _, err := regexp.Compile(p); err != nil {
					a.d.errorf(c.Args[0].Pos, "route %q: path-regex %q does not compile: %s", id, p, regexReason(err))
					continue
				}
				regexes = append(regexes, p)
				pathScore = max(pathScore, 5000)
			}
		case "host":
			for _, h := range a.strs(c) {
				hosts = append(hosts, h)
				switch {
				case strings.HasPrefix(h, "*."):
					hostScore = max(hostScore, 50)
				case strings.ContainsAny(h, "*["):
					hostScore = max(hostScore, 60)
				default:
					hostScore = max(hostScore, 70)
				}
			}
		case "method":
			for _, x := range a.strs(c) {
				methods = append(methods, strings.ToUpper(x))
				condScore += 10
			}
		case "header", "query-param":
			vals := a.strs(c)
			if len(vals) == 0 || len(vals) > 2 {
				if len(vals) > 2 {
					a.d.errorf(c.Pos, "%s takes a name and an optional value", c.Name)
				}
				continue
			}
			e := obj{"name": vals[0]}
			with := len(vals) == 2
			if with {
				e["value"] = vals[1]
			}
			if c.Name == "header" {
				headers = append(headers, e)
				condScore += map[bool]int{true: 30, false: 20}[with]
			} else {
				queries = append(queries, e)
				condScore += map[bool]int{true: 25, false: 15}[with]
			}
		}
	}
	if n := len(paths) + len(prefixes); n > 1 {
		a.d.warnf(m.Pos, "routes.route.matches", "route %q: its %d path/path-prefix conditions are alternatives (any one matches); the original required all of them, which never matched", id, n)
	}
	set := func(k string, v []string) {
		if len(v) > 0 {
			match[k] = v
		}
	}
	set("path", paths)
	set("path_prefix", prefixes)
	set("path_regex", regexes)
	set("host", hosts)
	set("method", methods)
	if len(headers) > 0 {
		match["header"] = headers
	}
	if len(queries) > 0 {
		match["query"] = queries
	}
	if len(match) == 0 {
		return nil, 0, nil
	}
	return match, pathScore + hostScore + condScore, prefixes
}

// headerHandlers maps a request-headers/response-headers block (or a
// headers filter's operations) for one phase.
func (a *adapter) headerHandlers(block *kdl.Node, phase string) []obj {
	ops := obj{}
	pairs := func(name string) map[string][]string {
		n := setting(block, name)
		if n == nil {
			return nil
		}
		out := map[string][]string{}
		for _, c := range n.Children {
			if len(c.Args) != 1 {
				a.d.errorf(c.Pos, "%s: header %q needs exactly one value", name, c.Name)
				continue
			}
			out[c.Name] = append(out[c.Name], valueText(c.Args[0]))
		}
		return out
	}
	if s := pairs("set"); len(s) > 0 {
		ops["set"] = s
	}
	if s := pairs("add"); len(s) > 0 {
		ops["add"] = s
	}
	var del []string
	for _, n := range settings(block, "remove") {
		del = append(del, a.strs(n)...)
	}
	if len(del) > 0 {
		ops["delete"] = del
	}
	var out []obj
	if len(ops) > 0 {
		if phase == "response" {
			ops["deferred"] = true
		}
		out = append(out, obj{"handler": "headers", phase: ops})
	}
	if n := setting(block, "rename"); n != nil {
		ren := map[string]string{}
		for _, c := range n.Children {
			if len(c.Args) != 1 || c.Args[0].Kind != kdl.KindString {
				a.d.errorf(c.Pos, "rename: %q needs exactly one new name", c.Name)
				continue
			}
			ren[c.Name] = c.Args[0].Str
		}
		if len(ren) > 0 {
			out = append(out, obj{"handler": "header_rename", phase: ren})
		}
	}
	return out
}

// valueText renders a value as header text.
func valueText(v kdl.Value) string {
	if v.Kind == kdl.KindString {
		return v.Str
	}
	if v.Kind == kdl.KindBool {
		if v.Bool {
			return "true"
		}
		return "false"
	}
	return v.String()
}

func (a *adapter) filterIDs() []string {
	ids := make([]string, 0, len(a.filters))
	for id := range a.filters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (a *adapter) upstreamIDs() []string {
	ids := make([]string, 0, len(a.upstreams))
	for id := range a.upstreams {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// builtinKind is a builtin-handler's name, normalized: lower case, with
// hyphens for underscores.
func builtinKind(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// servesMetrics reports whether a route answers with builtin-handler
// "metrics" (Caddy's `metrics` handler, which needs the http app's
// metrics on).
func servesMetrics(r *kdl.Node) bool {
	n := setting(r, "builtin-handler")
	return n != nil && len(n.Args) == 1 && n.Args[0].Kind == kdl.KindString && builtinKind(n.Args[0].Str) == "metrics"
}

// builtin maps builtin-handler.
func (a *adapter) builtin(id string, n *kdl.Node) []obj {
	s, ok := a.str(n)
	if !ok {
		return nil
	}
	switch builtinKind(s) {
	case "status":
		return []obj{{"handler": "sentinel_builtin", "kind": "status", "route": id}}
	case "health":
		return []obj{{"handler": "sentinel_builtin", "kind": "health", "route": id}}
	case "ready":
		return []obj{{"handler": "sentinel_builtin", "kind": "ready", "route": id}}
	case "not-found":
		return []obj{{"handler": "sentinel_builtin", "kind": "not_found", "route": id}}
	case "metrics":
		return []obj{{"handler": "metrics"}}
	case "config", "upstreams":
		return []obj{{"handler": "sentinel_builtin", "kind": strings.ToLower(s), "route": id}}
	case "cache-purge", "cache-stats":
		a.d.notYet(n.Args[0].Pos, "response caching", "builtin-handler \""+s+"\"")
	default:
		all := []string{"status", "health", "ready", "metrics", "not-found", "config", "upstreams", "cache-purge", "cache-stats"}
		a.d.errorf(n.Args[0].Pos, "route %q: unknown builtin-handler %q%s", id, s, suggest(s, all))
	}
	return nil
}

// staticFiles maps a static-files block.
func (a *adapter) staticFiles(id string, s *kdl.Node) []obj {
	fs := obj{"handler": "file_server"}
	root := ""
	if n := setting(s, "root"); n != nil {
		root, _ = a.str(n)
		fs["root"] = root
	} else {
		a.d.errorf(s.Pos, "route %q: static-files needs a root folder", id)
	}
	index := "index.html"
	if n := setting(s, "index"); n != nil {
		index, _ = a.str(n)
	}
	fs["index_names"] = []string{index}
	if n := setting(s, "directory-listing"); n != nil {
		if b, ok := a.boolean(n); ok && b {
			fs["browse"] = obj{}
		}
	}
	var out []obj
	if n := setting(s, "compress"); n == nil || boolOr(a, n, true) {
		out = append(out, obj{"handler": "encode", "encodings": obj{"gzip": obj{}, "zstd": obj{}}, "prefer": []string{"zstd", "gzip"}, "minimum_length": 1024})
	}
	cc := "public, max-age=3600"
	if n := setting(s, "cache-control"); n != nil {
		cc, _ = a.str(n)
	}
	if cc != "" {
		out = append(out, obj{"handler": "headers", "response": obj{"set": map[string][]string{"Cache-Control": {cc}}, "deferred": true}})
	}
	fallback := ""
	if n := setting(s, "fallback"); n != nil {
		fallback, _ = a.str(n)
	}
	if n := setting(s, "spa-fallback"); n != nil && fallback == "" {
		if b, ok := a.boolean(n); ok && b {
			fallback = "/" + strings.TrimPrefix(index, "/")
		}
	}
	if fallback != "" {
		if !strings.HasPrefix(fallback, "/") {
			fallback = "/" + fallback
		}
		out = append(out, obj{"handler": "subroute", "routes": []obj{{
			"match":  []obj{{"file": obj{"root": root, "try_files": []string{"{http.request.uri.path}", "{http.request.uri.path}/", fallback}}}},
			"handle": []obj{{"handler": "rewrite", "uri": "{http.matchers.file.relative}"}},
		}}})
	}
	return append(out, fs)
}

// boolOr reads a boolean setting, def when it is malformed.
func boolOr(a *adapter, n *kdl.Node, def bool) bool {
	if b, ok := a.boolean(n); ok {
		return b
	}
	return def
}

// regexReason is why a regular expression does not compile, without the
// part of the expression that Go's message quotes (the whole expression
// is quoted by the caller's message, where it can be redacted).
func regexReason(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return se.Code.String()
	}
	return err.Error()
}
