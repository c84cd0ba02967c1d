package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
)

// unfoldRaw returns a route's handlers with those folded into its
// sentinel_route guard (the guard's handle) spliced in after the guard,
// as the route's handlers were listed before the folding.
func unfoldRaw(hs []map[string]json.RawMessage) []map[string]json.RawMessage {
	var out []map[string]json.RawMessage
	for _, h := range hs {
		inner, ok := h[guardHandleKey]
		if !ok || string(h["handler"]) != `"sentinel_route"` {
			out = append(out, h)
			continue
		}
		g := make(map[string]json.RawMessage, len(h))
		for k, v := range h {
			if k != guardHandleKey {
				g[k] = v
			}
		}
		var folded []map[string]json.RawMessage
		if err := json.Unmarshal(inner, &folded); err != nil {
			panic(err)
		}
		out = append(append(out, g), folded...)
	}
	return out
}

// unfoldAny is unfoldRaw for handlers decoded into maps.
func unfoldAny(hs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, h := range hs {
		inner, ok := h[guardHandleKey].([]any)
		if !ok || h["handler"] != "sentinel_route" {
			out = append(out, h)
			continue
		}
		g := make(map[string]any, len(h))
		for k, v := range h {
			if k != guardHandleKey {
				g[k] = v
			}
		}
		out = append(out, g)
		for _, f := range inner {
			out = append(out, f.(map[string]any))
		}
	}
	return out
}

// TestRouteHandlersFoldedIntoGuard: a route's handlers after its
// sentinel_route guard are in the guard's handle, in order (Caddy then
// compiles one handler per request for them instead of one each); the
// access log's log_append handlers of the trace and route ids stay in
// front of the guard (a disabled route's 503 carries them), those of the
// upstream are folded.
func TestRouteHandlersFoldedIntoGuard(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`
observability { logging { access-log { enabled #true; }; }; }
routes {
  route "p" { matches { path-prefix "/p"; }; upstream "u"; filters "h"; }
  route "b" { builtin-handler "health"; }
}
filters { filter "h" { type "headers"; set { X-A "1"; }; }; }
upstreams { upstream "u" { target "127.0.0.1:9000"; }; }`)
	names := func(hs []any) string {
		var s []string
		for _, h := range hs {
			m := h.(map[string]any)
			name := m["handler"].(string)
			if name == "log_append" {
				name += ":" + m["key"].(string)
			}
			s = append(s, name)
		}
		return strings.Join(s, ",")
	}
	got := map[string]string{}
	for _, r := range routesOf(t, out, "http") {
		hs := r.(map[string]any)["handle"].([]any)
		guard := hs[len(hs)-1].(map[string]any)
		if guard["handler"] != "sentinel_route" {
			continue
		}
		inner, _ := guard[guardHandleKey].([]any)
		got[guard["route"].(string)] = names(hs) + " | " + names(inner)
	}
	want := map[string]string{
		"p": "log_append:trace_id,log_append:route_id,sentinel_route | log_append:upstream,log_append:upstream_addr,headers,reverse_proxy",
		"b": "log_append:trace_id,log_append:route_id,sentinel_route | sentinel_builtin",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("route %s: handlers %q, want %q", id, got[id], w)
		}
	}
}

// TestFoldedHandlersInApp: as the adapter writes it, a route's guard
// names its route only (handle_in_app), its handlers are in the
// sentinel_routes app under the route id, once for a route on two
// listeners (Caddy's map round trip to read a handler's name is then
// cheap for the route's handler, issue 13.8).
func TestFoldedHandlersInApp(t *testing.T) {
	out, _ := mustAdaptAsIs(t, `system { }
listeners {
  listener "a" { address "127.0.0.1:18080"; }
  listener "b" { address "127.0.0.1:18443"; protocol "https"; tls { cert-file "/x.crt"; key-file "/x.key"; }; }
}
routes {
  route "p" { matches { path-prefix "/p"; }; upstream "u"; filters "h"; }
}
filters {
  filter "h" { type "headers"; set { X-A "1"; }; }
}
upstreams { upstream "u" { target "127.0.0.1:9000"; }; }`)
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []map[string]any `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
			Routes *struct {
				Routes map[string][]map[string]any `json:"routes"`
			} `json:"sentinel_routes"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps.HTTP.Servers) != 2 {
		t.Fatalf("want two servers: %s", out)
	}
	for name, s := range cfg.Apps.HTTP.Servers {
		g := s.Routes[0].Handle[0]
		if len(s.Routes[0].Handle) != 1 || g["handler"] != "sentinel_route" || g["route"] != "p" || g[guardInAppKey] != true || g[guardHandleKey] != nil {
			t.Errorf("server %s: route p's handlers %v, want its guard alone, with handle_in_app", name, s.Routes[0].Handle)
		}
	}
	if cfg.Apps.Routes == nil {
		t.Fatalf("no sentinel_routes app: %s", out)
	}
	var names []string
	for _, h := range cfg.Apps.Routes.Routes["p"] {
		names = append(names, h["handler"].(string))
	}
	if strings.Join(names, ",") != "headers,reverse_proxy" || strings.Count(string(out), `"handler":"reverse_proxy"`) != 1 {
		t.Errorf("route p's handlers in the app: %v, want headers,reverse_proxy once: %s", names, out)
	}
}

// handlerMap is a handler of the adapted output, decoded.
type handlerMap interface {
	map[string]any | map[string]json.RawMessage
}

// serverRoutes decodes the adapted config's HTTP servers: for each
// server, each route's handlers, unfolded out of the route guard.
func serverRoutes[H handlerMap](t *testing.T, out []byte) map[string][][]H {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []H `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	m := make(map[string][][]H, len(cfg.Apps.HTTP.Servers))
	for name, s := range cfg.Apps.HTTP.Servers {
		for _, r := range s.Routes {
			var hs []H
			switch v := any(r.Handle).(type) {
			case []map[string]any:
				hs = any(unfoldAny(v)).([]H)
			case []map[string]json.RawMessage:
				hs = any(unfoldRaw(v)).([]H)
			}
			m[name] = append(m[name], hs)
		}
	}
	return m
}
