package kdladapter

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	caddyencode "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/logging"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/requestbody"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
	"github.com/caddyserver/caddy/v2/modules/metrics"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/builtin"
	"github.com/sentinel-proxy/sentinel/modules/headerrename"
	"github.com/sentinel-proxy/sentinel/modules/ratelimit"
	"github.com/sentinel-proxy/sentinel/modules/routeguard"
	"github.com/sentinel-proxy/sentinel/modules/routematch"
	"github.com/sentinel-proxy/sentinel/modules/timeout"
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
	// folded are the handlers after the route's guard, an encoded list,
	// which the sentinel_routes app holds (routeHandlersApp); nil when
	// the guard has none.
	folded []byte
	match  []byte // the sentinel matcher, encoded; nil when the route has no condition
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
	// namespace, on a listener identifying tenants, makes the route
	// match only the requests of that namespace (namespaces.go).
	namespace string
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
	switch {
	case rj.r.match != nil && !rj.noMatch:
		buf = append(buf, `,"match":[{"sentinel":`...)
		buf = e.appendRaw(buf, rj.r.match)
		buf = appendNamespaceMatch(buf, rj.namespace, true)
		buf = append(buf, "}]"...)
	case rj.namespace != "":
		buf = append(buf, `,"match":[{`...)
		buf = appendNamespaceMatch(buf, rj.namespace, false)
		buf = append(buf, "}]"...)
	}
	return append(buf, `,"terminal":true}`...)
}

// caddyRoute writes a route of a server.
var caddyRoute = newModuleJSON[caddyhttp.Route]("", "")

// routeJSONOf is r's JSON.
func routeJSONOf(r *caddyhttp.Route) json.RawMessage { return caddyRoute.raw(r) }

// priorities are the named priorities of the original.
var priorities = map[string]int64{"low": 10, "normal": 50, "high": 100, "critical": 1000}

// routeTable maps every route once, sorted in the original's order:
// priority, then specificity (both descending), then configuration order.
func (a *adapter) routeTable() []*builtRoute {
	if a.built != nil {
		return a.built
	}
	a.built = make([]*builtRoute, 0, len(a.routes))
	a.uses = a.countUpstreamUses()
	a.summary = a.summarizeRoutes()
	for i, r := range a.routes {
		a.built = append(a.built, a.mapRoute(r))
		a.dropStub(i) // deferred.go
	}
	a.routes = slices.DeleteFunc(a.routes, func(r *kdl.Node) bool { return r == nil })
	a.uses = nil
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
	used := a.routesSummary().used
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
	prefix, shared := a.routeScope(listenerID) // namespaces.go
	served := table
	if prefix != "" {
		served = make([]*builtRoute, 0, len(table))
	}
	for _, r := range table {
		if prefix != "" {
			if !strings.HasPrefix(r.id, prefix) {
				continue
			}
			served = append(served, r)
		}
		out = append(out, routeJSON{r: r, skipLog: skipUnlogged && !r.logged, namespace: sharedNamespace(shared, r.id)})
	}
	if defaultRoute != "" {
		var found *builtRoute
		var ids []string
		for _, r := range served {
			ids = append(ids, r.id)
			if r.id == defaultRoute {
				found = r
			}
		}
		if found == nil {
			a.d.errorf(defaultNode.Args[0].Pos, "listener %q: default-route %q is not a route%s", listenerID, defaultRoute, suggest(defaultRoute, ids))
		} else {
			out = append(out, routeJSON{r: found, noMatch: true, namespace: sharedNamespace(shared, found.id)})
			if !shared || NamespaceOf(found.id) == "" {
				return out
			}
		}
	}
	return append(out, routeJSONOf(&caddyhttp.Route{
		HandlersRaw: []json.RawMessage{builtinHandler.raw(&builtin.Builtin{Kind: builtin.KindNotFound})}, Terminal: true}))
}

// The handlers and matcher a route block maps to, written from the
// modules' own structs.
var (
	guardRouteKey    = jsonKeyOf(func(g *routeguard.Guard) any { return &g.Route })
	guardHandleKey   = jsonKeyOf(func(g *routeguard.Guard) any { return &g.HandleRaw })
	guardInAppKey    = jsonKeyOf(func(g *routeguard.Guard) any { return &g.HandleInApp })
	routeHandlersKey = jsonKeyOf(func(app *routeguard.App) any { return &app.Routes })
	logAppendHandler = newModuleJSON[logging.LogAppend]("handler", "log_append")
	agentsHandler    = newModuleJSON[agents.Handler]("handler", "sentinel_agents")
	matcherJSON      = newModuleJSON[routematch.MatchRoute]("", "")
)

