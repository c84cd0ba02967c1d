package kdladapter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/modules/adaptive"
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

// TestJSONMembersSameAsObj: jsonMembers written (appendTo) is encode's
// obj of the same members, for a few and more members than its array
// holds, set out of order, one replaced; get and obj agree.
func TestJSONMembersSameAsObj(t *testing.T) {
	for _, n := range []int{0, 1, 3, 8, 9, 20} {
		var m jsonMembers
		o := obj{}
		for i := n - 1; i >= 0; i-- {
			k := fmt.Sprintf("k%02d", i)
			var v any = obj{"i": i, "s": []any{"a", json.RawMessage(`{"r":1}`)}}
			if i%3 == 0 {
				v = json.RawMessage(fmt.Sprintf(`[%d]`, i))
			}
			m.set(k, "replaced")
			m.set(k, v)
			o[k] = v
		}
		if got, want := string(m.appendTo(nil)), string(encode(nil, o)); got != want {
			t.Errorf("%d members: got %s, want %s", n, got, want)
		}
		if got, want := string(encode(nil, m.obj())), string(encode(nil, o)); got != want {
			t.Errorf("%d members: obj %s, want %s", n, got, want)
		}
		if _, ok := m.get("k00"); ok != (n > 0) || m.len() != n {
			t.Errorf("%d members: get k00 %v, len %d", n, ok, m.len())
		}
	}
}

// TestModuleMembersSameAsObj: moduleJSON.members sets the members obj
// makes, for every field of the types filled (load_balancing; the
// transport, with more members than the array on the stack holds) and
// for their zero values, with a member added after.
func TestModuleMembersSameAsObj(t *testing.T) {
	full := &reverseproxy.LoadBalancing{}
	fillValue(t, reflect.ValueOf(full).Elem(), 0)
	lbs := []*reverseproxy.LoadBalancing{{}, full, {Retries: 1, RetryMatchRaw: retryMatch(idempotent, []int64{502, 503})}}
	for i, lb := range lbs {
		var m jsonMembers
		loadBalancingJSON.members(lb, &m)
		o := loadBalancingJSON.obj(lb)
		m.set(selectionKey, obj{policyInlineKey: "random"})
		o[selectionKey] = obj{policyInlineKey: "random"}
		if got, want := string(m.appendTo(nil)), string(encode(nil, o)); got != want {
			t.Errorf("load_balancing %d:\n got %s\nwant %s", i, got, want)
		}
	}
	tr := &adaptive.Transport{}
	fillValue(t, reflect.ValueOf(tr).Elem(), 0)
	for i, v := range []*adaptive.Transport{{}, tr} {
		var m jsonMembers
		transportJSON.members(v, &m)
		if i == 1 && m.len() <= 8 {
			t.Errorf("the filled transport has only %d members", m.len())
		}
		if got, want := string(m.appendTo(nil)), string(encode(nil, transportJSON.obj(v))); got != want {
			t.Errorf("transport %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestRouteArenaKeepsEachRoutesHandlers: the small handlers written in
// the adapter's arena (reused from route to route) end up in their own
// route's handlers: each route of a generated config has its own
// request header and timeout, and its response headers, body limit and
// renaming, after many routes mapped before it.
func TestRouteArenaKeepsEachRoutesHandlers(t *testing.T) {
	src := string(generatedConfig(300))
	// A few routes with every policy, their values of their own.
	for _, i := range []int{7, 150, 299} {
		old := fmt.Sprintf("timeout-secs 30\n            request-headers { set { \"X-Route\" \"r%d\"; }; }", i)
		pol := fmt.Sprintf("timeout-secs %d\n            max-body-size %d\n            request-headers { set { \"X-Route\" \"r%d\"; }; rename { \"X-A%d\" \"X-B\"; }; }\n            response-headers { add { \"X-Resp\" \"r%d\"; }; remove \"Server\"; }", i+1, 1000+i, i, i, i)
		if !strings.Contains(src, old) {
			t.Fatalf("route r%d's policies not found", i)
		}
		src = strings.Replace(src, old, pol, 1)
	}
	out, _, err := Adapt("gen.kdl", []byte(src), noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			Routes struct {
				Routes map[string][]json.RawMessage `json:"routes"`
			} `json:"sentinel_routes"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		hs := fmt.Sprintf("%s", cfg.Apps.Routes.Routes[fmt.Sprintf("r%d", i)])
		want := []string{fmt.Sprintf(`{"handler":"headers","request":{"set":{"X-Route":["r%d"]}}}`, i), `{"handler":"sentinel_timeout","timeout":"30s"}`}
		switch i {
		case 7, 150, 299:
			want = []string{
				fmt.Sprintf(`{"handler":"request_body","max_size":%d}`, 1000+i),
				fmt.Sprintf(`{"handler":"sentinel_timeout","timeout":"%s"}`, dur(time.Duration(i+1)*time.Second)),
				fmt.Sprintf(`{"handler":"headers","request":{"set":{"X-Route":["r%d"]}}}`, i),
				fmt.Sprintf(`{"handler":"header_rename","request":{"X-A%d":"X-B"}}`, i),
				fmt.Sprintf(`{"handler":"headers","response":{"add":{"X-Resp":["r%d"]},"deferred":true,"delete":["Server"]}}`, i),
			}
		}
		for _, w := range want {
			if !strings.Contains(hs, w) {
				t.Errorf("route r%d: %s not among its handlers %s", i, w, hs)
			}
		}
	}
}
