// Package kdladapter is the Caddy config adapter "kdl": it turns a
// sentinel.kdl file (KDL v1 or v2, in the original Sentinel's schema) into
// Caddy JSON. It is a pure function of its input, the files it includes and
// the environment variables it names: the same input gives the same bytes.
//
// # Schema and mappers
//
// Schema() declares every node name of the original's schema as a Key
// (honoured, warned or not yet); the walker (checkBlock) reports unknown
// and unsupported settings from it. A block converted to the typed form
// is declared once, with its mapper: typedBlock[T] sets the Key's
// Children and its Map together from field declarations, each a KDL
// setting and the function reading it into T, the target module's own
// struct (adaptive.PeakEWMA for `load-balancing "peak_ewma" { … }`). The
// output JSON of such a block comes from that struct's tags (typedObj
// encodes it with encoding/json and adds the module's inline key, as
// caddyconfig.JSONModuleObject does), so its keys are declared in one
// place, the module; typedTree does it for structs that nest others
// (typedtree.go), and moduleJSON (typedjson.go) writes a module struct
// from a plan of it computed once. Typed: the routes, filters, agents and
// plugins blocks (routes.go, filters.go, agents.go, plugins.go), a
// route's shadow block (shadow.go), the
// load-balancing blocks (lbPolicies), the upstreams' transport,
// circuit-breaker and retry-policy, listeners and their TLS, system,
// observability and admin-api (see docs/architecture.md). What is left on
// obj maps is listed in docs/architecture.md.
//
// A mapper reads its own block and the parsed document (the fields of
// adapter holding nodes), not state another mapper sets: whether the
// http app's metrics are on, for instance, is read from the routes where
// it is needed.
package kdladapter

import (
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/adaptive"
)

func init() {
	caddyconfig.RegisterAdapter("kdl", Adapter{})
}

// Adapter adapts sentinel.kdl to Caddy JSON.
type Adapter struct{}

// Adapt converts the KDL body to Caddy JSON. The "filename" option (set by
// Caddy's command line) is used for error positions and to resolve
// includes relative to the file.
func (Adapter) Adapt(body []byte, options map[string]any) ([]byte, []caddyconfig.Warning, error) {
	filename, _ := options["filename"].(string)
	return Adapt(filename, body, os.LookupEnv, OSFiles{})
}

// Adapt is the adapter as a function with its inputs made explicit: the
// config file's name and content, the environment and the files it may
// include.
// The configuration's size limit is ConfigLimit's. body must not change
// while Adapt runs: the configuration's strings share its memory.
func Adapt(filename string, body []byte, lookupEnv func(string) (string, bool), files Files) ([]byte, []caddyconfig.Warning, error) {
	limit, err := ConfigLimit(lookupEnv)
	if err != nil {
		return nil, nil, err
	}
	return adapt(filename, body, lookupEnv, files, limit)
}

// adapt is Adapt with the size limit of the whole configuration as a
// parameter (benchmarks of very large configurations lift it).
func adapt(filename string, body []byte, lookupEnv func(string) (string, bool), files Files, maxBytes int64) ([]byte, []caddyconfig.Warning, error) {
	return adaptLoader(&loader{lookupEnv: lookupEnv, files: files, max: maxBytes}, filename, body)
}

// adaptLoader is adapt with the loader given (tests read whole documents
// with it, without deferred blocks, to compare).
func adaptLoader(l *loader, filename string, body []byte) ([]byte, []caddyconfig.Warning, error) {
	f, warns, err := adaptFlat(l, filename, body)
	if err != nil {
		return nil, warns, err
	}
	if f.size >= collectBefore {
		// The configuration's text, tree and stubs (about 1.5 times the
		// output) are garbage now: collected before the output is
		// allocated, not after it (an allocation this large does not
		// wait for the collector, even at a memory limit: 45 MB more at
		// the peak for 100,000 routes).
		runtime.GC()
	}
	return f.bytes(), warns, nil
}

// collectBefore is the size of output from which adaptLoader collects
// garbage before allocating it: that of about 30,000 routes.
const collectBefore = 24 << 20

// Output is an adapted configuration not yet written out: its skeleton
// and the encoded routes and upstreams, without the configuration's tree
// or the KDL text. Written with WriteTo, the JSON of a large
// configuration is never held whole (`sentinel adapt` writes it so).
type Output struct {
	f *flatJSON
}

// WriteTo writes the configuration's JSON to w, once: the parts are
// released as they are written.
func (o *Output) WriteTo(w io.Writer) (int64, error) {
	return o.f.writeTo(w)
}

