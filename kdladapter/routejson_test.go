package kdladapter

import (
	"fmt"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/sentinel-proxy/sentinel/modules/routeguard"
)

// TestHeaderOpsJSONSameAsHandler: the headers handler written from the
// lists of pairs (appendHandler) is what headersHandler writes for the
// headers.Handler of the same operations as http.Header maps: each
// operation alone and together, both phases, repeated names (values in
// order), names out of order and needing escapes.
func TestHeaderOpsJSONSameAsHandler(t *testing.T) {
	set := headerPairs{{"X-B", "2"}, {"X-A", "1"}, {"X-B", "3"}, {"x-a", `q"<>&`}, {"X-A", "4"}}
	add := headerPairs{{"Via", "sentinel"}, {"Accept", "a"}, {"Via", "b"}}
	del := []string{"Server", "X-Powered-By"}
	cases := []headerOps{
		{set: headerPairs{{"X-Route", "r1"}}},
		{set: set},
		{add: add},
		{HeaderOps: headers.HeaderOps{Delete: del}},
		{set: set, add: add},
		{set: set, HeaderOps: headers.HeaderOps{Delete: del}},
		{add: add, HeaderOps: headers.HeaderOps{Delete: del[:1]}},
		{set: set, add: add, HeaderOps: headers.HeaderOps{Delete: del}},
	}
	for i, o := range cases {
		for _, phase := range []string{"request", "response"} {
			t.Run(fmt.Sprintf("%d/%s", i, phase), func(t *testing.T) {
				c := headerOps{set: append(headerPairs(nil), o.set...), add: append(headerPairs(nil), o.add...), HeaderOps: o.HeaderOps}
				ops := &headers.HeaderOps{Set: o.set.header(), Add: o.add.header(), Delete: o.Delete}
				var h headers.Handler
				if phase == "response" {
					h.Response = &headers.RespHeaderOps{HeaderOps: ops, Deferred: true}
				} else {
					h.Request = ops
				}
				want := string(headersHandler.raw(&h))
				if got := string(c.appendHandler(nil, phase)); got != want {
					t.Errorf("got  %s\nwant %s", got, want)
				}
				hs := c.handlers(phase)
				if len(hs) != 1 || string(encode(nil, hs[0])) != want {
					t.Errorf("handlers: %s, want [%s]", encode(nil, hs), want)
				}
			})
		}
	}
	if hs := (&headerOps{}).handlers("request"); len(hs) != 0 {
		t.Errorf("no operations: %s, want no handler", encode(nil, hs))
	}
	if (headerPairs{}).header() != nil {
		t.Error("empty pairs: want a nil header")
	}
}

// TestGuardJSONSameAsObj: the guard written by appendGuard is the obj the
// adapter encoded before (the module's own keys, sorted), with and
// without handle_in_app, and with a route id needing escapes.
func TestGuardJSONSameAsObj(t *testing.T) {
	for _, route := range []string{"r1", `ns/"q"<&>` + "\u2028"} {
		for _, folded := range []bool{false, true} {
			g := obj{"handler": routeguard.Guard{}.CaddyModule().ID.Name(), guardRouteKey: route}
			if folded {
				g[guardInAppKey] = true
			}
			want := string(encode(nil, g))
			if got := string(appendGuard(nil, route, folded)); got != want {
				t.Errorf("route %q, folded %v: got %s, want %s", route, folded, got, want)
			}
			// The module's own JSON of the same guard.
			if got := string(newModuleJSON[routeguard.Guard]("handler", "sentinel_route").raw(&routeguard.Guard{Route: route, HandleInApp: folded})); got != want {
				t.Errorf("route %q, folded %v: the module's JSON %s, want %s", route, folded, got, want)
			}
		}
	}
}
