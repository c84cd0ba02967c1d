package kdladapter

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
	"github.com/sentinel-proxy/sentinel/registry"
)

// Namespaces and services (the original's §11) are flattened into the
// global structures before anything is mapped: a namespace's upstream
// "api" becomes the upstream "team-a:api" of the registry, its route
// "web" the route "team-a:web", a service's upstream "db" in it
// "team-a:billing:db". The registry, the upstream source, load
// balancing, health checks and the control API then work on them
// unchanged; the part of an id before its first ':' is its namespace
// (NamespaceOf), which scoped control-API tokens and the tenant handler
// rely on. Ids outside namespaces may not contain ':' when a namespace
// of that prefix exists.
//
// References resolve service → namespace → exported → global; "ns:id"
// names the upstream, filter or agent id of namespace ns, which must
// export it when the reference comes from elsewhere. A name that is both
// exported by a namespace and global is ambiguous: a namespace cannot
// take a global name over silently.
//
// A listener declared in a namespace (or service), or with `namespace
// "id"`, serves only that namespace's (service's) routes. A listener
// with a `tenants { }` block serves every namespace's routes to the
// requests identified as that namespace only (see modules/tenant).

// namespaceChildren are the blocks a namespace and a service hold.
func namespaceChildren(listener *Key) []*Key {
	return []*Key{
		listener,
		ref(h("routes", "the namespace's routes, ids qualified `ns:id`", routeKeys()), "routes"),
		ref(h("upstreams", "the namespace's upstreams, registry ids `ns:id`", upstreamKeys()), "upstreams"),
		ref(h("filters", "the namespace's filters", filterKeys()), "filters"),
		ref(h("agents", "the namespace's agents, ids `ns:id`", agentKey), "agents"),
		namespaceLimitsKeys(), // nslimits.go
	}
}

func namespaceKey() *Key {
	children := namespaceChildren(ref(h("listeners", "listeners serving only this namespace's routes", listenerKey), "listeners"))
	service := h("service", "a service of the namespace: its items get ids `ns:service:id`; its listener serves only its routes",
		namespaceChildren(ref(h("listener", "a listener serving only this service's routes", listenerKey.Children...), "listeners.listener"))...)
	children = append(children,
		service,
		h("services", "a list of service blocks", ref(service, "namespace.service")),
		h("exports", "ids other namespaces and the global routes may use (`ns:id` or, unambiguously, `id`)",
			h("upstreams", "exported upstream ids"),
			h("filters", "exported filter ids"),
			h("agents", "exported agent ids"),
		),
	)
	return h("namespace", "a tenant's configuration, flattened into the global one with qualified ids (see docs/multi-tenancy.md)", children...)
}

// NamespaceOf returns the namespace of a qualified upstream, route,
// filter, agent or listener id ("" for a global one).
func NamespaceOf(id string) string { return registry.NamespaceOf(id) }

// tenancy holds the namespaces of a configuration.
type tenancy struct {
	// names are the declared namespaces, in order.
	names []string
	ns    map[string]*nsScope
	// bound maps listener ids to the route-id prefix they serve.
	bound map[string]string
	// shared holds the listeners identifying tenants.
	shared map[string]bool
	// exported maps kind/id to the namespaces exporting it.
	exported map[string][]string
	// global holds kind/id of the global items.
	global map[string]bool
	// scopes maps the names of the namespaces and services ("team-a",
	// "team-a:billing") to them.
	scopes map[string]*nsScope
	// breakers maps target addresses to the upstreams with a circuit
	// breaker that have them (nsbreakers.go).
	breakers map[string][]breakerUse
}

// nsScope is a namespace or a service.
type nsScope struct {
	name   string // "team-a" or "team-a:billing"
	ns     string
	node   *kdl.Node
	parent *nsScope
	// local maps kind/local-id to the qualified id.
	local    map[string]string
	services map[string]*nsScope
	// blocks hold the scope's items by kind.
	items map[string][]*kdl.Node
	// listeners of the scope.
	listeners []*kdl.Node
	// limits are the scope's limits { } values (nil without the block),
	// read from limitsNode (nslimits.go).
	limits     *nsLimits
	limitsNode *kdl.Node
}

