package ratelimit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestAuditRejections: a rejected request is audited with its zone,
// client and status, without the bucket key (an API key here); admitted
// and log-only requests are not.
func TestAuditRejections(t *testing.T) {
	h := provision(t, &Handler{Zone: "route:api/filter:rl", MaxRPS: 1, Burst: 1, Key: "header:x-api-key"})
	au, read := audittest.Start(t)
	h.audit = au
	for range 3 {
		do(t, h, "198.51.100.4", "/x", map[string]string{"X-Api-Key": "key-s3cr3t"})
	}
	lo := provision(t, &Handler{Zone: "lo", MaxRPS: 1, Burst: 1, OnLimit: "log_only"})
	lo.audit = au
	do(t, lo, "198.51.100.5", "/y", nil)
	do(t, lo, "198.51.100.5", "/y", nil)
	time.Sleep(100 * time.Millisecond)
	ev := read(2)
	if len(ev) != 2 {
		t.Fatalf("%d events, want 2", len(ev))
	}
	for _, e := range ev {
		if e.Kind != audit.KindRateLimit || e.Action != "reject" || e.Actor != "route:api/filter:rl" || e.Client != "198.51.100.4" || e.Status != 429 || e.Path != "/x" {
			t.Fatalf("event %+v", e)
		}
	}
}

// TestAuditRejectionNamespace: a rejection carries the namespace of the
// tenant modules/tenant identified for the request (its request var).
func TestAuditRejectionNamespace(t *testing.T) {
	h := provision(t, &Handler{Zone: "team-a:api/rl", MaxRPS: 1, Burst: 1, Key: "tenant"})
	au, read := audittest.Start(t)
	h.audit = au
	for _, ns := range []string{"team-a", "team-a", "team-b", "team-b"} {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/n", nil)
		r.RemoteAddr = "198.51.100.9:1234"
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{tenant.VarNamespace: ns}))
		_ = h.ServeHTTP(httptest.NewRecorder(), r, okHandler)
	}
	ev := read(2)
	if len(ev) != 2 || ev[0].Namespace != "team-a" || ev[1].Namespace != "team-b" {
		t.Fatalf("events %+v, want one rejection of team-a then one of team-b", ev)
	}
}

// routeProbe is a handler that records, when provisioned, the route
// routeOf finds for it (in routeProbes, by its id).
type routeProbe struct {
	ID string `json:"id"`
}

var routeProbes sync.Map

func (routeProbe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.sentinel_test_route_probe", New: func() caddy.Module { return new(routeProbe) }}
}

func (p *routeProbe) Provision(ctx caddy.Context) error {
	routeProbes.Store(p.ID, routeOf(ctx))
	return nil
}

func (*routeProbe) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

func init() { caddy.RegisterModule(routeProbe{}) }

// TestRouteOfTheGuard: a handler folded into a route's sentinel_route
// guard (as the KDL adapter writes every route) knows the guard's route
// id at provisioning, which its rate_limit events carry; outside a guard
// it knows none.
func TestRouteOfTheGuard(t *testing.T) {
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: context.Background()}, registry.New()))
	defer cancel()
	guard := `{"route":"team-a:api","handle":[{"handler":"sentinel_test_route_probe","id":"in"}]}`
	if _, err := ctx.LoadModuleByID("http.handlers.sentinel_route", json.RawMessage(guard)); err != nil {
		t.Fatal(err)
	}
	if _, err := ctx.LoadModuleByID("http.handlers.sentinel_test_route_probe", json.RawMessage(`{"id":"out"}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := routeProbes.Load("in"); got != "team-a:api" {
		t.Errorf("route in the guard: %q", got)
	}
	if got, _ := routeProbes.Load("out"); got != "" {
		t.Errorf("route outside a guard: %q", got)
	}
}

// TestAuditRejectionRoute: a rejection carries the handler's route.
func TestAuditRejectionRoute(t *testing.T) {
	h := provision(t, &Handler{Zone: "route:team-a:api/limits", MaxRPS: 1, Burst: 1})
	h.route = "team-a:api"
	au, read := audittest.Start(t)
	h.audit = au
	do(t, h, "198.51.100.7", "/r", nil)
	do(t, h, "198.51.100.7", "/r", nil)
	ev := read(1)
	if len(ev) != 1 || ev[0].Route != "team-a:api" {
		t.Fatalf("events %+v, want one rejection of route team-a:api", ev)
	}
}
