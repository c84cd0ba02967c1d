package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/internal/httperr"
	"github.com/sentinel-proxy/sentinel/registry"
)

func provisioned(t *testing.T, b *Builtin) *Builtin {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := b.Provision(ctx); err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	if err := b.Validate(); err != nil {
		t.Fatalf("validating: %v", err)
	}
	return b
}

// failNext is a next handler that must never be reached.
func failNext(t *testing.T) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("the built-in handler called the next handler")
		return nil
	})
}

func TestServeHTTP(t *testing.T) {
	for _, tc := range []struct {
		kind       string
		method     string
		wantStatus int
		wantBody   *regexp.Regexp
	}{
		{KindHealth, http.MethodGet, http.StatusOK, regexp.MustCompile(`^\{"status":"healthy"\}$`)},
		{KindHealth, http.MethodHead, http.StatusOK, regexp.MustCompile(`^$`)},
		{KindHealth, http.MethodPost, http.StatusOK, regexp.MustCompile(`^\{"status":"healthy"\}$`)},
		{KindNotFound, http.MethodGet, http.StatusNotFound, regexp.MustCompile(`^\{"error":"not found","status":404\}$`)},
		{KindNotFound, http.MethodHead, http.StatusNotFound, regexp.MustCompile(`^$`)},
		{KindStatus, http.MethodGet, http.StatusOK, regexp.MustCompile(
			`^\{"status":"ok","service":"sentinel","version":"` + regexp.QuoteMeta(version()) + `","caddy_version":"[^"]+","uptime_seconds":[0-9]+\}$`)},
		{KindStatus, http.MethodHead, http.StatusOK, regexp.MustCompile(`^$`)},
	} {
		t.Run(tc.kind+" "+tc.method, func(t *testing.T) {
			b := provisioned(t, &Builtin{Kind: tc.kind, Route: "r1"})
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, "/anything", nil)
			if err := b.ServeHTTP(rec, req, failNext(t)); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if rec.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if body := rec.Body.String(); !tc.wantBody.MatchString(body) {
				t.Errorf("body = %q, want match for %s", body, tc.wantBody)
			}
			for field, want := range map[string]string{
				"Content-Type":           "application/json",
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
			} {
				if got := rec.Header().Get(field); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			if cl := rec.Header().Get("Content-Length"); cl == "" || cl == "0" {
				t.Errorf("Content-Length = %q, want the JSON length (also for HEAD)", cl)
			}
		})
	}
}

func TestStatusBody(t *testing.T) {
	b := provisioned(t, &Builtin{Kind: KindStatus})
	rec := httptest.NewRecorder()
	if err := b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil), failNext(t)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	if got["status"] != "ok" || got["service"] != "sentinel" {
		t.Errorf("unexpected status body %v", got)
	}
	if v, _ := got["version"].(string); v == "" {
		t.Errorf("empty version in %v", got)
	}
	if up, ok := got["uptime_seconds"].(float64); !ok || up < 0 || up != float64(int64(up)) {
		t.Errorf("uptime_seconds = %v, want a non-negative integer", got["uptime_seconds"])
	}
}

