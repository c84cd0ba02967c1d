package routeguard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestAppDropsHandlersOnStart: once started (every guard of its config
// provisioned), the app no longer holds the handlers' JSON, and says so
// to a guard provisioned after.
func TestAppDropsHandlersOnStart(t *testing.T) {
	a := &App{Routes: map[string][]json.RawMessage{"a": {json.RawMessage(`{"handler":"static_response"}`)}}}
	if hs, err := a.handlersOf("a"); err != nil || len(hs) != 1 {
		t.Fatalf("before start: %v %v", hs, err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if a.Routes != nil {
		t.Error("the handlers are still held after Start")
	}
	if _, err := a.handlersOf("a"); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Errorf("after start: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Error(err)
	}
}

// TestSharedHandlers: the guards of a config taking their handlers from
// the app share one provisioned instance of a stateless handler (headers,
// sentinel_timeout, log_append) whose JSON is the same, and each serves
// with it; other handlers, handlers with other JSON, and guards with an
// inline handle get their own.
func TestSharedHandlers(t *testing.T) {
	testReg.Reconcile(nil, []string{"shared-a", "shared-b"})
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: t.Context()}, testReg))
	defer cancel()
	hdr := json.RawMessage(`{"handler":"headers","response":{"set":{"X-Shared":["1"]}}}`)
	other := json.RawMessage(`{"handler":"headers","response":{"set":{"X-Shared":["2"]}}}`)
	static := json.RawMessage(`{"handler":"static_response","status_code":204}`)
	shared := (&App{}).sharedHandlers()
	a, err := loadHandlers(ctx, []json.RawMessage{hdr, static}, shared, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadHandlers(ctx, []json.RawMessage{hdr, other, static}, shared, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a[0] != b[0] {
		t.Error("the same headers handler was provisioned twice")
	}
	if b[1] == b[0] || a[1] == b[2] {
		t.Error("a handler with other JSON, or a static_response, was shared")
	}
	c, err := loadHandlers(ctx, []json.RawMessage{hdr}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c[0] == a[0] {
		t.Error("a guard with an inline handle shares handlers")
	}
	for name, hs := range map[string][]caddyhttp.MiddlewareHandler{"a": a, "b": {b[0], b[2]}} {
		g := &Guard{Route: "shared-" + name, handlers: hs, flag: testReg.RouteFlagOrNew("shared-" + name), writers: new(statusWriters)}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		err := g.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		if err != nil || rec.Code != 204 || rec.Header().Get("X-Shared") != "1" {
			t.Errorf("guard %s: %d %v %v", name, rec.Code, rec.Header(), err)
		}
	}
}