// Len is the length of the configuration's JSON.
func (o *Output) Len() int { return o.f.size }

var _ io.WriterTo = (*Output)(nil)

// AdaptOutput is Adapt returning the configuration as an Output, to be
// written to a file or the standard output without being built whole.
func AdaptOutput(filename string, body []byte, lookupEnv func(string) (string, bool), files Files) (*Output, []caddyconfig.Warning, error) {
	limit, err := ConfigLimit(lookupEnv)
	if err != nil {
		return nil, nil, err
	}
	f, warns, err := adaptFlat(&loader{lookupEnv: lookupEnv, files: files, max: limit}, filename, body)
	if err != nil {
		return nil, warns, err
	}
	return &Output{f: f}, warns, nil
}

// adaptFlat adapts the configuration into a flatJSON: what it holds
// refers to neither the configuration's tree nor body, which the
// collector can free before the output is written.
func adaptFlat(l *loader, filename string, body []byte) (*flatJSON, []caddyconfig.Warning, error) {
	d := &diag{}
	l.d = d
	if abs, err := absPath(filename); err == nil && filename != "" && filename != "-" {
		l.stack = []string{abs}
	}
	nodes := l.loadMain(filename, body)
	if err := d.err(); err != nil {
		return nil, d.warnings(), err
	}
	// Nothing refers to the adapter (nor to the KDL tree) after build:
	// the garbage collector can free them while the output is written.
	a := &adapter{d: d, filename: filename, loader: l, refs: l.refs}
	cfg := a.build(nodes)
	if err := d.err(); err != nil {
		return nil, d.warnings(), err
	}
	routes := len(a.built)
	return flatten(cfg, routes), d.warnings(), nil
}

// adapter holds the state of one adaptation.
type adapter struct {
	d *diag

	system    *kdl.Node
	listeners []*kdl.Node
	// streamCloseDelay is every reverse_proxy's stream_close_delay: how
	// long the upgraded connections (WebSockets) of a replaced config
	// keep relaying after a reload (mapSystem).
	streamCloseDelay string
	// routes and upstreams are the stubs of deferred blocks (their
	// children left out, deferred.go): read a block's settings through
	// load, what is read of every route through routeRefs.
	routes        []*kdl.Node
	upstreams     map[string]*kdl.Node
	filters       map[string]*kdl.Node
	limits        *kdl.Node
	observability *kdl.Node

	// tlsOf memoizes the mapping of each listener's tls block (see
	// listenerTLS): the servers and the tls app read it, in any order.
	tlsOf map[*kdl.Node]*listenerTLS
	// built holds the mapped routes, in order (see routeTable).
	built []*builtRoute
	// frags holds the encoded routes and upstreams.
	frags fragments
	// proxyScratch holds the last route's reverse_proxy handler
	// (reverseProxyJSON).
	proxyScratch []byte
	// spec and arena are the route being mapped's spec and the JSON of
	// its small handlers (mapRoute), reused from route to route.
	spec  routeSpec
	arena []byte
	// filterOut holds the mappings of the filters that are the same for
	// every route naming them (see filterHandlers).
	filterOut map[*kdl.Node]*mappedFilter
	// proxies caches each upstream's mapping (see upstreamBase); uses
	// counts the proxies to each upstream the routes have yet to make
	// while they are mapped (see releaseBase).
	proxies map[string]*upstreamBase
	uses    map[string]int
	// baseJSON holds the upstreams' small JSON parts (base), weights
	// and transportScratch what base reuses from upstream to upstream.
	// baseSlab the upstreamBases not used yet.
	baseJSON         fragments
	weights          []int64
	transportScratch adaptive.Transport
	baseSlab         []upstreamBase
	// filename is the config file ("" when not from a file).
	filename string
	// adminAPI is the admin-api block.
	adminAPI *kdl.Node
	// cacheBlock is the top-level cache block (storage); cacheSet its
	// mapping (cache.go).
	cacheBlock *kdl.Node
	cacheSet   *cacheSettings
	// plugins are the WASM plugin blocks by id.
	plugins map[string]*kdl.Node
	// agents are the agent blocks by id; agentReg is the registration
	// listener block.
	agents   map[string]*kdl.Node
	agentReg *kdl.Node
	// rateLimits is the rate-limits block (ratelimit.go).
	rateLimits *kdl.Node
	// tenancy holds the namespaces (namespaces.go); nil without any.
	tenancy *tenancy
	// paths holds the dotted paths of the blocks checkBlock descends
	// into (see blockPath).
	paths map[[2]string]string

	// The deferred route and upstream blocks (deferred.go): loader
	// expands their environment variables again, reparse parses them
	// again, refs holds what is read of the routes before they are
	// mapped (a stub checked against the schema is marked, kdl.Node.Mark).
	loader  *loader
	reparse kdl.Reparser
	// treeTypes caches the struct types typedTree walks.
	treeTypes *treeTypes
	refs      map[*kdl.Node]*routeRefs
	// summary is what warnUnused and mapMetrics read of every route,
	// taken before the routes are mapped and their stubs dropped (see
	// routeTable, dropStub); namespaced is set when the configuration
	// has namespaces, whose routes' stubs stay in the document.
	summary    *routesSummary
	namespaced bool
	schema     *Key
}

