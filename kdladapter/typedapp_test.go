package kdladapter

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/modules/etcdstore"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
	"github.com/sentinel-proxy/sentinel/registry"
)

// sentinelAppOf adapts src and decodes its sentinel app strictly into the
// app's own type: a key the app does not declare fails.
func sentinelAppOf(t *testing.T, src string) sentinelapp.App {
	t.Helper()
	out, _ := mustAdapt(t, src)
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var app sentinelapp.App
	if err := strictDecode(cfg.Apps["sentinel"], &app); err != nil {
		t.Fatalf("the sentinel app does not decode into sentinelapp.App: %v\n%s", err, cfg.Apps["sentinel"])
	}
	return app
}

// TestSentinelAppTyped: the sentinel app's upstreams (targets, every
// health-check setting of each type, the TLS an upstream's tls block
// gives its checks), routes and API are the app's own types.
func TestSentinelAppTyped(t *testing.T) {
	app := sentinelAppOf(t, minimal+`
routes { route "b" { upstream "web"; }; route "a" { upstream "rpc"; }; route "c" { upstream "raw"; }; }
upstreams {
    upstream "web" {
        target "127.0.0.1:1" weight=3
        target "127.0.0.1:2"
        tls { sni "web.internal"; insecure-skip-verify #true; ca-cert "/etc/ca.pem"; }
        health-check {
            type "http" { path "/ready"; expected-status 204; host "h.example"; }
            interval-secs 7; timeout-secs 2; healthy-threshold 4; unhealthy-threshold 5
        }
    }
    upstream "rpc" { target "127.0.0.1:3"; health-check { type "grpc" { service "svc"; }; }; }
    upstream "raw" { target "127.0.0.1:4"; health-check { }; }
}
admin-api { auth { token "t0ken"; }; state-file "/var/lib/sentinel/state.json"; }
`)
	want := []sentinelapp.UpstreamConfig{
		{ID: "raw", Targets: []registry.TargetSpec{{Address: "127.0.0.1:4"}}, HealthCheck: &sentinelapp.HealthCheck{Type: "tcp"}},
		{ID: "rpc", Targets: []registry.TargetSpec{{Address: "127.0.0.1:3"}}, HealthCheck: &sentinelapp.HealthCheck{Type: "grpc", Service: "svc"}},
		{ID: "web", Targets: []registry.TargetSpec{{Address: "127.0.0.1:1", Weight: 3}, {Address: "127.0.0.1:2"}},
			HealthCheck: &sentinelapp.HealthCheck{Type: "http", Path: "/ready", ExpectStatus: 204, Host: "h.example",
				Interval: caddy.Duration(7 * time.Second), Timeout: caddy.Duration(2 * time.Second), Healthy: 4, Unhealthy: 5,
				TLS: &sentinelapp.HealthTLS{ServerName: "web.internal", InsecureSkipVerify: true, CAFile: "/etc/ca.pem"}}},
	}
	if !reflect.DeepEqual(app.Upstreams, want) {
		got, _ := json.Marshal(app.Upstreams)
		t.Errorf("upstreams:\n%s", got)
	}
	if !reflect.DeepEqual(app.Routes, []string{"a", "b", "c"}) || app.ConfigFile != "test.kdl" ||
		app.StateFile != "/var/lib/sentinel/state.json" || app.API == nil || len(app.API.Tokens) != 1 {
		t.Errorf("app: %+v", app)
	}
}

// TestSentinelAppFleetStore: admin-api.fleet is the app's store module,
// an etcdstore.Etcd named by its inline key.
func TestSentinelAppFleetStore(t *testing.T) {
	app := sentinelAppOf(t, minimal+`
admin-api { auth { token "t0ken"; }; fleet { etcd { endpoints "http://127.0.0.1:2379"; prefix "/f/"; dial-timeout "3s"; }; }; }
`)
	var store struct {
		Store string `json:"store"`
		etcdstore.Etcd
	}
	if err := strictDecode(app.Store, &store); err != nil || store.Store != "etcd" || store.Prefix != "/f/" ||
		time.Duration(store.DialTimeout) != 3*time.Second || len(store.Endpoints) != 1 {
		t.Errorf("store %s: %v", app.Store, err)
	}
}

// TestHealthCheckErrors: the settings of one type are refused in another,
// a type that is not one of the four is refused, inference is not yet.
func TestHealthCheckErrors(t *testing.T) {
	for _, c := range []struct{ hc, want string }{
		{`type "grpc" { path "/x"; }`, `unknown setting "path" in health-check type "grpc"`},
		{`type "tcp" { port 1; }`, `unknown setting "port" in health-check type "tcp"`},
		{`type "htp"`, `type "htp" is not one of tcp, http, grpc, inference (did you mean "http"?)`},
		{`type "inference"`, `not supported yet: inference health checks`},
		{`interval-secs "x"`, `interval-secs`},
	} {
		src := minimal + `routes { route "a" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; health-check { ` + c.hc + `; }; }; }`
		_, _, err := adaptString(t, src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.hc, err, c.want)
		}
	}
}