// appendGuard writes the route's sentinel_route guard; with folded, it
// takes the route's other handlers (those after the guard, in order) from
// the sentinel_routes app (routeHandlersApp). Caddy decodes each route's
// handler into a map and encodes it again to read its name: a guard
// naming its route only costs little of that, where one holding the
// route's reverse_proxy, headers and timeouts was the largest part of
// provisioning 10,000 routes (issue 13.8).
//
// It is written directly, the keys in order (handle_in_app, handler,
// route), as encoding the obj {"handler": …, "route": …, "handle_in_app":
// true} would (TestGuardJSONSameAsObj), without a map for each route.
func appendGuard(buf []byte, route string, folded bool) []byte {
	buf = append(buf, '{')
	if folded {
		buf = appendString(buf, guardInAppKey)
		buf = append(buf, ":true,"...)
	}
	buf = append(buf, guardHandlerMember...)
	buf = appendString(buf, guardRouteKey)
	buf = append(buf, ':')
	buf = appendString(buf, route)
	return append(buf, '}')
}

// guardHandlerMember is the guard's inline key and module name, and the
// comma after them.
var guardHandlerMember = string(appendString(append(appendString(nil, "handler"), ':'), routeguard.Guard{}.CaddyModule().ID.Name())) + ","

// routeHandlersApp is the sentinel_routes app (routeguard.App): each
// route's handlers after its guard, by route id; nil when no route has
// any.
func (a *adapter) routeHandlersApp() obj {
	routes := obj{}
	for _, r := range a.routeTable() {
		if r.folded != nil {
			routes[r.id] = json.RawMessage(r.folded)
		}
	}
	if len(routes) == 0 {
		return nil
	}
	return obj{routeHandlersKey: routes}
}

// logAppend is a log_append handler.
func logAppend(key, value string) json.RawMessage {
	return logAppendHandler.raw(&logging.LogAppend{Key: key, Value: value})
}

// mapRoute maps one route block.
func (a *adapter) mapRoute(r *kdl.Node) *builtRoute {
	r = a.load(r, "routes")
	// Nothing of the route's tree is kept once it is mapped (the
	// builtRoute is encoded JSON): its memory is reused for the next.
	defer a.reparse.Release(r)
	id := r.Args[0].Str
	// The route's spec and the JSON of its small handlers are the
	// adapter's, reused from route to route (both are done with once the
	// route's fragments are encoded, below).
	rs := &a.spec
	*rs = routeSpec{route: id, priority: 50, match: routeMatch{route: id}, node: r}
	a.arena = a.arena[:0]
	readRoute(a, r, rs)
	br := &builtRoute{id: id, priority: rs.priority}
	m := &rs.match

	p := rs.policies
	if p == nil {
		p = &routePolicies{}
	}
	if sz, ok := scopedInt(a.scopeOf(id), func(l *nsLimits) *int64 { return l.bodySize }); ok && p.body == nil {
		p.body = &requestbody.RequestBody{MaxSize: sz}
	}
	if p.body == nil {
		if n := a.limitSetting("max-body-size-bytes", "max-body-size"); n != nil {
			if sz, ok := a.byteSize(n); ok {
				p.body = &requestbody.RequestBody{MaxSize: sz}
			}
		}
	}
	handlers := p.handlers(a, a.routeRateLimits(id, p.rateLimit))
	if p.auditCritical {
		handlers = append([]any{auditGateHandler.raw(&audit.Gate{})}, handlers...)
	}

	// Filters, in the route's order.
	var proxyOpts proxyOverrides
	terminalByFilter := false
	// The route's agent filters form one sentinel_agents handler, at the
	// place of the first one (request headers go to all in parallel).
	agentAt := -1
	var agentFilters []*agents.Filter
	if n := rs.filters; n != nil {
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
			hs, terminal, logged := a.filterHandlers(id, f, m.PathPrefix, &proxyOpts)
			handlers = append(handlers, hs...)
			terminalByFilter = terminalByFilter || terminal
			br.logged = br.logged || logged
		}
	}

	if agentAt >= 0 {
		ah := agents.Handler{Route: id, Filters: agentFilters}
		if up := rs.upstream; up != nil && len(up.Args) > 0 && up.Args[0].Kind == kdl.KindString {
			ah.Upstream = up.Args[0].Str
		}
		handlers[agentAt] = agentsHandler.raw(&ah)
	}
	if sh := a.shadowHandler(id, r); sh != nil {
		handlers = append(handlers, sh)
	}

	// The responder.
	up, static, builtin := rs.upstream, rs.static, rs.builtin
	count := 0
	for _, x := range []*kdl.Node{up, static, builtin} {
		if x != nil {
			count++
		}
	}
	if count > 1 {
		a.d.errorf(r.Pos, "route %q: upstream, static-files and builtin-handler exclude each other; give one", id)
	}
	a.checkServiceType(rs)
	switch {
	case up != nil:
		if uid, ok := a.str(up); ok {
			if u := a.upstreams[uid]; u == nil {
				a.d.errorf(up.Args[0].Pos, "route %q: upstream %q is not defined in upstreams { }%s", id, uid, suggest(uid, a.upstreamIDs()))
			} else {
				handlers = append(handlers, a.routeCache(id, r)...)
				handlers = append(handlers, a.reverseProxyJSON(u, rs.retry, proxyOpts))
			}
		}
	case static != nil:
		handlers = append(handlers, a.routeCache(id, r)...)
		handlers = append(handlers, a.staticFiles(id, static)...)
	case builtin != nil:
		a.cacheIgnored(id, r)
		if h := a.builtin(id, builtin); h != nil {
			handlers = append(handlers, h)
		}
	case !terminalByFilter:
		a.d.errorf(r.Pos, "route %q has nothing to answer with: give it an upstream, static-files, builtin-handler or a redirect filter", id)
	}
	if n := rs.retry; n != nil && up == nil {
		a.d.warnf(n.Pos, "routes.route.retry-policy", "route %q: retry-policy applies only to routes with an upstream", id)
	}
	// The route guard first: a route disabled through the API answers
	// 503 at once. The handlers after it are folded into it (its
	// `handle`): Caddy compiles a route's middleware chain on every
	// request, a closure per handler, while the guard calls them
	// directly.
	var head, folded []any
	if a.accessLogEnabled() || br.logged {
		// Fields of the original's access log entries (route_id also on
		// a disabled route's 503, hence before the guard).
		head = []any{logAppend("trace_id", "{http.request.uuid}"), logAppend("route_id", id)}
		if up != nil && len(up.Args) > 0 {
			folded = []any{logAppend("upstream", up.Args[0].Str), logAppend("upstream_addr", "{http.reverse_proxy.upstream.hostport}")}
		}
	}
	if t := a.tracingRoute(id); t != nil {
		// The request's span named after the route (tracing.go).
		head = append(head, t)
	}
	if folded = append(folded, handlers...); len(folded) > 0 {
		br.folded = a.frags.encode(folded)
	}
	// The handlers without the list's brackets, the guard last.
	b := a.frags.scratch[:0]
	for _, h := range head {
		b = append(encode(b, h), ',')
	}
	b = appendGuard(b, id, len(folded) > 0)
	a.frags.scratch = b
	br.handle = a.frags.add(b)
	if !m.empty() {
		a.frags.scratch = matcherJSON.append(a.frags.scratch[:0], &m.MatchRoute)
		br.match = a.frags.add(a.frags.scratch)
		br.specificity = m.pathScore + m.hostScore + m.condScore
	}
	return br
}

