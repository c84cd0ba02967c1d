package kdladapter

import (
	"maps"
	"slices"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// A configuration of 100,000 routes and upstreams parses into millions of
// nodes (460 MB), which the adapter held all at once while it mapped
// them. The loader now defers the blocks of `routes` and `upstreams`
// (kdl.ParseWith): each is parsed (so that a syntax error is reported as
// before), its environment variables expanded (which registers the
// values to hide from messages), what other blocks need of it recorded
// (routeRefs), and the document keeps a stub of it, without children.
// The adapter parses a block again when it maps it (adapter.load), checks
// it against the schema there, and drops it once mapped: the peak is the
// output and one block, not the whole tree.

// deferredKinds maps the top-level containers whose blocks are deferred
// to the blocks' name.
var deferredKinds = map[string]string{"routes": "route", "upstreams": "upstream"}

// routeRefs is what the adapter reads of a route before it maps it: the
// upstreams and filters it names and whether it serves metrics.
type routeRefs struct {
	// named are the ids of its upstream and its shadow's upstream, as
	// warnUnused reads them; proxied those that are strings, as
	// countUpstreamUses counts them.
	named, proxied []string
	// filters are the ids its filters setting names.
	filters []string
	// metrics is set for a builtin-handler "metrics".
	metrics bool
}

// refsOf reads a route block's routeRefs.
func refsOf(r *kdl.Node) *routeRefs {
	rr := &routeRefs{metrics: servesMetrics(r)}
	for _, n := range []*kdl.Node{setting(r, "upstream"), setting(setting(r, "shadow"), "upstream")} {
		if n != nil && len(n.Args) > 0 {
			rr.named = append(rr.named, n.Args[0].Str)
			if n.Args[0].Kind == kdl.KindString {
				rr.proxied = append(rr.proxied, n.Args[0].Str)
			}
		}
	}
	if n := setting(r, "filters"); n != nil {
		for _, v := range n.Args {
			rr.filters = append(rr.filters, v.Str)
		}
	}
	return rr
}

// parseAttempt holds what the deferred blocks of a file add while it is
// parsed as one KDL version (kdl.Parse tries v2, then v1): kept if the
// file parses as that version.
type parseAttempt struct {
	d    diag
	refs map[*kdl.Node]*routeRefs
}

// deferBlock is the loader's kdl Defer option: it expands a route or
// upstream block's environment variables, records its routeRefs, and
// defers it.
func (l *loader) deferBlock(df kdl.Deferral) bool {
	kind := deferredKinds[df.Parent.Name]
	if kind == "" || df.Node.Name != kind || hasBareDollar(df.Node) {
		// A bare `$` in the block's own values is reported with its
		// children (see bareDollar): not deferred.
		return false
	}
	if l.attempts == nil {
		l.attempts = make(map[int]*parseAttempt)
	}
	at := l.attempts[df.Version]
	if at == nil {
		at = &parseAttempt{d: diag{secrets: append([]redaction(nil), l.d.secrets...)}, refs: make(map[*kdl.Node]*routeRefs)}
		l.attempts[df.Version] = at
	}
	saved := l.d
	l.d = &at.d
	for _, c := range df.Node.Children {
		l.expandEnv(c)
	}
	l.d = saved
	if kind == "route" {
		at.refs[df.Stub] = refsOf(df.Node)
	}
	return true
}

// hasBareDollar reports an unquoted value with a `$` among n's own
// arguments and properties.
func hasBareDollar(n *kdl.Node) bool {
	bare := func(v kdl.Value) bool {
		return v.Kind == kdl.KindString && v.Bare && containsDollar(v.Str)
	}
	for _, v := range n.Args {
		if bare(v) {
			return true
		}
	}
	for _, p := range n.Props() {
		if bare(p.Value) {
			return true
		}
	}
	return false
}

func containsDollar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '$' {
			return true
		}
	}
	return false
}

// commit keeps what a file's deferred blocks added, once the file parsed
// as the attempt's version.
func (l *loader) commit(at *parseAttempt) {
	l.d.errs = append(l.d.errs, at.d.errs...)
	l.d.warns = append(l.d.warns, at.d.warns...)
	for _, r := range at.d.secrets {
		l.d.redact(r.value, r.ref)
	}
	switch {
	case len(at.refs) == 0:
	case l.refs == nil:
		l.refs = at.refs // the main file's: no copy
	default:
		maps.Copy(l.refs, at.refs)
	}
}