// flattenNamespaces maps the namespace blocks into the adapter's global
// maps. It runs after the global blocks are collected.
func (a *adapter) flattenNamespaces(blocks []*kdl.Node) {
	if len(blocks) == 0 {
		for _, l := range a.listeners {
			if n := setting(l, "namespace"); n != nil {
				a.d.errorf(n.Pos, "listener %q: namespace names no declared namespace (there is no namespace block)", l.Args[0].Str)
			}
			if n := setting(l, "tenants"); n != nil {
				a.d.errorf(n.Pos, "listener %q: tenants needs namespace blocks (there is none)", l.Args[0].Str)
			}
		}
		return
	}
	t := &tenancy{ns: map[string]*nsScope{}, bound: map[string]string{}, shared: map[string]bool{}, exported: map[string][]string{}, global: map[string]bool{}, scopes: map[string]*nsScope{}}
	a.tenancy = t
	for id := range a.upstreams {
		t.global["upstream/"+id] = true
	}
	for id := range a.filters {
		t.global["filter/"+id] = true
	}
	for id := range a.agents {
		t.global["agent/"+id] = true
	}
	for _, b := range blocks {
		a.declareNamespace(b)
	}
	a.checkGlobalIDs()
	var scopes []*nsScope
	for _, name := range t.names {
		s := t.ns[name]
		scopes = append(scopes, s)
		for _, svc := range sortedKeys(s.services) {
			scopes = append(scopes, s.services[svc])
		}
	}
	broken := map[string]bool{}
	// Filters first: a route using a filter in error is dropped.
	for _, s := range scopes {
		for _, f := range s.items["filter"] {
			local := f.Args[0].Str
			f.Args[0].Str = s.local["filter/"+local]
			if n := setting(f, "agent"); n != nil && filterType(f) == "agent" {
				if !a.resolveRef(s, "agent", n, "filter "+quote(f.Args[0].Str)) {
					broken["filter/"+f.Args[0].Str] = true
					continue
				}
			}
			a.filters[f.Args[0].Str] = f
		}
		for _, u := range s.items["upstream"] {
			u.Args[0].Str = s.local["upstream/"+u.Args[0].Str]
			a.upstreams[u.Args[0].Str] = u
		}
		for _, ag := range s.items["agent"] {
			ag.Args[0].Str = s.local["agent/"+ag.Args[0].Str]
			a.agents[ag.Args[0].Str] = ag
		}
	}
	// Global filters and routes may use exported items.
	for _, f := range a.sortedFilters() {
		if n := setting(f, "agent"); n != nil && NamespaceOf(f.Args[0].Str) == "" && filterType(f) == "agent" {
			if !a.resolveRef(nil, "agent", n, "filter "+quote(f.Args[0].Str)) {
				delete(a.filters, f.Args[0].Str)
				broken["filter/"+f.Args[0].Str] = true
			}
		}
	}
	a.resolveGlobalRoutes(broken)
	for _, s := range scopes {
		for _, r := range s.items["route"] {
			r.Args[0].Str = s.local["route/"+r.Args[0].Str]
			if a.resolveRoute(s, r, broken) {
				a.routes = append(a.routes, r)
			}
		}
		for _, l := range s.listeners {
			l.Args[0].Str = s.name + ":" + l.Args[0].Str
			t.bound[l.Args[0].Str] = s.name + ":"
			if n := setting(l, "default-route"); n != nil && len(n.Args) == 1 && n.Args[0].Kind == kdl.KindString {
				if q, ok := s.lookup("route", n.Args[0].Str); ok {
					n.Args[0].Str = q
				}
			}
			a.listeners = append(a.listeners, l)
		}
	}
	// Global listeners bound with `namespace "id"`, or identifying
	// tenants.
	for _, l := range a.listeners {
		if setting(l, "tenants") != nil {
			if _, own := t.bound[l.Args[0].Str]; own {
				a.d.errorf(setting(l, "tenants").Pos, "listener %q: a listener in a namespace serves only that namespace; tenants is for shared listeners", l.Args[0].Str)
			} else {
				t.shared[l.Args[0].Str] = true
			}
		}
		n := setting(l, "namespace")
		if n == nil {
			continue
		}
		if _, own := t.bound[l.Args[0].Str]; own {
			a.d.errorf(n.Pos, "listener %q: namespace is for listeners outside namespaces (this one is bound to its own)", l.Args[0].Str)
			continue
		}
		name, ok := a.str(n)
		if !ok {
			continue
		}
		if t.ns[name] == nil {
			a.d.errorf(n.Args[0].Pos, "listener %q: namespace %q is not declared%s", l.Args[0].Str, name, suggest(name, t.names))
			continue
		}
		if setting(l, "tenants") != nil {
			a.d.errorf(n.Pos, "listener %q: a listener bound to a namespace has no tenants to identify; give namespace or tenants, not both", l.Args[0].Str)
		}
		t.bound[l.Args[0].Str] = name + ":"
		if d := setting(l, "default-route"); d != nil && len(d.Args) == 1 && d.Args[0].Kind == kdl.KindString {
			if q, ok := t.ns[name].lookup("route", d.Args[0].Str); ok {
				d.Args[0].Str = q
			}
		}
	}
	a.limitsWithoutListeners(scopes)
}