func TestValidate(t *testing.T) {
	for kind, wantErr := range map[string]string{
		"":            "kind is required (valid kinds: config, error, health, not_found, ready, status, upstreams)",
		"cache-stats": `unknown kind "cache-stats" (valid kinds: config, error, health, not_found, ready, status, upstreams)`,
		"STATUS":      `unknown kind "STATUS"`,
		"status":      "",
		"health":      "",
		"not_found":   "",
	} {
		b := &Builtin{Kind: kind}
		err := b.Validate()
		if wantErr == "" {
			if err != nil {
				t.Errorf("kind %q: unexpected error %v", kind, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("kind %q: got error %v, want %q", kind, err, wantErr)
		}
	}
}

func TestServeHTTPUnprovisionedKind(t *testing.T) {
	b := &Builtin{Kind: "bogus"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := b.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	err := b.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), failNext(t))
	var herr caddyhttp.HandlerError
	if !asHandlerError(err, &herr) || herr.StatusCode != http.StatusInternalServerError {
		t.Fatalf("got %v, want a 500 handler error", err)
	}
}

// asHandlerError is errors.As for caddyhttp.HandlerError.
func asHandlerError(err error, target *caddyhttp.HandlerError) bool {
	herr, ok := err.(caddyhttp.HandlerError)
	if ok {
		*target = herr
	}
	return ok
}

// TestRegistryKinds covers the kinds that read the registry and the
// error kind.
func TestRegistryKinds(t *testing.T) {
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "kinds-up", Targets: []registry.TargetSpec{{Address: "127.0.0.1:1", Weight: 2}}}}, []string{"kinds-route"})
	b := &Builtin{Kind: KindUpstreams}
	if err := b.Provision(registry.WithRegistry(caddy.Context{Context: context.Background()}, reg)); err != nil {
		t.Fatal(err)
	}
	status, body := b.upstreams(httptest.NewRequest("GET", "/", nil))
	js, _ := json.Marshal(body)
	if status != 200 || !strings.Contains(string(js), `"id":"kinds-up"`) || !strings.Contains(string(js), `"weight":2`) || !strings.Contains(string(js), `"healthy_targets":1`) {
		t.Errorf("upstreams: %d %s", status, js)
	}
	status, body = b.config(httptest.NewRequest("GET", "/", nil))
	js, _ = json.Marshal(body)
	if status != 200 || !strings.Contains(string(js), `{"id":"kinds-route","enabled":true}`) {
		t.Errorf("config: %d %s", status, js)
	}
	for _, c := range []struct {
		code int
		want string
	}{{503, "no upstream target is available"}, {502, "the upstream did not answer"}, {504, "in time"}, {413, "too large"}, {418, "I'm a teapot"}} {
		r := httptest.NewRequest("GET", "/", nil)
		repl := caddy.NewReplacer()
		repl.Set("http.error.status_code", c.code)
		repl.Set("http.error.id", "abc")
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		status, body := b.handlerError(r)
		js, _ := json.Marshal(body)
		if status != c.code || !strings.Contains(string(js), c.want) || !strings.Contains(string(js), `"id":"abc"`) {
			t.Errorf("error %d: %d %s", c.code, status, js)
		}
	}
	// A public error gives the message and extra fields; the cause and a
	// field named like the body's own keys stay out.
	for err, want := range map[error]string{
		caddyhttp.Error(503, &httperr.Public{Message: "wasm plugin failure", Fields: map[string]string{"plugin": "p", "reason": "trap", "status": "x"}, Err: errors.New("secret cause")}): `{"error":"wasm plugin failure","id":"abc","plugin":"p","reason":"trap","status":503}`,
		caddyhttp.Error(504, fmt.Errorf("wrapped: %w", &httperr.Public{Message: "Gateway timeout"})):                                                                                      `{"error":"Gateway timeout","status":504,"id":"abc"}`,
		caddyhttp.Error(503, errors.New("dial tcp 10.0.0.1:80: refused")):                                                                                                                 `{"error":"no upstream target is available","status":503,"id":"abc"}`,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		repl := caddy.NewReplacer()
		he := err.(caddyhttp.HandlerError)
		repl.Set("http.error", err)
		repl.Set("http.error.status_code", he.StatusCode)
		repl.Set("http.error.id", "abc")
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		_, body := b.handlerError(r)
		js, _ := json.Marshal(body)
		if string(js) != want {
			t.Errorf("%v: %s, want %s", err, js, want)
		}
	}
}

// TestReadyKind: not ready before the config is the active one.
func TestReadyKind(t *testing.T) {
	b := &Builtin{Kind: KindReady}
	if status, _ := b.ready(httptest.NewRequest("GET", "/", nil)); status != 503 {
		t.Errorf("unprovisioned: %d", status)
	}
	b.ctx = context.Background()
	b.started = new(atomic.Bool)
	if status, body := b.ready(httptest.NewRequest("GET", "/", nil)); status != 503 || body.(healthBody).Status != "starting" {
		t.Errorf("config not active: %d %v", status, body)
	}
	b.started.Store(true)
	if status, _ := b.ready(httptest.NewRequest("GET", "/", nil)); status != 200 {
		t.Errorf("started: %d", status)
	}
}
