package routeguard

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	"github.com/sentinel-proxy/sentinel/registry"
)

// testReg is the tests' registry, given to the modules with
// registry.WithRegistry.
var testReg = registry.New()

func TestGuard(t *testing.T) {
	testReg.Reconcile(nil, []string{"guarded"})
	g := &Guard{Route: "guarded"}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	g.Provision(registry.WithRegistry(caddy.Context{}, testReg))
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(204)
		return nil
	})
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), next); err != nil || rec.Code != 204 {
		t.Fatalf("enabled: %d %v", rec.Code, err)
	}
	testReg.SetRouteEnabled("guarded", false)
	defer testReg.SetRouteEnabled("guarded", true)
	rec = httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), next)
	var body map[string]any
	if rec.Code != 503 || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["route"] != "guarded" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("disabled: %d %s", rec.Code, rec.Body)
	}
	if err := new(Guard).Validate(); err == nil {
		t.Error("empty route accepted")
	}
}

func TestGuardCaddyfile(t *testing.T) {
	h, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("sentinel_route api")})
	if err != nil || h.(*Guard).Route != "api" {
		t.Fatal(err)
	}
	for _, bad := range []string{"sentinel_route", "sentinel_route a b"} {
		if _, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(bad)}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestGuardMetrics: the guard counts its route's requests by status code
// (a handler error's status included, as the error routes answer it) and
// times them, on the config's metrics registry.
func TestGuardMetrics(t *testing.T) {
	testReg.Reconcile(nil, []string{"counted"})
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: t.Context()}, testReg))
	defer cancel()
	g := &Guard{Route: "counted"}
	if err := g.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	ok := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(201)
		return nil
	})
	silent := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	failing := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("upstream down"))
	})
	for _, next := range []caddyhttp.Handler{ok, ok, silent, failing} {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), next)
	}
	testReg.SetRouteEnabled("counted", false)
	defer testReg.SetRouteEnabled("counted", true)
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), ok)

	mfs, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	var observed uint64
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "sentinel_route_requests_total":
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["route"] == "counted" {
					counts[labels["code"]] = m.GetCounter().GetValue()
				}
			case "sentinel_route_request_duration_seconds":
				observed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if want := map[string]float64{"201": 2, "200": 1, "502": 1, "503": 1}; !maps.Equal(counts, want) {
		t.Errorf("requests by code: %v, want %v", counts, want)
	}
	if observed != 5 {
		t.Errorf("%d durations observed", observed)
	}
	if !names["sentinel_build_info"] {
		t.Error("sentinel_build_info not registered")
	}
}

// TestGuardFolded: the route's handlers folded into the guard run after
// it, in order, with the route's next handler last; none runs while the
// route is disabled.
func TestGuardFolded(t *testing.T) {
	testReg.Reconcile(nil, []string{"folded"})
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: context.Background()}, testReg))
	defer cancel()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(299)
		return nil
	})
	for _, tc := range []struct {
		handle string
		code   int
		header string
	}{
		{`[{"handler":"static_response","status_code":202}]`, 202, ""},
		{`[{"handler":"headers","response":{"set":{"X-A":["1"]}}},{"handler":"headers","response":{"set":{"X-B":["2"]}}}]`, 299, "1,2"},
		{`[{"handler":"headers","response":{"set":{"X-A":["1"]}}},{"handler":"static_response","status_code":201}]`, 201, "1,"},
	} {
		g := &Guard{Route: "folded"}
		if err := json.Unmarshal([]byte(`{"route":"folded","handle":`+tc.handle+`}`), g); err != nil {
			t.Fatal(err)
		}
		if err := g.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		if err := g.ServeHTTP(rec, caddyReq(), next); err != nil || rec.Code != tc.code {
			t.Fatalf("%s: %d %v", tc.handle, rec.Code, err)
		}
		if tc.header != "" {
			if got := rec.Header().Get("X-A") + "," + rec.Header().Get("X-B"); got != tc.header {
				t.Errorf("%s: headers %q, want %q", tc.handle, got, tc.header)
			}
		}
		testReg.SetRouteEnabled("folded", false)
		rec = httptest.NewRecorder()
		g.ServeHTTP(rec, caddyReq(), next)
		testReg.SetRouteEnabled("folded", true)
		if rec.Code != 503 || rec.Header().Get("X-A") != "" {
			t.Errorf("%s: disabled: %d %v", tc.handle, rec.Code, rec.Header())
		}
	}
	bad := &Guard{Route: "folded", HandleRaw: []json.RawMessage{json.RawMessage(`{"handler":"nosuch"}`)}}
	if err := bad.Provision(ctx); err == nil || !strings.Contains(err.Error(), `sentinel_route "folded"`) {
		t.Errorf("unknown folded handler: %v", err)
	}
}

// caddyReq is a request with the replacer Caddy's handlers expect.
func caddyReq() *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}
