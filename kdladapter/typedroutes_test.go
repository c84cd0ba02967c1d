package kdladapter

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	caddyencode "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/logging"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/requestbody"
	"github.com/caddyserver/caddy/v2/modules/metrics"

	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/builtin"
	"github.com/sentinel-proxy/sentinel/modules/cors"
	"github.com/sentinel-proxy/sentinel/modules/grpcweb"
	"github.com/sentinel-proxy/sentinel/modules/headerrename"
	"github.com/sentinel-proxy/sentinel/modules/ratelimit"
	"github.com/sentinel-proxy/sentinel/modules/routeguard"
	"github.com/sentinel-proxy/sentinel/modules/routematch"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
	"github.com/sentinel-proxy/sentinel/modules/timeout"
	"github.com/sentinel-proxy/sentinel/modules/wasm"
)

// typedRoutesConfig uses every block of routes, filters, agents and
// plugins that maps onto a module struct.
const typedRoutesConfig = minimal + `
observability { logging { audit-log { sinks { elasticsearch { url "http://es:9200"; when-full "fail-closed"; }; }; }; }; }
plugins { plugin "p" { path "/p.wasm"; config { k "v"; }; max-memory "1MiB"; timeout-ms 20; failure-mode "open"; abi "sentinel"; }; }
agents {
    agent "waf" { type "waf"; unix-socket "/run/waf.sock"; events "request_headers" "log"; timeout-ms 200; chunk-timeout-ms 300
        failure-mode "fail-closed"; circuit-breaker { failure-threshold 3; success-threshold 2; timeout-seconds 10; half-open-max-requests 1; }
        max-request-body-bytes "64KiB"; max-response-body-bytes 100; request-body-mode "hybrid:100"; response-body-mode "stream"
        chunk-size-bytes 4096; max-concurrent-calls 5; config { a 1; }
        pool { connections 2; connect-timeout-ms 100; reconnect-backoff-ms 10; max-reconnect-backoff-ms 20; queue-depth 3; health-check-interval-ms 50; drain-timeout-ms 60; }
    }
    agent "auth" { grpc "http://127.0.0.1:1" { tls #true; ca-cert "/ca.pem"; client-cert "/c.pem"; client-key "/k.pem"; server-name "a"; package "zentinel.agent.v2"; }; }
    registration { address "127.0.0.1:2"; tls { cert-file "/c"; key-file "/k"; client-ca "/ca"; }; token "t"; allowed-agents "x"; allow-configured-ids #true; timeout-ms 5; defaults { timeout-ms 7; }; }
}
filters {
    filter "h" { type "headers"; phase "both"; set { X-A "1"; }; add { X-B "2"; }; remove "X-C"; rename { X-D "X-E"; }; }
    filter "z" { type "compress"; algorithms "gzip,zstd"; level 5; min-size "2KiB"; content-types "text/html"; }
    filter "c" { type "cors"; allowed-origins "https://a.example"; allowed-methods "GET"; allowed-headers "X"; exposed-headers "Y"; allow-credentials #true; max-age-secs 60; }
    filter "t" { type "timeout"; request-timeout-secs 5; upstream-timeout-secs 6; connect-timeout-secs 7; }
    filter "l" { type "log"; }
    filter "g" { type "grpc-web"; }
    filter "w" { type "wasm"; plugin "p"; }
    filter "a" { type "agent"; agent "waf"; }
    filter "rw" { type "url-rewrite"; hostname "b.example"; replace-full-path "/x"; }
    filter "rd" { type "redirect"; status-code 301; scheme "https"; hostname "c.example"; port 8443; replace-prefix-match "/new"; }
}
routes {
    route "api" { matches { path "/a"; path-prefix "/api"; path-regex "^/v"; host "*.example.com"; header "X-A" "1"; header "X-B"; method "get"; query-param "q" "1"; query-param "r"; }
        when-disabled "next-route"; filters "h" "z" "c" "t" "l" "g" "w" "a" "rw"
        policies { request-headers { set { X-R "1"; }; rename { X-O "X-N"; }; }; response-headers { remove "Server"; }; timeout-secs 30; max-body-size "1MiB"; audit-critical #true; }
        builtin-handler "status"; }
    route "old" { matches { path-prefix "/old"; }; filters "rd"; }
    route "site" { matches { path-prefix "/site"; }; static-files { root "/srv"; index "i.html"; directory-listing #true; cache-control "no-cache"; spa-fallback #true; }; }
    route "m" { matches { path "/metrics"; }; builtin-handler "metrics"; }
}`