// routeSpec is what a route block's own settings map to (routeKey): its
// order, its matcher, its policies, and the nodes of the blocks mapRoute
// maps with their own mappers (the filters it names, the responder, the
// retry policy).
type routeSpec struct {
	// route is the route's id, for messages.
	route    string
	priority int64
	match    routeMatch
	// policies is nil without a policies block.
	policies *routePolicies
	// filters lists the route's filter ids, in order.
	filters *kdl.Node
	// The responder (one of them) and the upstream's retry policy.
	upstream, static, builtin, retry *kdl.Node
	// serviceType is the checked service-type ("" without one), at
	// serviceTypeNode.
	serviceType     string
	serviceTypeNode *kdl.Node
	// node is the route block (its inference block, not yet, is only
	// looked for by checkServiceType).
	node *kdl.Node
}

// firstNode is a setting mapRoute reads through its node (mapped by the
// block's own mapper, or checked against other settings): the first one,
// as the walker's warning about a repeated setting says.
func firstNode(k *Key, p func(*routeSpec) **kdl.Node) field[routeSpec] {
	return plainField(k, func(_ *adapter, n *kdl.Node, rs *routeSpec) {
		if q := p(rs); *q == nil {
			*q = n
		}
	})
}

// notYetFlag is a route flag whose #true needs a feature not available
// yet: #false is accepted.
func notYetFlag(name, note, feature string) field[routeSpec] {
	return plainField(h(name, note), func(a *adapter, n *kdl.Node, _ *routeSpec) {
		if b, ok := a.boolean(n); ok && b {
			a.d.notYet(n.Pos, feature, name+" #true")
		}
	})
}

