package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"
)

// tracingApp returns the sentinel_tracing app of an adapted config (nil
// when absent).
func tracingApp(t *testing.T, out []byte) map[string]any {
	t.Helper()
	var cfg struct {
		Apps map[string]map[string]any `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Apps["sentinel_tracing"]
}

// proxyLB returns the load_balancing of the reverse_proxy handler of
// route r in server s.
func proxyLB(t *testing.T, out []byte, server string, route int) any {
	t.Helper()
	for _, h := range serverRoutes[map[string]any](t, out)[server][route] {
		if h["handler"] == "reverse_proxy" {
			return h["load_balancing"]
		}
	}
	t.Fatalf("no reverse_proxy in route %d of %s", route, server)
	return nil
}

const tracingRoutes = `
upstreams { upstream "u" { target "127.0.0.1:9000"; target "127.0.0.1:9001"; load-balancing "round_robin"; } }
routes {
    route "api" { matches { path-prefix "/api"; }; upstream "u"; retry-policy { max-attempts 2; } }
}
`

func TestTracingMapping(t *testing.T) {
	out, ws := mustAdapt(t, `system { }
listeners { listener "a" { address "127.0.0.1:8080"; } }
observability {
    tracing {
        enabled #true
        backend "otlp" {
            endpoint "https://collector.example:4318/v1/traces"
            protocol "http"
        }
        sampling-rate 0.25
        service-name "edge"
    }
}
`+tracingRoutes)
	if len(ws) != 0 {
		t.Errorf("warnings: %s", warningsText(ws))
	}
	if got, want := jsonOf(tracingApp(t, out)), `{"endpoint":"https://collector.example:4318/v1/traces","protocol":"http","sampling_ratio":0.25,"service_name":"edge"}`; got != want {
		t.Errorf("app:\n got  %s\n want %s", got, want)
	}
	routes := serverRoutes[map[string]any](t, out)["a"]
	if got := jsonOf(routes[0]); got != `[{"handler":"sentinel_tracing"}]` {
		t.Errorf("first route of the server: %s", got)
	}
	var named bool
	for _, h := range routes[1] {
		if h["handler"] == "sentinel_tracing" && h["route"] == "api" {
			named = true
		}
	}
	if !named {
		t.Errorf("route api has no sentinel_tracing handler naming it: %s", jsonOf(routes[1]))
	}
	lb := jsonOf(proxyLB(t, out, "a", 1))
	if !strings.Contains(lb, `"selection_policy":{"inner":{"inner":{"policy":"round_robin"},"policy":"sentinel_untried"},"policy":"sentinel_traced"}`) {
		t.Errorf("load_balancing: %s", lb)
	}
}

func TestTracingDefaultsAndOff(t *testing.T) {
	out, _ := mustAdapt(t, rlHead+`observability { tracing { } }
routes { route "r" { upstream "u"; } }
`)
	if got := jsonOf(tracingApp(t, out)); got != `{}` {
		t.Errorf("defaults: %s", got)
	}
	if got := jsonOf(proxyLB(t, out, "a", 1)); got != `{"selection_policy":{"inner":{"policy":"round_robin"},"policy":"sentinel_traced"}}` {
		t.Errorf("load_balancing without a policy: %s", got)
	}
	for _, off := range []string{``, `observability { tracing { enabled #false; sampling-rate 0.5; } }`} {
		out, _ := mustAdapt(t, rlHead+off+`
routes { route "r" { upstream "u"; } }
`)
		if app := tracingApp(t, out); app != nil {
			t.Errorf("%q: tracing app %v", off, app)
		}
		if s := string(out); strings.Contains(s, "sentinel_tracing") || strings.Contains(s, "sentinel_traced") {
			t.Errorf("%q: tracing modules in the output: %s", off, s)
		}
	}
}

func TestTracingJaegerWarns(t *testing.T) {
	out, ws := mustAdapt(t, rlHead+`observability { tracing { backend "jaeger" { endpoint "http://jaeger:4317"; }; } }
`)
	if got := warningsText(ws); !strings.Contains(got, `backend "jaeger" is exported as OTLP`) {
		t.Errorf("warnings: %s", got)
	}
	if got := jsonOf(tracingApp(t, out)); got != `{"endpoint":"http://jaeger:4317"}` {
		t.Errorf("app: %s", got)
	}
}

func TestTracingErrors(t *testing.T) {
	for _, c := range []struct{ block, want string }{
		{`backend "zipkin"`, `test.kdl:3:35: tracing backend "zipkin" is not supported`},
		{`backend "datadog"`, `test.kdl:3:35`},
		{`sampling-rate 1.5`, `test.kdl:3:41: sampling-rate must be between 0 and 1`},
		{`sampling-rate "all"`, `test.kdl:3:41: sampling-rate takes a number`},
		{`backend "otlp" { endpoint "ftp://x:1"; }`, `test.kdl:3:53: tracing endpoint: scheme "ftp"`},
		{`backend "otlp" { endpoint "collector:4317"; }`, `test.kdl:3:53: tracing endpoint`},
		{`backend "otlp" { endpoint "http://user:secret@c:4317"; }`, `credentials in the URL are not supported`},
		{`backend "otlp" { endpoint "http://c:4318/v1/traces"; }`, `a gRPC endpoint has no path`},
		{`backend "otlp" { protocol "thrift"; }`, `test.kdl:3:53`},
		{`enabled "yes"`, `test.kdl:3:35: enabled takes #true or #false`},
		{`exporter "x"`, `test.kdl:3:27: unknown setting "exporter"`},
	} {
		src := "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:8080\"; } }\nobservability { tracing { " + c.block + " } }\n"
		_, _, err := adaptString(t, src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.block, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the credentials: %v", c.block, err)
		}
	}
}