// handlerTypes are the module structs of the handlers the route mappers
// write.
var handlerTypes = map[string]func() any{
	"sentinel_route": func() any { return new(routeguard.Guard) }, "log_append": func() any { return new(logging.LogAppend) },
	"sentinel_agents": func() any { return new(agents.Handler) }, "sentinel_builtin": func() any { return new(builtin.Builtin) },
	"metrics": func() any { return new(metrics.Metrics) }, "request_body": func() any { return new(requestbody.RequestBody) },
	"sentinel_timeout": func() any { return new(timeout.Timeout) }, "headers": func() any { return new(headers.Handler) },
	"header_rename": func() any { return new(headerrename.Rename) }, "encode": func() any { return new(caddyencode.Encode) },
	"sentinel_cors": func() any { return new(cors.CORS) }, "grpc_web": func() any { return new(grpcweb.Handler) },
	"sentinel_wasm": func() any { return new(wasm.Handler) }, "file_server": func() any { return new(fileserver.FileServer) },
	"static_response": func() any { return new(caddyhttp.StaticResponse) }, "subroute": func() any { return new(caddyhttp.Subroute) },
	"sentinel_audit_gate": func() any { return new(audit.Gate) },
}

// goldenHandlerTypes are the module structs of handlers the golden
// configurations write and the synthetic one does not (namespaces).
var goldenHandlerTypes = map[string]func() any{
	"sentinel_tenant": func() any { return new(tenant.Handler) }, "sentinel_inflight": func() any { return new(tenant.InFlight) },
	"sentinel_rate_limit": func() any { return new(ratelimit.Handler) },
}

// strictDecode decodes raw into v refusing unknown fields.
func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// checkHandlers decodes every handler of routes (and of their subroutes)
// strictly into its module's struct, and the sentinel matchers into
// routematch.MatchRoute; seen counts the handlers by name.
func checkHandlers(t *testing.T, routes []json.RawMessage, seen map[string]int) {
	t.Helper()
	for _, r := range routes {
		var route struct {
			Handle []map[string]json.RawMessage `json:"handle"`
			Match  []map[string]json.RawMessage `json:"match"`
		}
		if err := json.Unmarshal(r, &route); err != nil {
			t.Fatal(err)
		}
		for _, m := range route.Match {
			if raw, ok := m["sentinel"]; ok {
				if err := strictDecode(raw, new(routematch.MatchRoute)); err != nil {
					t.Errorf("matcher %s: %v", raw, err)
				}
			}
		}
		for _, h := range unfoldRaw(route.Handle) {
			var name string
			_ = json.Unmarshal(h["handler"], &name)
			delete(h, "handler")
			raw, _ := json.Marshal(h)
			seen[name]++
			if name == "reverse_proxy" || name == "vars" || name == "rewrite" {
				continue // not mapped by the blocks under test
			}
			newT := handlerTypes[name]
			if newT == nil {
				newT = goldenHandlerTypes[name]
			}
			if newT == nil {
				t.Errorf("handler %q has no module struct in the test", name)
				continue
			}
			if err := strictDecode(raw, newT()); err != nil {
				t.Errorf("%s %s: %v", name, raw, err)
			}
			if name == "subroute" {
				var sub struct {
					Routes []json.RawMessage `json:"routes"`
				}
				_ = json.Unmarshal(raw, &sub)
				checkHandlers(t, sub.Routes, seen)
			}
		}
	}
}

// TestTypedRoutesDecodeStrictly: every handler and matcher the route,
// filter, agent and plugin blocks write decodes into its module's own
// struct with unknown fields refused (the keys are the module's), and so
// does the sentinel_agents app; the golden configurations too.
func TestTypedRoutesDecodeStrictly(t *testing.T) {
	inputs := map[string][]byte{"synthetic": []byte(typedRoutesConfig)}
	files, _ := filepath.Glob("testdata/golden/*.kdl")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = src
	}
	for name, src := range inputs {
		t.Run(filepath.Base(name), func(t *testing.T) {
			out, _, err := Adapt(filepath.Base(name), src, noEnv, OSFiles{})
			if err != nil {
				t.Fatal(err)
			}
			// The routes' handlers: the sentinel_routes app decodes
			// strictly; each handler is checked in its route's guard.
			var withApp struct {
				Apps struct {
					Routes json.RawMessage `json:"sentinel_routes"`
				} `json:"apps"`
			}
			if err := json.Unmarshal(out, &withApp); err != nil {
				t.Fatal(err)
			}
			if withApp.Apps.Routes != nil {
				if err := strictDecode(withApp.Apps.Routes, new(routeguard.App)); err != nil {
					t.Errorf("sentinel_routes app: %v", err)
				}
			}
			out = inlineFolded(t, out)
			var cfg struct {
				Apps struct {
					HTTP struct {
						Servers map[string]struct {
							Routes []json.RawMessage `json:"routes"`
						} `json:"servers"`
					} `json:"http"`
					Agents json.RawMessage `json:"sentinel_agents"`
				} `json:"apps"`
			}
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, s := range cfg.Apps.HTTP.Servers {
				checkHandlers(t, s.Routes, seen)
			}
			if cfg.Apps.Agents != nil {
				if err := strictDecode(cfg.Apps.Agents, new(agents.App)); err != nil {
					t.Errorf("sentinel_agents app: %v", err)
				}
			}
			if name != "synthetic" {
				return
			}
			for h := range handlerTypes {
				if seen[h] == 0 {
					t.Errorf("the synthetic config has no %s handler", h)
				}
			}
			var app agents.App
			_ = json.Unmarshal(cfg.Apps.Agents, &app)
			if len(app.Agents) != 2 || app.Agents[1].Pool == nil || *app.Agents[1].Pool.QueueDepth != 3 || app.Agents[1].CircuitBreaker.FailureThreshold != 3 ||
				app.Agents[0].TLS == nil || app.Agents[0].GRPC != "https://127.0.0.1:1" || app.Agents[0].GRPCPackage != "zentinel.agent.v2" ||
				app.Registration == nil || app.Registration.Defaults == nil || app.Registration.Defaults.ID != "" || len(app.Registration.TokenSHA256) != 1 {
				t.Errorf("agents app: %s", cfg.Apps.Agents)
			}
			for _, want := range []string{`"max_memory":"1048576"`, `"config":{"k":"v"}`, `"timeout":"20ms"`, `"skip_when_disabled":"api"`,
				`"Location":["https://c.example:8443{http.request.uri}"]`, `"status_code":301`, `"try_files":["{http.request.uri.path}","{http.request.uri.path}/","/i.html"]`,
				`"encodings":{"gzip":{"level":5},"zstd":{}}`, `"minimum_length":2048`, `"max_age":"1m0s"`} {
				if !strings.Contains(string(out), want) {
					t.Errorf("missing %s", want)
				}
			}
		})
	}
}