// declareNamespace reads one namespace block (or a `namespaces`
// container of them).
func (a *adapter) declareNamespace(b *kdl.Node) {
	if b.Name == "namespaces" {
		for _, c := range b.Children {
			if c.Name == "namespace" {
				a.declareNamespace(c)
			}
		}
		return
	}
	t := a.tenancy
	name, ok := a.scopeID(b, "namespace")
	if !ok {
		return
	}
	if prev := t.ns[name]; prev != nil {
		a.d.errorf(b.Pos, "duplicate namespace %q (first defined at %s)", name, prev.node.Pos)
		return
	}
	s := a.readScope(name, name, b, nil)
	t.ns[name] = s
	t.scopes[name] = s
	t.names = append(t.names, name)
	var services []*kdl.Node
	for _, c := range b.Children {
		switch c.Name {
		case "service":
			services = append(services, c)
		case "services":
			services = append(services, settings(c, "service")...)
		}
	}
	for _, c := range services {
		svc, ok := a.scopeID(c, "service")
		if !ok {
			continue
		}
		if prev := s.services[svc]; prev != nil {
			a.d.errorf(c.Pos, "namespace %q: duplicate service %q (first defined at %s)", name, svc, prev.node.Pos)
			continue
		}
		s.services[svc] = a.readScope(name+":"+svc, name, c, s)
		t.scopes[name+":"+svc] = s.services[svc]
	}
	for _, ex := range settings(b, "exports") {
		for _, kind := range []string{"upstream", "filter", "agent"} {
			n := setting(ex, kind+"s")
			if n == nil {
				continue
			}
			for i, id := range a.strs(n) {
				q, ok := s.local[kind+"/"+id]
				if !ok || NamespaceOf(q) != name || strings.Count(q, ":") != 1 {
					a.d.errorf(n.Args[i].Pos, "namespace %q exports %s %q, which it does not define%s", name, kind, id, suggest(id, s.ids(kind)))
					continue
				}
				t.exported[kind+"/"+id] = append(t.exported[kind+"/"+id], name)
				t.exported[kind+"/"+q] = append(t.exported[kind+"/"+q], name)
			}
		}
	}
}