// checkBlock validates the children of block against spec, recursively:
// unknown names are errors with a suggestion, not-yet features are errors,
// settings with no effect are warnings. where is the dotted path of block.
func (a *adapter) checkBlock(block *kdl.Node, spec *Key, where string) {
	if spec.Open || spec.Children == nil {
		return
	}
	// The settings seen, for repeated ones: a list for the small blocks
	// of routes and upstreams (no map to make and hash for each of
	// them), a map for larger ones.
	var (
		small [16]*kdl.Node
		seen  map[string]*kdl.Node
	)
	list := small[:0]
	if len(block.Children) > len(small) {
		seen = make(map[string]*kdl.Node)
	}
	for _, c := range block.Children {
		k := spec.child(c.Name)
		if k == nil {
			if where == "" && c.Pos.File != a.filename {
				// The top level of an included file: it may be any file
				// (include "/etc/shadow"), whose text is not shown.
				a.d.errorf(c.Pos, "unknown setting in the top level of an included file (is it a Sentinel configuration?)%s", suggest(c.Name, spec.names()))
				continue
			}
			a.d.errorf(c.Pos, "unknown setting %q in %s%s", c.Name, blockName(where), suggest(c.Name, spec.names()))
			continue
		}
		if k.Children == nil && !k.Open && c.Children != nil && k.Status == Honoured {
			// A setting takes values, not a block: `token ${X}` unquoted
			// is "$" and a block { X }, which must not pass as "$".
			a.d.errorf(c.Pos, "%s is a setting: it takes values, not a children block { … }", c.Name)
			continue
		}
		var prev *kdl.Node
		if seen != nil {
			prev = seen[c.Name]
			seen[c.Name] = c
		} else {
			for i := len(list) - 1; i >= 0 && prev == nil; i-- {
				if list[i].Name == c.Name {
					prev = list[i]
				}
			}
			list = append(list, c)
		}
		if prev != nil && k.Children == nil && !repeatable[c.Name] {
			a.d.warnf(c.Pos, joinPath(where, c.Name), "repeated; the first one (line %d) is used", prev.Pos.Line)
		}
		switch k.Status {
		case NotYet:
			a.d.notYet(c.Pos, k.Note, joinPath(where, c.Name))
			continue
		case Warned:
			// The key is the warning's Directive: the message does not
			// repeat it ("file:line (system.x): accepted but …").
			a.d.warnf(c.Pos, joinPath(where, c.Name), "accepted but has no effect: %s", k.Note)
		}
		if k.Children != nil && !k.Open {
			a.checkBlock(c, k, a.blockPath(where, c.Name))
		}
	}
}

// repeatable names the settings that may appear more than once.
var repeatable = map[string]bool{
	"target": true, "cipher-suite": true, "sni": true, "include": true, "header": true,
	"query-param": true, "path": true, "path-prefix": true, "path-regex": true, "host": true,
	"method": true, "-": true, "remove": true, "token": true, "listener": true, "route": true, "upstream": true, "filter": true,
}

// blockPath is joinPath for the blocks checkBlock descends into, made
// once per distinct path: the 100,000 routes of a large configuration
// share "routes.route", "routes.route.matches"… (Leaves, most of the
// nodes, get a path only when a finding needs it.)
func (a *adapter) blockPath(where, name string) string {
	key := [2]string{where, name}
	if p, ok := a.paths[key]; ok {
		return p
	}
	if a.paths == nil {
		a.paths = make(map[[2]string]string)
	}
	p := joinPath(where, name)
	a.paths[key] = p
	return p
}

func joinPath(where, name string) string {
	if where == "" {
		return name
	}
	return where + "." + name
}

func blockName(where string) string {
	if where == "" {
		return "the top level"
	}
	return where
}