// routeKey declares `route "<id>" { … }`, each of its settings once,
// with how it is read into a routeSpec (readRoute); mapRoute assembles
// the route's handlers from the spec. Built once, not changed after.
var routeKey, readRoute = typedBlockInto(h("route", "a Caddy route in every listener's server, ordered by priority and specificity"),
	plainField(matchKey, func(a *adapter, n *kdl.Node, rs *routeSpec) {
		readMatch(a, n, &rs.match)
		rs.match.check(a, n)
	}),
	plainField(h("priority", "route order (`low` 10, `normal` 50, `high` 100, `critical` 1000, or an integer)"), func(a *adapter, n *kdl.Node, rs *routeSpec) {
		rs.priority = a.priority(n)
	}),
	// upstream is repeatable elsewhere (upstreams { upstream … }): the
	// first one is the route's.
	firstNode(h("upstream", "reverse_proxy to the upstream"), func(rs *routeSpec) **kdl.Node { return &rs.upstream }),
	firstNode(staticFilesKey, func(rs *routeSpec) **kdl.Node { return &rs.static }),
	field[routeSpec]{key: ny("api-schema", "API schema validation")},
	field[routeSpec]{key: ny("inference", "inference routing")},
	firstNode(h("filters", "the route's handler chain, in order"), func(rs *routeSpec) **kdl.Node { return &rs.filters }),
	firstNode(h("builtin-handler", "`status`, `health`, `not-found`, `upstreams`, `config` (registry views), `ready` (*extension*: 503 until the config has fully started): `sentinel_builtin`; `metrics`: Caddy `metrics`; `cache-purge` (needs an admin-api token of scope operate or admin), `cache-stats`: `sentinel_cache_admin`"),
		func(rs *routeSpec) **kdl.Node { return &rs.builtin }),
	// Mapped by routeCache (cache.go) and shadowHandler (shadow.go).
	field[routeSpec]{key: routeCacheSpec},
	field[routeSpec]{key: shadowKey},
	notYetFlag("waf-enabled", "`#false` only; `#true` needs the built-in WAF (not yet): run a WAF agent with a filter of type \"agent\"", "WAF (runs as an agent)"),
	plainField(h("websocket", "Caddy proxies WebSocket upgrades on every route",
		w("enabled", "WebSocket upgrades are proxied on every route"),
		w("ping-interval-secs", "frames are relayed as they come; the proxy sends no pings"),
		w("ping-timeout-secs", "frames are relayed as they come; the proxy sends no pings"),
		w("max-message-size-bytes", "frames are relayed as they come, of any size"),
	), func(a *adapter, n *kdl.Node, _ *routeSpec) {
		a.boolean(n) // `websocket #true`, or a block
	}),
	notYetFlag("websocket-inspection", "`#false` only; `#true` needs WebSocket frame inspection (not yet)", "WebSocket frame inspection"),
	field[routeSpec]{key: ny("fallback", "inference fallback upstreams")},
	plainField(policiesKey, func(a *adapter, n *kdl.Node, rs *routeSpec) {
		rs.policies = policiesKey.Map(a, n).(*routePolicies)
	}),
	plainField(h("service-type", "checked against the route's content"), func(a *adapter, n *kdl.Node, rs *routeSpec) {
		if s, ok := a.str(n); ok {
			rs.serviceType, _ = a.oneOf(n, s, "web", "api", "static", "builtin", "inference")
			rs.serviceTypeNode = n
		}
	}),
	firstNode(retryPolicyKey, func(rs *routeSpec) **kdl.Node { return &rs.retry }),
	field[routeSpec]{key: ny("mcp", "MCP inspection")},
	field[routeSpec]{key: ny("a2a", "A2A inspection")},
	field[routeSpec]{key: w("circuit-breaker", "not a route setting in Sentinel; put it in the upstream")},
	plainField(ext(h("when-disabled", "what a route disabled through the API does: `\"503\"` (default, JSON body) or `\"next-route\"` (falls through)")),
		func(a *adapter, n *kdl.Node, rs *routeSpec) {
			if s, ok := a.str(n); ok {
				if mode, ok := a.oneOf(n, s, "503", "next-route"); ok && mode == "next-route" {
					rs.match.SkipWhenDisabled = rs.route
				}
			}
		}),
)