// scopeID reads the id of a namespace or service block.
func (a *adapter) scopeID(b *kdl.Node, kind string) (string, bool) {
	if len(b.Args) != 1 || b.Args[0].Kind != kdl.KindString || b.Args[0].Str == "" {
		a.d.errorf(b.Pos, "%s needs exactly one id: %s \"name\" { … }", kind, kind)
		return "", false
	}
	id := b.Args[0].Str
	if !validScopeID(id) {
		a.d.errorf(b.Args[0].Pos, "%s id %q: use letters, digits, '-', '_' and '.' only (':' separates qualified ids)", kind, id)
		return "", false
	}
	return id, true
}

// validScopeID reports whether id may name a namespace or service.
func validScopeID(id string) bool {
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return id != ""
}

// readScope collects the items of a namespace or service block.
func (a *adapter) readScope(name, ns string, b *kdl.Node, parent *nsScope) *nsScope {
	s := &nsScope{name: name, ns: ns, node: b, parent: parent, local: map[string]string{}, services: map[string]*nsScope{}, items: map[string][]*kdl.Node{}}
	s.limitsNode = setting(b, "limits")
	s.limits = a.readLimits(s.limitsNode)
	ids := map[string]*kdl.Node{}
	add := func(kind string, items []*kdl.Node) {
		for _, it := range items {
			id := it.Args[0].Str
			if strings.Contains(id, ":") {
				a.d.errorf(it.Args[0].Pos, "%s %q in %s %q: ids in a namespace may not contain ':' (it is qualified as %q)", kind, id, scopeKind(s), name, name+":…")
				continue
			}
			s.local[kind+"/"+id] = name + ":" + id
			s.items[kind] = append(s.items[kind], it)
		}
	}
	for _, c := range b.Children {
		switch c.Name {
		case "upstreams", "routes", "filters", "agents":
			kind := strings.TrimSuffix(c.Name, "s")
			add(kind, a.collect(c, kind, ids))
			if c.Name == "agents" && setting(c, "registration") != nil {
				a.d.errorf(setting(c, "registration").Pos, "%s %q: agent registration is global (agents { registration { … } } at the top level)", scopeKind(s), name)
			}
		case "listeners":
			s.listeners = append(s.listeners, a.collect(c, "listener", ids)...)
		case "listener":
			// A service's own listener.
			s.listeners = append(s.listeners, a.collect(&kdl.Node{Children: []*kdl.Node{c}}, "listener", ids)...)
		}
	}
	for _, l := range s.listeners {
		if strings.Contains(l.Args[0].Str, ":") {
			a.d.errorf(l.Args[0].Pos, "listener %q in %s %q: ids in a namespace may not contain ':'", l.Args[0].Str, scopeKind(s), name)
		}
		if n := setting(l, "namespace"); n != nil {
			a.d.errorf(n.Pos, "listener %q: a listener in %s %q is bound to it already; remove namespace", l.Args[0].Str, scopeKind(s), name)
		}
	}
	return s
}

func scopeKind(s *nsScope) string {
	if s.parent != nil {
		return "service"
	}
	return "namespace"
}

