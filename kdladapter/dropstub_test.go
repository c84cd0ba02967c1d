package kdladapter

import (
	"runtime"
	"strings"
	"testing"
	"weak"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// TestRouteStubsDropped: once its route is mapped, nothing the adaptation
// still holds (the document, the adapter, the loader) refers to a route's
// stub or its routeRefs (issue 13.8: 100,000 routes held about 40 MB of
// them through the whole mapping), and the warnings read of every route
// after the mapping (unused upstreams and filters) are still given.
func TestRouteStubsDropped(t *testing.T) {
	src := string(generatedConfig(50)) + "upstreams { upstream \"spare\" { target \"127.0.0.1:9\"; }; }\nfilters { filter \"idle\" { type \"headers\"; set { \"X-Idle\" \"1\"; }; }; }\n"
	d := &diag{}
	l := &loader{d: d, lookupEnv: noEnv, files: OSFiles{}, max: MaxConfigBytes}
	nodes := l.loadMain("gen.kdl", []byte(src))
	var stubs []weak.Pointer[kdl.Node]
	for _, n := range nodes {
		if n.Name != "routes" {
			continue
		}
		for _, r := range n.Children {
			if !r.Deferred() {
				t.Fatalf("route %s not deferred", r.Args[0].Str)
			}
			stubs = append(stubs, weak.Make(r))
		}
	}
	if len(stubs) != 50 {
		t.Fatalf("%d route stubs, want 50", len(stubs))
	}
	a := &adapter{d: d, filename: "gen.kdl", loader: l, refs: l.refs}
	a.build(nodes)
	if err := d.err(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	kept := 0
	for _, s := range stubs {
		if s.Value() != nil {
			kept++
		}
	}
	if kept > 0 || len(a.refs) > 0 || len(a.routes) > 0 {
		t.Errorf("after the mapping: %d of 50 route stubs still referenced, %d routeRefs, %d routes", kept, len(a.refs), len(a.routes))
	}
	if len(a.built) != 50 {
		t.Errorf("%d routes mapped, want 50", len(a.built))
	}
	var warns []string
	for _, w := range d.warnings() {
		warns = append(warns, w.Message)
	}
	all := strings.Join(warns, "\n")
	if !strings.Contains(all, `upstream "spare" is not used by any route`) || !strings.Contains(all, `filter "idle" is not used by any route`) ||
		strings.Contains(all, `upstream "u1" is not used`) || strings.Contains(all, `filter "tag" is not used`) {
		t.Errorf("unused warnings:\n%s", all)
	}
	runtime.KeepAlive(nodes)
	runtime.KeepAlive(a)
}

// TestUnmappedRoutesChecked: a route detached from the document
// (detachRoutes) is still checked against the schema in a configuration
// without a listener (its routes are mapped for the logging settings
// only; checkDeferred checks the detached routes nothing loaded).
func TestUnmappedRoutesChecked(t *testing.T) {
	_, _, err := Adapt("t.kdl", []byte("system { }\nroutes {\n    route \"a\" {\n        upstream \"u\"\n        no-such-setting 1\n    }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:9\"; }; }\n"), noEnv, OSFiles{})
	if err == nil || !strings.Contains(err.Error(), "no-such-setting") || !strings.Contains(err.Error(), "t.kdl:5") {
		t.Fatalf("want the unknown setting of the unmapped route reported at t.kdl:5, got %v", err)
	}
}
