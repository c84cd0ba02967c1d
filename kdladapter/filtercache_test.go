package kdladapter

import (
	"slices"
	"strings"
	"testing"
)

// TestSharedFilterMappedOnce: a filter that is the same for every route
// naming it is mapped once (filterHandlers), and each route still gets
// all of it: its handlers, and the transport timeouts it sets on the
// route's proxy; a filter whose mapping reports something is mapped (and
// reported) per route, as before.
func TestSharedFilterMappedOnce(t *testing.T) {
	src := `
system { }
listeners { listener "http" { address "127.0.0.1:18080"; }; }
filters {
    filter "tag" { type "headers"; set { "X-Tag" "1"; }; }
    filter "slow" { type "timeout"; upstream-timeout-secs 42; connect-timeout-secs 7; }
    filter "zip" { type "compress"; algorithms "gzip" "br"; }
}
routes {
    route "a" { matches { path-prefix "/a"; }; upstream "u"; filters "tag" "slow" "zip"; }
    route "b" { matches { path-prefix "/b"; }; upstream "u"; filters "slow" "tag" "zip"; }
    route "c" { matches { path-prefix "/c"; }; upstream "u"; filters "zip" "tag" "slow"; }
}
upstreams { upstream "u" { target "127.0.0.1:9"; }; }
`
	var brWarnings int
	out, warns, err := Adapt("cache.kdl", []byte(src), noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for what, want := range map[string]int{
		`"X-Tag":["1"]`:                   3,
		`"response_header_timeout":"42s"`: 3,
		`"dial_timeout":"7s"`:             3,
		`"handler":"encode"`:              3,
	} {
		if got := strings.Count(s, what); got != want {
			t.Errorf("%s: %d times, want %d", what, got, want)
		}
	}
	for _, w := range warns {
		if strings.Contains(w.Message, `"br"`) {
			brWarnings++
		}
	}
	if brWarnings != 3 {
		t.Errorf("the compress filter's warning was given %d times, want once per route (3): %v", brWarnings, warns)
	}
	// Mapped once: the headers and timeout filters; not the compress
	// one, which warns.
	d := &diag{}
	l := &loader{d: d, lookupEnv: noEnv, files: OSFiles{}, max: 1 << 30}
	a := &adapter{d: d, filename: "cache.kdl", loader: l}
	nodes := l.loadMain("cache.kdl", []byte(src))
	a.refs = l.refs
	a.build(nodes)
	var ids []string
	for f := range a.filterOut {
		ids = append(ids, f.Args[0].Str)
	}
	slices.Sort(ids)
	if strings.Join(ids, ",") != "slow,tag" {
		t.Errorf("filters mapped once: %v, want slow and tag", ids)
	}
}