// checkServiceType checks `service-type` against what the route does.
func (a *adapter) checkServiceType(rs *routeSpec) {
	n := rs.serviceTypeNode
	switch {
	case n == nil:
	case rs.serviceType == "static" && rs.static == nil:
		a.d.errorf(n.Pos, "route %q: service-type \"static\" needs a static-files block", rs.route)
	case rs.serviceType == "builtin" && rs.builtin == nil:
		a.d.errorf(n.Pos, "route %q: service-type \"builtin\" needs builtin-handler", rs.route)
	case rs.serviceType == "inference" && setting(rs.node, "inference") == nil:
		// (with an inference block, the block is reported)
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

// routeMatch is what a route's matches block maps to: the sentinel
// matcher, and the route's specificity (the original's table) from its
// path, host and other conditions.
type routeMatch struct {
	routematch.MatchRoute
	// route is the route's id, for messages.
	route                           string
	pathScore, hostScore, condScore int
}

// matchKey declares the matches block; readMatch reads one into a
// routeMatch. Built once, not changed after.
var matchKey, readMatch = typedBlockInto(h("matches", "`sentinel` matcher (original semantics: non-host conditions AND, hosts OR)"),
	matchField("path", "exact path; several `path`/`path-prefix` are alternatives", func(m *routeMatch) any { return &m.Path },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			for _, p := range a.strs(n) {
				m.Path = append(m.Path, p)
				m.pathScore = max(m.pathScore, 10000)
			}
		}),
	matchField("path-prefix", "segment-aware prefix", func(m *routeMatch) any { return &m.PathPrefix },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			for _, p := range a.strs(n) {
				m.PathPrefix = append(m.PathPrefix, p)
				m.pathScore = max(m.pathScore, 1000+len(p))
			}
		}),
	matchField("path-regex", "regular expression search (RE2 syntax)", func(m *routeMatch) any { return &m.PathRegex },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			for _, p := range a.strs(n) {
				if _, err := regexp.Compile(p); err != nil {
					a.d.errorf(n.Args[0].Pos, "route %q: path-regex %q does not compile: %s", m.route, p, regexReason(err))
					continue
				}
				m.PathRegex = append(m.PathRegex, p)
				m.pathScore = max(m.pathScore, 5000)
			}
		}),
	matchField("host", "exact, `*.wildcard` or regex; case-insensitive, port stripped", func(m *routeMatch) any { return &m.Host },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			for _, h := range a.strs(n) {
				m.Host = append(m.Host, h)
				switch {
				case strings.HasPrefix(h, "*."):
					m.hostScore = max(m.hostScore, 50)
				case strings.ContainsAny(h, "*["):
					m.hostScore = max(m.hostScore, 60)
				default:
					m.hostScore = max(m.hostScore, 70)
				}
			}
		}),
	matchField("header", "present, or equal to a value", func(m *routeMatch) any { return &m.Header },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			if name, value, ok := a.nameValue(n); ok {
				m.Header = append(m.Header, routematch.HeaderMatch{Name: name, Value: value})
				m.condScore += map[bool]int{true: 30, false: 20}[value != nil]
			}
		}),
	matchField("method", "any of the listed methods (the original read only the first)", func(m *routeMatch) any { return &m.Method },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			for _, x := range a.strs(n) {
				m.Method = append(m.Method, strings.ToUpper(x))
				m.condScore += 10
			}
		}),
	matchField("query-param", "present, or equal to a value", func(m *routeMatch) any { return &m.Query },
		func(a *adapter, n *kdl.Node, m *routeMatch) {
			if name, value, ok := a.nameValue(n); ok {
				m.Query = append(m.Query, routematch.QueryMatch{Name: name, Value: value})
				m.condScore += map[bool]int{true: 25, false: 15}[value != nil]
			}
		}),
)

// matchField is a condition of the matches block.
func matchField(name, note string, p func(*routeMatch) any, read func(*adapter, *kdl.Node, *routeMatch)) field[routeMatch] {
	return field[routeMatch]{key: h(name, note), ptr: p, read: read}
}

// nameValue reads a header or query condition: a name and an optional
// value.
func (a *adapter) nameValue(n *kdl.Node) (name string, value *string, ok bool) {
	vals := a.strs(n)
	if len(vals) == 0 || len(vals) > 2 {
		if len(vals) > 2 {
			a.d.errorf(n.Pos, "%s takes a name and an optional value", n.Name)
		}
		return "", nil, false
	}
	if len(vals) == 2 {
		value = &vals[1]
	}
	return vals[0], value, true
}

// check warns about conditions the original read differently.
func (m *routeMatch) check(a *adapter, n *kdl.Node) {
	if k := len(m.Path) + len(m.PathPrefix); k > 1 {
		a.d.warnf(n.Pos, "routes.route.matches", "route %q: its %d path/path-prefix conditions are alternatives (any one matches); the original required all of them, which never matched", m.route, k)
	}
}

// empty reports whether the matcher has no condition.
func (m *routeMatch) empty() bool {
	return len(m.Path)+len(m.PathPrefix)+len(m.PathRegex)+len(m.Host)+len(m.Header)+len(m.Method)+len(m.Query) == 0 &&
		m.SkipWhenDisabled == ""
}

// routePolicies is what a route's policies block maps to: the handlers
// in front of the route's filters, in this order.
type routePolicies struct {
	body              *requestbody.RequestBody
	timeout           *timeout.Timeout
	request, response *headerOps
	// rateLimit is the policies' rate-limit (defaults from the
	// rate-limits block applied by routeRateLimits).
	rateLimit *ratelimit.Handler
	// auditCritical puts the sentinel_audit_gate handler first
	// (kdladapter/audit.go).
	auditCritical bool
}

// handlers appends the policies' handlers to out, written in the
// adapter's arena (a.inArena).
func (p *routePolicies) handlers(a *adapter, out []any) []any {
	if p.body != nil {
		out = append(out, a.inArena(func(b []byte) []byte { return requestBodyHandler.append(b, p.body) }))
	}
	if p.timeout != nil {
		out = append(out, a.inArena(func(b []byte) []byte { return timeoutHandler.append(b, p.timeout) }))
	}
	if p.request != nil {
		out = p.request.appendHandlers(a, out, "request")
	}
	if p.response != nil {
		out = p.response.appendHandlers(a, out, "response")
	}
	return out
}

// inArena is the JSON write appends to the adapter's arena: the JSON of
// the route being mapped, valid until the next route is (mapRoute
// copies it into the route's fragments), without an allocation for each
// handler of 100,000 routes. Slices written before the arena grew keep
// its former array.
func (a *adapter) inArena(write func([]byte) []byte) json.RawMessage {
	start := len(a.arena)
	a.arena = write(a.arena)
	return a.arena[start:len(a.arena):len(a.arena)]
}