// ids lists the scope's local ids of kind, for suggestions.
func (s *nsScope) ids(kind string) []string {
	var out []string
	for k := range s.local {
		if id, ok := strings.CutPrefix(k, kind+"/"); ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// lookup finds a local id of kind in the scope or its parent.
func (s *nsScope) lookup(kind, id string) (string, bool) {
	for sc := s; sc != nil; sc = sc.parent {
		if q, ok := sc.local[kind+"/"+id]; ok {
			return q, true
		}
	}
	return "", false
}

// checkGlobalIDs refuses global ids that would read as another
// namespace's.
func (a *adapter) checkGlobalIDs() {
	t := a.tenancy
	check := func(kind, id string, n *kdl.Node) {
		if ns := NamespaceOf(id); ns != "" && t.ns[ns] != nil {
			a.d.errorf(n.Args[0].Pos, "%s %q outside namespace %q: an id with ':' names a namespace's item; declare it in namespace %q or rename it", kind, id, ns, ns)
		}
	}
	for id, n := range a.upstreams {
		check("upstream", id, n)
	}
	for id, n := range a.filters {
		check("filter", id, n)
	}
	for id, n := range a.agents {
		check("agent", id, n)
	}
	for _, r := range a.routes {
		check("route", r.Args[0].Str, r)
	}
	for _, l := range a.listeners {
		check("listener", l.Args[0].Str, l)
	}
}

// globalBuiltins are the builtin handlers whose answer covers every
// namespace: a namespace's routes may not use them. (Its "metrics" is
// the namespace's view, namespaceMetrics.)
var globalBuiltins = map[string]bool{"upstreams": true, "config": true, "cache-purge": true, "cache-stats": true}

// namespaceMetrics is the handler of `builtin-handler "metrics"` in a
// namespace's route: that namespace's series only; nil for a global
// route.
func namespaceMetrics(routeID string) json.RawMessage {
	ns := NamespaceOf(routeID)
	if ns == "" {
		return nil
	}
	return caddyconfig.JSONModuleObject(tenant.Metrics{Namespace: ns}, "handler", tenant.Metrics{}.CaddyModule().ID.Name(), nil)
}

// resolveGlobalRoutes resolves the global routes' references (see
// resolveRoute) and drops those that do not resolve. A global route is
// deferred (a stub without children, see deferred.go): it is loaded to
// be resolved, and kept loaded in place of its stub only when a
// reference was rewritten, since loading it again would lose that.
func (a *adapter) resolveGlobalRoutes(broken map[string]bool) {
	a.routes = slices.DeleteFunc(a.routes, func(r *kdl.Node) bool {
		full := a.load(r, "routes")
		if full == r {
			return !a.resolveRoute(nil, r, broken)
		}
		before := refsOf(full)
		if !a.resolveRoute(nil, full, broken) {
			a.reparse.Release(full)
			return true
		}
		if after := refsOf(full); !slices.Equal(before.named, after.named) || !slices.Equal(before.filters, after.filters) {
			*r = *full
			if a.refs != nil {
				a.refs[r] = after
			}
			return false
		}
		a.reparse.Release(full)
		return false
	})
}

// resolveRoute rewrites a route's references to qualified ids; false
// when one does not resolve (reported) or names a filter in error.
func (a *adapter) resolveRoute(s *nsScope, r *kdl.Node, broken map[string]bool) bool {
	ok := true
	what := "route " + quote(r.Args[0].Str)
	if b := setting(r, "builtin-handler"); s != nil && b != nil && len(b.Args) == 1 && b.Args[0].Kind == kdl.KindString && globalBuiltins[builtinKind(b.Args[0].Str)] {
		a.d.errorf(b.Args[0].Pos, "%s in %s %q: builtin-handler %q shows or changes every namespace's state; declare the route outside namespaces", what, scopeKind(s), s.name, b.Args[0].Str)
		ok = false
	}
	for _, n := range []*kdl.Node{setting(r, "upstream"), setting(setting(r, "shadow"), "upstream")} {
		if n != nil && !a.resolveRef(s, "upstream", n, what) {
			ok = false
		}
	}
	if n := setting(r, "filters"); n != nil {
		for i := range n.Args {
			one := &kdl.Node{Name: n.Name, Pos: n.Pos, Args: n.Args[i : i+1]}
			if !a.resolveRef(s, "filter", one, what) {
				ok = false
			} else if broken["filter/"+n.Args[i].Str] {
				ok = false
			}
		}
	}
	return ok
}

// resolveRef resolves the string argument of n, a reference to an item
// of kind from scope s (nil: the global scope), and rewrites it to the
// qualified id. It reports and returns false when it does not resolve.
// A global reference that matches no namespace's item is left to the
// mappers (whose messages are the usual ones).
func (a *adapter) resolveRef(s *nsScope, kind string, n *kdl.Node, what string) bool {
	if len(n.Args) == 0 || n.Args[0].Kind != kdl.KindString {
		return true // the mapper reports it
	}
	t := a.tenancy
	v := &n.Args[0]
	ref := v.Str
	own := ""
	if s != nil {
		own = s.ns
	}
	if ns := NamespaceOf(ref); ns != "" {
		target := t.ns[ns]
		switch {
		case target == nil:
			a.d.errorf(v.Pos, "%s: %s %q: there is no namespace %q%s", what, kind, ref, ns, suggest(ns, t.names))
			return false
		case ns == own:
			if !t.has(target, kind, ref) {
				a.d.errorf(v.Pos, "%s: %s %q is not defined in namespace %q", what, kind, ref, ns)
				return false
			}
		case !slices.Contains(t.exported[kind+"/"+ref], ns):
			if t.has(target, kind, ref) {
				a.d.errorf(v.Pos, "%s: %s %q is not exported by namespace %q (add it to its exports { %ss … })", what, kind, ref, ns, kind)
			} else {
				a.d.errorf(v.Pos, "%s: %s %q is not defined in namespace %q", what, kind, ref, ns)
			}
			return false
		}
		return true
	}
	if s != nil {
		if q, ok := s.lookup(kind, ref); ok {
			v.Str = q
			return true
		}
	}
	var from []string
	for _, ns := range t.exported[kind+"/"+ref] {
		if ns != own {
			from = append(from, ns)
		}
	}
	switch {
	case len(from) > 1:
		a.d.errorf(v.Pos, "%s: %s %q is ambiguous: exported by namespaces %s; write %q", what, kind, ref, strings.Join(from, ", "), from[0]+":"+ref)
		return false
	case len(from) == 1 && t.global[kind+"/"+ref]:
		a.d.errorf(v.Pos, "%s: %s %q is ambiguous: both global and exported by namespace %q; write %q for the namespace's, or rename one", what, kind, ref, from[0], from[0]+":"+ref)
		return false
	case len(from) == 1:
		v.Str = from[0] + ":" + ref
		return true
	case t.global[kind+"/"+ref] || s == nil:
		return true
	}
	var candidates []string
	for sc := s; sc != nil; sc = sc.parent {
		candidates = append(candidates, sc.ids(kind)...)
	}
	for k := range t.global {
		if id, ok := strings.CutPrefix(k, kind+"/"); ok {
			candidates = append(candidates, id)
		}
	}
	a.d.errorf(v.Pos, "%s: %s %q is not defined in %s %q, its namespace's exports nor globally%s", what, kind, ref, scopeKind(s), s.name, suggest(ref, candidates))
	return false
}

// has reports whether the namespace (or one of its services) defines
// the qualified id of kind.
func (t *tenancy) has(s *nsScope, kind, q string) bool {
	for _, id := range s.local {
		if id == q && t.kindOf(s, kind, q) {
			return true
		}
	}
	for _, svc := range s.services {
		if t.has(svc, kind, q) {
			return true
		}
	}
	return false
}

// kindOf reports whether q is a qualified id of kind in s.
func (t *tenancy) kindOf(s *nsScope, kind, q string) bool {
	local := strings.TrimPrefix(q, s.name+":")
	return s.local[kind+"/"+local] == q
}

// quote is strconv.Quote for messages.
func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tokenNamespace reads an admin-api token's namespace property: a
// declared namespace.
func (a *adapter) tokenNamespace(p kdl.Prop) string {
	if p.Value.Kind != kdl.KindString || p.Value.Str == "" {
		a.d.errorf(p.Pos, "namespace must be a namespace's id")
		return ""
	}
	ns := p.Value.Str
	var names []string
	if a.tenancy != nil {
		names = a.tenancy.names
	}
	if !slices.Contains(names, ns) {
		a.d.errorf(p.Value.Pos, "admin-api token: namespace %q is not declared%s", ns, suggest(ns, names))
		return ""
	}
	return ns
}

// ref marks k as sharing the keys of the block at path (see Key.Ref).
func ref(k *Key, path string) *Key {
	c := *k
	c.Ref = path
	return &c
}