// build validates the merged document and produces the Caddy config.
func (a *adapter) build(nodes []*kdl.Node) obj {
	a.schema = Schema()
	root := &kdl.Node{Children: nodes}
	a.checkBlock(root, a.schema, "")
	a.upstreams = make(map[string]*kdl.Node)
	a.filters = make(map[string]*kdl.Node)
	a.plugins = make(map[string]*kdl.Node)
	a.agents = make(map[string]*kdl.Node)
	ids := make(map[string]*kdl.Node)
	var namespaces []*kdl.Node

	for _, n := range nodes {
		switch n.Name {
		case "schema-version", "version":
			if s, ok := a.str(n); ok && s != "1.0" && s != "1" {
				a.d.errorf(n.Args[0].Pos, "schema-version %q is not supported (this version reads 1.0)", s)
			}
		case "system", "server":
			if n.Name == "server" {
				a.d.warnf(n.Pos, "server", "the `server` block is deprecated; call it `system`")
			}
			if a.system != nil {
				a.d.warnf(n.Pos, n.Name, "%s block given again; it replaces the one at line %d", n.Name, a.system.Pos.Line)
			}
			a.system = n
		case "listeners":
			a.listeners = append(a.listeners, a.collect(n, "listener", ids)...)
		case "routes":
			routes := a.collect(n, "route", ids)
			a.routes = append(a.routes, routes...)
			detachRoutes(n, routes)
		case "upstreams":
			for _, u := range a.collect(n, "upstream", ids) {
				a.upstreams[u.Args[0].Str] = u
			}
		case "filters":
			for _, f := range a.collect(n, "filter", ids) {
				a.filters[f.Args[0].Str] = f
			}
		case "limits":
			a.limits = n
		case "rate-limits":
			a.rateLimits = n
		case "observability":
			a.observability = n
		case "admin-api":
			a.adminAPI = n
		case "cache":
			a.cacheBlock = n
			a.cacheStorage() // checked even when no route uses it
		case "agents":
			for _, ag := range a.collect(n, "agent", ids) {
				a.agents[ag.Args[0].Str] = ag
			}
			if r := setting(n, "registration"); r != nil {
				a.agentReg = r
			}
		case "plugins":
			for _, p := range a.collect(n, "plugin", ids) {
				a.plugins[p.Args[0].Str] = p
			}
		case "namespace", "namespaces":
			namespaces = append(namespaces, n)
		}
	}
	a.namespaced = len(namespaces) > 0
	a.flattenNamespaces(namespaces)
	if a.system == nil {
		a.d.errorf(kdl.Position{File: a.fileOf(nodes), Line: 1, Col: 1}, "missing `system` block (required, may be empty: `system { }`)")
	}
	if len(a.listeners) == 0 {
		a.d.errorf(kdl.Position{File: a.fileOf(nodes), Line: 1, Col: 1}, "no listener: add `listeners { listener \"http\" { address \"0.0.0.0:8080\" } }`")
	}
	for _, f := range a.sortedFilters() {
		a.checkFilter(f)
	}
	cfg := a.caddyConfig()
	a.checkDeferred(nodes)
	return cfg
}

// fileOf is the file a whole-configuration error is reported in: the
// first node's, or the config file's when there is no node (an empty
// file).
func (a *adapter) fileOf(nodes []*kdl.Node) string {
	if len(nodes) > 0 {
		return nodes[0].Pos.File
	}
	return a.filename
}

// collect returns the child blocks named kind of a container block
// (`listeners`, `routes`…), checking their ids: one string argument,
// unique across the whole configuration for that kind.
func (a *adapter) collect(container *kdl.Node, kind string, ids map[string]*kdl.Node) []*kdl.Node {
	var out []*kdl.Node
	for _, c := range container.Children {
		if c.Name != kind {
			continue // reported by checkBlock
		}
		if len(c.Args) != 1 || c.Args[0].Kind != kdl.KindString || c.Args[0].Str == "" {
			a.d.errorf(c.Pos, "%s needs exactly one id: %s \"name\" { … }", kind, kind)
			continue
		}
		key := kind + "/" + c.Args[0].Str
		if prev, dup := ids[key]; dup {
			a.d.errorf(c.Pos, "duplicate %s id %q (first defined at %s)", kind, c.Args[0].Str, prev.Pos)
			continue
		}
		ids[key] = c
		out = append(out, c)
	}
	return out
}

func absPath(p string) (string, error) {
	if p == "" {
		return "", os.ErrNotExist
	}
	return filepath.Abs(p)
}