var (
	requestBodyHandler = newModuleJSON[requestbody.RequestBody]("handler", "request_body")
	timeoutHandler     = newModuleJSON[timeout.Timeout]("handler", "sentinel_timeout")
)

// policiesKey declares the policies block. Built once, not changed after.
var policiesKey = policiesBlock()

func policiesBlock() *Key {
	request := headerOpsKey("request-headers", "Caddy `headers` handler on the request")
	response := headerOpsKey("response-headers", "Caddy `headers` handler on the response")
	return typedBlock(h("policies", "per-route policies"),
		plainField(request, func(a *adapter, n *kdl.Node, p *routePolicies) {
			p.request = request.Map(a, n).(*headerOps)
		}),
		plainField(response, func(a *adapter, n *kdl.Node, p *routePolicies) {
			p.response = response.Map(a, n).(*headerOps)
		}),
		plainField(h("timeout-secs", "`sentinel_timeout` handler: 504 when exceeded"), func(a *adapter, n *kdl.Node, p *routePolicies) {
			if d, ok := a.secondsDuration(n); ok && d != 0 {
				p.timeout = &timeout.Timeout{Timeout: d}
			}
		}),
		plainField(h("max-body-size", "`request_body.max_size`: 413 above it"), func(a *adapter, n *kdl.Node, p *routePolicies) {
			if sz, ok := a.byteSize(n); ok {
				p.body = &requestbody.RequestBody{MaxSize: sz}
			}
		}),
		plainField(h("failure-mode", "checked (`open`/`closed`); agent failures follow each agent's or filter's `failure-mode` (503/504/413, see docs/agents.md), not the original's 500 for body-phase errors"),
			func(a *adapter, n *kdl.Node, _ *routePolicies) {
				if s, ok := a.str(n); ok {
					a.oneOf(n, s, "open", "closed")
				}
			}),
		plainField(policyRateLimitKey, func(a *adapter, n *kdl.Node, p *routePolicies) {
			p.rateLimit = policyRateLimitKey.Map(a, n).(*ratelimit.Handler)
		}),
		auditCriticalField(),
		field[routePolicies]{key: w("cache", "the original does not read policies.cache either: put `cache { enabled #true … }` in the route")},
		field[routePolicies]{key: w("buffer-requests", "not a Sentinel setting; requests stream unless a filter needs the body")},
		field[routePolicies]{key: w("buffer-responses", "not a Sentinel setting; responses stream")},
	)
}

// headerOps is what a block of header operations maps to: Caddy's
// headers operations and the header_rename handler's renamings. The set
// and add operations are lists of pairs, not http.Header maps (a map of
// about 400 bytes for each of 100,000 routes' request-headers): the
// handler's JSON is written from them (appendHandler) as encoding the
// maps would. The embedded HeaderOps holds the removals and names the
// settings' JSON keys.
type headerOps struct {
	headers.HeaderOps
	set, add headerPairs
	rename   map[string]string
}

// headerPairs are the headers of a set or add operation, each value with
// its header's name, in the order given (the values of a name stay in
// that order).
type headerPairs []headerPair

type headerPair struct{ name, value string }

// header is the operation as an http.Header (nil when empty).
func (p headerPairs) header() http.Header {
	if len(p) == 0 {
		return nil
	}
	h := http.Header{}
	for _, x := range p {
		h[x.name] = append(h[x.name], x.value)
	}
	return h
}

// appendJSON writes the operation as encoding its http.Header writes
// it: the names sorted, each with its values in order.
func (p headerPairs) appendJSON(buf []byte) []byte {
	// Sorted stably by name: the values of a name keep their order.
	slices.SortStableFunc(p, func(x, y headerPair) int { return strings.Compare(x.name, y.name) })
	buf = append(buf, '{')
	for i, x := range p {
		if i > 0 && p[i-1].name == x.name {
			buf = append(buf, ',')
			buf = appendString(buf, x.value)
			continue
		}
		if i > 0 {
			buf = append(buf, "],"...)
		}
		buf = appendString(buf, x.name)
		buf = append(buf, ":["...)
		buf = appendString(buf, x.value)
	}
	if len(p) > 0 {
		buf = append(buf, ']')
	}
	return append(buf, '}')
}

var (
	headersHandler = newModuleJSON[headers.Handler]("handler", "headers")
	renameHandler  = newModuleJSON[headerrename.Rename]("handler", "header_rename")
)

// headerOpsKey declares a block of header operations named name.
func headerOpsKey(name, note string) *Key {
	return typedBlock(h(name, note), headerOpFields(func(o *headerOps) *headerOps { return o })...)
}