// TestTypedRouteKeysDeclaredOnce: the schema's entries of the converted
// blocks are the typed declarations themselves (one declaration, read
// by the walker, the mapper and docs/compatibility.md), and every
// honoured setting of them has a JSON key or a note.
func TestTypedRouteKeysDeclaredOnce(t *testing.T) {
	s := Schema()
	route := s.child("routes").child("route")
	for name, k := range map[string]*Key{"matches": matchKey, "static-files": staticFilesKey, "policies": policiesKey} {
		if route.child(name) != k {
			t.Errorf("routes.route.%s is not the typed declaration", name)
		}
	}
	if s.child("agents").child("agent") != agentKey || s.child("agents").child("registration") != registrationKey {
		t.Error("agents.agent / agents.registration are not the typed declarations")
	}
	if s.child("plugins").child("plugin") != pluginKey {
		t.Error("plugins.plugin is not the typed declaration")
	}
	for typ, k := range filterTypes() {
		if k.Status == Honoured && k.Map == nil {
			t.Errorf("filter type %q has no mapper", typ)
		}
	}
	for _, k := range []*Key{matchKey, staticFilesKey, policiesKey, agentKey, registrationKey, pluginKey} {
		if k.Map == nil {
			t.Errorf("%s has no mapper", k.Name)
		}
		for _, c := range k.Children {
			if c.Note == "" {
				t.Errorf("%s.%s has no note", k.Name, c.Name)
			}
		}
	}
}

// TestAgentGRPCTLSOnly: `tls #true` alone turns TLS on for a gRPC agent
// (https:// address and a tls object, verifying the agent's certificate).
func TestAgentGRPCTLSOnly(t *testing.T) {
	out, _ := mustAdapt(t, minimal+`agents { agent "a" { grpc "http://127.0.0.1:1" { tls #true; }; }; }
filters { filter "f" { type "agent"; agent "a"; }; }
routes { route "r" { builtin-handler "health"; filters "f"; }; }`)
	if !strings.Contains(string(out), `"grpc":"https://127.0.0.1:1","id":"a","tls":{}`) {
		t.Errorf("out %s", out)
	}
}

// TestAgentAndPluginRepeatedSettingFirstWins: a repeated setting of an
// agent or plugin block is read once, the first time, as the walker's
// warning says (the untyped mappers used the last one).
func TestAgentAndPluginRepeatedSettingFirstWins(t *testing.T) {
	out, warns := mustAdapt(t, minimal+`agents { agent "a" { unix-socket "/a.sock"; timeout-ms 100; timeout-ms 900; }; }
plugins { plugin "p" { path "/p.wasm"; timeout-ms 10; timeout-ms 90; }; }
filters { filter "f" { type "agent"; agent "a"; }; filter "w" { type "wasm"; plugin "p"; }; }
routes { route "r" { builtin-handler "health"; filters "f" "w"; }; }`)
	s := string(out)
	if !strings.Contains(s, `"timeout":"100ms"`) || strings.Contains(s, `"timeout":"900ms"`) ||
		!strings.Contains(s, `"timeout":"10ms"`) || strings.Contains(s, `"timeout":"90ms"`) {
		t.Errorf("not the first value: %s", s)
	}
	if strings.Count(warningsText(warns), "repeated; the first one") != 2 {
		t.Errorf("warnings: %s", warningsText(warns))
	}
}
