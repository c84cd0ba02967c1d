package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/tenant"
)

// TestTenantKeys checks that key "tenant" gives each identified
// namespace its own bucket, and "tenant-and-client-ip" each client of
// each namespace.
func TestTenantKeys(t *testing.T) {
	send := func(h *Handler, ns, ip string) int {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.RemoteAddr = ip + ":1234"
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{tenant.VarNamespace: ns}))
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, okHandler); err != nil {
			if he, ok := err.(caddyhttp.HandlerError); ok {
				return he.StatusCode
			}
			t.Fatal(err)
		}
		return w.Code
	}
	h := provision(t, &Handler{MaxRPS: 0.001, Burst: 1, Key: "tenant"})
	if send(h, "team-a", "192.0.2.1") != 200 || send(h, "team-a", "192.0.2.2") != 429 {
		t.Fatal("team-a's clients do not share team-a's bucket")
	}
	if c := send(h, "team-b", "192.0.2.1"); c != 200 {
		t.Fatalf("team-b limited by team-a's bucket: %d", c)
	}
	h = provision(t, &Handler{MaxRPS: 0.001, Burst: 1, Key: "tenant-and-client-ip"})
	if send(h, "team-a", "192.0.2.1") != 200 || send(h, "team-a", "192.0.2.1") != 429 {
		t.Fatal("one client of team-a not limited")
	}
	if send(h, "team-b", "192.0.2.1") != 200 || send(h, "team-a", "192.0.2.2") != 200 {
		t.Fatal("buckets shared across tenants or clients")
	}
}