// TestSentinelAppOwnAddresses: with the API on, Caddy's admin endpoint
// moved by caddy-admin is one of the app's own addresses (targets added
// through the API may not point at it); Caddy's default one, a unix
// socket or no API add nothing.
func TestSentinelAppOwnAddresses(t *testing.T) {
	const api = `admin-api { auth { token "t0ken"; }; }`
	for _, c := range []struct {
		system, rest string
		want         []string
	}{
		{`caddy-admin "127.0.0.1:2999"`, api, []string{"127.0.0.1:2999"}},
		{`caddy-admin "localhost:2019"`, api, nil},
		{`caddy-admin "unix//run/caddy.sock"`, api, nil},
		{`caddy-admin "off"`, api, nil},
		{``, api, nil},
		{`caddy-admin "127.0.0.1:2999"`, `routes { route "a" { builtin-handler "status"; }; }`, nil},
	} {
		src := strings.Replace(minimal, "system { }", "system { "+c.system+" }", 1) + c.rest
		if app := sentinelAppOf(t, src); !reflect.DeepEqual(app.OwnAddresses, c.want) {
			t.Errorf("%s %s: own addresses %v, want %v", c.system, c.rest, app.OwnAddresses, c.want)
		}
	}
}

// TestRouteBlockTyped: the route block is declared once (its schema Key
// is the typed block mapRoute reads with), the order of its settings does
// not change the output, and a repeated upstream is the first one.
func TestRouteBlockTyped(t *testing.T) {
	if k := Schema().child("routes").child("route"); k != routeKey || k.Map == nil {
		t.Fatal("routes.route is not the typed routeKey")
	}
	const upstreams = `upstreams { upstream "u" { target "127.0.0.1:1"; }; upstream "v" { target "127.0.0.1:2"; }; }`
	forward := minimal + upstreams + `
routes { route "r" { priority "high"; matches { path-prefix "/a"; }; when-disabled "next-route"; upstream "u"
    policies { timeout-secs 5; }; service-type "api"; waf-enabled #false; websocket #true; retry-policy { max-attempts 2; }; }; }`
	backward := minimal + upstreams + `
routes { route "r" { retry-policy { max-attempts 2; }; websocket #true; waf-enabled #false; service-type "api"
    policies { timeout-secs 5; }; upstream "u"; when-disabled "next-route"; matches { path-prefix "/a"; }; priority "high"; }; }`
	a, _ := mustAdapt(t, forward)
	b, _ := mustAdapt(t, backward)
	if string(a) != string(b) {
		t.Errorf("the order of a route's settings changes the output:\n%s\n%s", a, b)
	}
	for _, want := range []string{`"skip_when_disabled":"r"`, `"path_prefix":["/a"]`, `"timeout":"5s"`, `"upstream":"u"`} {
		if !strings.Contains(string(a), want) {
			t.Errorf("output lacks %s", want)
		}
	}
	twice, _ := mustAdapt(t, minimal+upstreams+`
routes { route "r" { upstream "u"; upstream "v"; }; route "s" { upstream "v"; }; }`)
	if !strings.Contains(string(twice), `"upstream":"u"`) {
		t.Errorf("a repeated upstream is not the first one: %s", twice)
	}
}

// TestServiceTypeChecks: service-type is checked against the route's
// content.
func TestServiceTypeChecks(t *testing.T) {
	for _, c := range []struct{ route, want string }{
		{`service-type "static"; builtin-handler "status"`, `route "r": service-type "static" needs a static-files block`},
		{`service-type "builtin"; static-files { root "/srv"; }`, `route "r": service-type "builtin" needs builtin-handler`},
		{`service-type "inference"; builtin-handler "status"`, `not supported yet: inference routing`},
		{`service-type "grpc"; builtin-handler "status"`, `service-type "grpc" is not one of web, api, static, builtin, inference`},
	} {
		_, _, err := adaptString(t, minimal+`routes { route "r" { `+c.route+`; }; }`)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.route, err, c.want)
		}
	}
	// With the inference block, the block is reported, once.
	_, _, err := adaptString(t, minimal+`routes { route "r" { service-type "inference"; inference { }; builtin-handler "status"; }; }`)
	if err == nil || strings.Count(err.Error(), "inference routing") != 1 {
		t.Errorf("inference block: %v", err)
	}
}