// headerOpFields are the header operations (set, add, remove, rename) of
// a block mapped onto T, whose headerOps o returns.
func headerOpFields[T any](o func(*T) *headerOps) []field[T] {
	pairs := func(p func(*headerOps) *headerPairs) func(a *adapter, n *kdl.Node, t *T) {
		return func(a *adapter, n *kdl.Node, t *T) {
			for _, c := range n.Children {
				if len(c.Args) != 1 {
					a.d.errorf(c.Pos, "%s: header %q needs exactly one value", n.Name, c.Name)
					continue
				}
				hdr := p(o(t))
				*hdr = append(*hdr, headerPair{c.Name, valueText(c.Args[0])})
			}
		}
	}
	return []field[T]{
		{key: open(h("set", "Caddy `headers` handler (replaces)")), ptr: func(t *T) any { return &o(t).Set },
			read: pairs(func(h *headerOps) *headerPairs { return &h.set })},
		{key: open(h("add", "Caddy `headers` handler (appends)")), ptr: func(t *T) any { return &o(t).Add },
			read: pairs(func(h *headerOps) *headerPairs { return &h.add })},
		{key: h("remove", "Caddy `headers` handler"), ptr: func(t *T) any { return &o(t).Delete },
			read: func(a *adapter, n *kdl.Node, t *T) { o(t).Delete = append(o(t).Delete, a.strs(n)...) }},
		plainField(open(h("rename", "`header_rename` handler (moves all values)")), func(a *adapter, n *kdl.Node, t *T) {
			ren := map[string]string{}
			for _, c := range n.Children {
				if len(c.Args) != 1 || c.Args[0].Kind != kdl.KindString {
					a.d.errorf(c.Pos, "rename: %q needs exactly one new name", c.Name)
					continue
				}
				ren[c.Name] = c.Args[0].Str
			}
			if len(ren) > 0 {
				o(t).rename = ren
			}
		}),
	}
}

// handlers are the handlers of the operations for one phase.
func (o *headerOps) handlers(phase string) []any {
	return o.appendHandlers(nil, nil, phase)
}

// appendHandlers appends the handlers of the operations for one phase
// to out, written in a's arena (a.inArena), or each in a buffer of its
// own with a nil a.
func (o *headerOps) appendHandlers(a *adapter, out []any, phase string) []any {
	write := func(w func([]byte) []byte) json.RawMessage {
		if a == nil {
			return w(make([]byte, 0, 128))
		}
		return a.inArena(w)
	}
	if len(o.set) > 0 || len(o.add) > 0 || len(o.Delete) > 0 {
		out = append(out, write(func(b []byte) []byte { return o.appendHandler(b, phase) }))
	}
	if o.rename != nil {
		r := headerrename.Rename{Request: o.rename}
		if phase == "response" {
			r = headerrename.Rename{Response: o.rename}
		}
		out = append(out, write(func(b []byte) []byte { return renameHandler.append(b, &r) }))
	}
	return out
}

// appendHandler writes the headers handler of the set, add and delete
// operations for phase ("request" or "response"), as headersHandler
// writes the headers.Handler made of them (TestHeaderOpsJSONSameAsHandler):
// {"handler":"headers","request":{"add":…,"delete":…,"set":…}}, or
// "response" with "deferred":true among them.
func (o *headerOps) appendHandler(buf []byte, phase string) []byte {
	buf = append(buf, `{"handler":"headers","`...)
	buf = append(buf, phase...)
	buf = append(buf, `":{`...)
	sep := false
	member := func(key string) {
		if sep {
			buf = append(buf, ',')
		}
		sep = true
		buf = appendString(buf, key)
		buf = append(buf, ':')
	}
	if len(o.add) > 0 {
		member("add")
		buf = o.add.appendJSON(buf)
	}
	if phase == "response" {
		member("deferred")
		buf = append(buf, "true"...)
	}
	if len(o.Delete) > 0 {
		member("delete")
		buf = append(buf, '[')
		for i, d := range o.Delete {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, d)
		}
		buf = append(buf, ']')
	}
	if len(o.set) > 0 {
		member("set")
		buf = o.set.appendJSON(buf)
	}
	return append(buf, "}}"...)
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

// builtinKinds maps the builtin-handler names (builtinKind form) that
// the sentinel_builtin handler answers to its kinds.
var builtinKinds = map[string]string{
	"status": builtin.KindStatus, "health": builtin.KindHealth, "ready": builtin.KindReady,
	"not-found": builtin.KindNotFound, "config": builtin.KindConfig, "upstreams": builtin.KindUpstreams,
}

var (
	builtinHandler = newModuleJSON[builtin.Builtin]("handler", "sentinel_builtin")
	metricsHandler = newModuleJSON[metrics.Metrics]("handler", "metrics")
)