// load returns the whole block n (of the top-level container named
// container) stands for: n itself unless it is deferred, else the block
// parsed again, its environment variables expanded, and checked against
// the schema the first time it is loaded.
func (a *adapter) load(n *kdl.Node, container string) *kdl.Node {
	if !n.Deferred() {
		return n
	}
	full, err := a.reparse.Load(n)
	if err != nil {
		a.d.errorf(n.Pos, "%v", err)
		return n
	}
	if a.loader != nil {
		for _, c := range full.Children {
			a.loader.expandEnv(c)
		}
	}
	if !n.Marked() {
		// The stub's mark: checked.
		n.Mark()
		if k := a.schema.child(container).child(n.Name); k != nil {
			a.checkBlock(full, k, a.blockPath(container, n.Name))
		}
	}
	return full
}

// checkDeferred checks the deferred blocks nothing loaded (a route with a
// bad id, or all of them when an error stopped the mapping early), as
// the walker checked every block before.
func (a *adapter) checkDeferred(nodes []*kdl.Node) {
	// The routes detached from the document (detachRoutes) and not
	// mapped.
	for _, r := range a.routes {
		if r != nil && r.Deferred() && !r.Marked() {
			a.reparse.Release(a.load(r, "routes"))
		}
	}
	for _, n := range nodes {
		if deferredKinds[n.Name] == "" {
			continue
		}
		for _, c := range n.Children {
			if c.Deferred() && !c.Marked() {
				a.reparse.Release(a.load(c, n.Name))
			}
		}
	}
}

// routeRefs returns the routeRefs of route r.
func (a *adapter) routeRefs(r *kdl.Node) *routeRefs {
	if rr := a.refs[r]; rr != nil {
		return rr
	}
	full := a.load(r, "routes")
	defer a.reparse.Release(full)
	return refsOf(full)
}

// A route's stub (about 256 bytes) and its routeRefs are held until the
// end of the adaptation by the document, a.routes and a.refs;
// 100,000 routes hold about 40 MB of them through the whole mapping. The
// stubs of the top-level routes are detached from the document once
// collected (detachRoutes), and each is dropped once its route is mapped
// (dropStub): what warnUnused and mapMetrics read of the routes is taken
// before (routesSummary).

// routesSummary is what is read of every route after the routes are
// mapped.
type routesSummary struct {
	// used has "upstream/<id>" and "filter/<id>" for every upstream and
	// filter a route names.
	used map[string]bool
	// metrics is set when a route serves metrics.
	metrics bool
}

// summarizeRoutes reads the routesSummary of a.routes.
func (a *adapter) summarizeRoutes() *routesSummary {
	s := &routesSummary{used: map[string]bool{}}
	for _, r := range a.routes {
		rr := a.routeRefs(r)
		for _, id := range rr.named {
			s.used["upstream/"+id] = true
		}
		for _, id := range rr.filters {
			s.used["filter/"+id] = true
		}
		s.metrics = s.metrics || rr.metrics
	}
	return s
}

// routesSummary is a.summary, read from a.routes when the routes are not
// mapped yet.
func (a *adapter) routesSummary() *routesSummary {
	if a.summary != nil {
		return a.summary
	}
	return a.summarizeRoutes()
}

// detachRoutes removes the deferred blocks of routes (those collect
// returned, in order) from the container's children: a.routes holds
// them, and checkDeferred checks those nothing loaded.
func detachRoutes(container *kdl.Node, routes []*kdl.Node) {
	j := 0
	container.Children = slices.DeleteFunc(container.Children, func(c *kdl.Node) bool {
		if j < len(routes) && c == routes[j] {
			j++
			return c.Deferred()
		}
		return false
	})
}

// dropStub drops the stub of route i once it is mapped (loaded, so
// checked, its mark set): a.routes and a.refs forget it. The routes of a
// configuration with namespaces keep theirs (the namespaces' routes are
// still in the document, which checkDeferred walks).
func (a *adapter) dropStub(i int) {
	r := a.routes[i]
	if a.namespaced || !r.Deferred() {
		return
	}
	if !r.Marked() {
		return
	}
	a.routes[i] = nil
	delete(a.refs, r)
}
