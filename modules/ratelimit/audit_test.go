package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
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