// builtin maps builtin-handler.
func (a *adapter) builtin(id string, n *kdl.Node) json.RawMessage {
	s, ok := a.str(n)
	if !ok {
		return nil
	}
	name := builtinKind(s)
	if kind, ok := builtinKinds[name]; ok {
		return builtinHandler.raw(&builtin.Builtin{Kind: kind, Route: id})
	}
	switch name {
	case "metrics":
		if h := namespaceMetrics(id); h != nil { // namespaces.go
			return h
		}
		return metricsHandler.raw(&metrics.Metrics{})
	case "cache-purge", "cache-stats":
		return encode(nil, a.cacheBuiltin(id, name, n))
	default:
		all := []string{"metrics", "cache-purge", "cache-stats"}
		for k := range builtinKinds {
			all = append(all, k)
		}
		sort.Strings(all)
		a.d.errorf(n.Args[0].Pos, "route %q: unknown builtin-handler %q%s", id, s, suggest(s, all))
	}
	return nil
}

// staticSite is what a static-files block maps to: Caddy's file server
// and the handlers in front of it (compression, Cache-Control, the SPA
// fallback).
type staticSite struct {
	fileserver.FileServer
	compress     bool
	cacheControl string
	fallback     string
	spa          bool
}

// staticFilesKey declares the static-files block. Built once, not
// changed after.
var staticFilesKey = typedBlockInit(h("static-files", "Caddy `file_server`"),
	func(s *staticSite) {
		s.IndexNames, s.compress, s.cacheControl = []string{"index.html"}, true, "public, max-age=3600"
	},
	stringField("root", "", func(s *staticSite) *string { return &s.Root }),
	fieldOf("index", "", func(a *adapter, n *kdl.Node) ([]string, bool) {
		s, ok := a.str(n)
		return []string{s}, ok
	}, func(s *staticSite) *[]string { return &s.IndexNames }),
	fieldOf("directory-listing", "", func(a *adapter, n *kdl.Node) (*fileserver.Browse, bool) {
		b, ok := a.boolean(n)
		if !ok || !b {
			return nil, false
		}
		return &fileserver.Browse{}, true
	}, func(s *staticSite) **fileserver.Browse { return &s.Browse }),
	plainField(h("cache-control", "`Cache-Control` response header"), func(a *adapter, n *kdl.Node, s *staticSite) {
		s.cacheControl, _ = a.str(n)
	}),
	plainField(h("compress", "`encode` gzip + zstd (brotli on the fly is not in Caddy)"), func(a *adapter, n *kdl.Node, s *staticSite) {
		s.compress = boolOr(a, n, true)
	}),
	plainField(h("fallback", "SPA fallback file (`try_files`)"), func(a *adapter, n *kdl.Node, s *staticSite) {
		s.fallback, _ = a.str(n)
	}),
	plainField(h("spa-fallback", "`#true` = fallback to the index file"), func(a *adapter, n *kdl.Node, s *staticSite) {
		s.spa, _ = a.boolean(n)
	}),
)

var (
	fileServerHandler = newModuleJSON[fileserver.FileServer]("handler", "file_server")
	encodeHandler     = newModuleJSON[caddyencode.Encode]("handler", "encode")
	subrouteHandler   = newModuleJSON[caddyhttp.Subroute]("handler", "subroute")
	rewriteHandler    = newModuleJSON[rewrite.Rewrite]("handler", "rewrite")
	fileMatcherJSON   = newModuleJSON[fileserver.MatchFile]("", "")
	emptyModule       = json.RawMessage(`{}`)
)

// staticFiles maps a static-files block.
func (a *adapter) staticFiles(id string, n *kdl.Node) []any {
	s := staticFilesKey.Map(a, n).(*staticSite)
	if setting(n, "root") == nil {
		a.d.errorf(n.Pos, "route %q: static-files needs a root folder", id)
	}
	var out []any
	if s.compress {
		out = append(out, encodeHandler.raw(&caddyencode.Encode{EncodingsRaw: caddy.ModuleMap{"gzip": emptyModule, "zstd": emptyModule},
			Prefer: []string{"zstd", "gzip"}, MinLength: 1024}))
	}
	if s.cacheControl != "" {
		out = append(out, headersHandler.raw(&headers.Handler{Response: &headers.RespHeaderOps{
			HeaderOps: &headers.HeaderOps{Set: http.Header{"Cache-Control": {s.cacheControl}}}, Deferred: true}}))
	}
	fallback := s.fallback
	if s.spa && fallback == "" {
		fallback = "/" + strings.TrimPrefix(s.IndexNames[0], "/")
	}
	if fallback != "" {
		if !strings.HasPrefix(fallback, "/") {
			fallback = "/" + fallback
		}
		file := fileMatcherJSON.raw(&fileserver.MatchFile{Root: s.Root, TryFiles: []string{"{http.request.uri.path}", "{http.request.uri.path}/", fallback}})
		out = append(out, subrouteHandler.raw(&caddyhttp.Subroute{Routes: caddyhttp.RouteList{{
			MatcherSetsRaw: caddyhttp.RawMatcherSets{{"file": file}},
			HandlersRaw:    []json.RawMessage{rewriteHandler.raw(&rewrite.Rewrite{URI: "{http.matchers.file.relative}"})},
		}}}))
	}
	return append(out, fileServerHandler.raw(&s.FileServer))
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
