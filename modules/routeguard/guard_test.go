package routeguard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

func TestGuard(t *testing.T) {
	registry.Default.Reconcile(nil, []string{"guarded"})
	g := &Guard{Route: "guarded"}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	g.Provision(caddy.Context{})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(204)
		return nil
	})
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), next); err != nil || rec.Code != 204 {
		t.Fatalf("enabled: %d %v", rec.Code, err)
	}
	registry.Default.SetRouteEnabled("guarded", false)
	defer registry.Default.SetRouteEnabled("guarded", true)
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
