package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/internal/httperr"
)

// provisionHandler provisions a handler from JSON outside a server.
func provisionHandler(t testing.TB, js string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(js), h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if err := h.Provision(ctx); err != nil {
		h.Cleanup()
		return nil, err
	}
	t.Cleanup(func() { h.Cleanup() })
	return h, nil
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestModuleInfo(t *testing.T) {
	if id := (Handler{}).CaddyModule().ID; id != "http.handlers.sentinel_wasm" {
		t.Errorf("ID = %s", id)
	}
	if _, ok := (Handler{}).CaddyModule().New().(*Handler); !ok {
		t.Error("New does not return *Handler")
	}
}

func TestProvisionErrors(t *testing.T) {
	trivial := buildPlugin(t, "trivial")
	hw := buildPlugin(t, "httpwasm")
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, js, want string
	}{
		{"no plugins", `{}`, "no plugins"},
		{"null plugin", `{"plugins":[null]}`, "null plugin"},
		{"no path", `{"plugins":[{"id":"a"}]}`, "path is required"},
		{"failure mode", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "failure_mode": "maybe"}}}), "failure_mode"},
		{"abi", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "abi": "proxy-wasm"}}}), "abi must be"},
		{"max_memory syntax", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "max_memory": "lots"}}}), "max_memory"},
		{"max_memory range", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "max_memory": "8GiB"}}}), "4GiB"},
		{"max_memory_pages", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "max_memory_pages": 70000}}}), "65536"},
		{"missing file", `{"plugins":[{"path":"/nonexistent.wasm"}]}`, "no such file"},
		{"sha256 pin", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "sha256": strings.Repeat("0", 64)}}}), "the pin wants " + strings.Repeat("0", 64)},
		{"not wasm", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": bad}}}), "compiling"},
		{"not wasm forced", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": bad, "abi": "sentinel"}}}), "compiling"},
		{"duplicate id", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"id": "x", "path": trivial}, map[string]any{"id": "x", "path": trivial}}}), "duplicate"},
		{"http-wasm as sentinel", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": hw, "abi": "sentinel"}}}), "exports none"},
		{"sentinel as http-wasm", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "abi": "http-wasm"}}}), "handle_request"},
		{"memory below module minimum", mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial, "max_memory_pages": 1}}}), "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := provisionHandler(t, tc.js)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestProvisionDefaults(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{
		map[string]any{"path": buildPlugin(t, "trivial"), "max_memory": "20MiB", "config": " "},
		map[string]any{"path": buildPlugin(t, "httpwasm")},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	p := h.Plugins[0]
	if p.ID != "plugin0" || h.Plugins[1].ID != "plugin1" {
		t.Errorf("ids %q %q", p.ID, h.Plugins[1].ID)
	}
	if p.pages != 320 || p.timeout != DefaultTimeout || !p.closed || p.ABI != ABISentinel {
		t.Errorf("defaults: pages %d timeout %s closed %v abi %s", p.pages, p.timeout, p.closed, p.ABI)
	}
	if h.Plugins[1].ABI != ABIHTTPWasm {
		t.Errorf("http-wasm not detected: %s", h.Plugins[1].ABI)
	}
}

// serve runs h with a next handler writing status and the headers of hdr.
func serve(t testing.TB, h *Handler, req *http.Request, status int, hdr http.Header) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		for k, v := range hdr {
			w.Header()[k] = v
		}
		if r.Header.Get("X-Secret") != "" {
			return errors.New("secret leaked")
		}
		w.Header().Set("X-Long-Len-Seen", r.Header.Get("X-Long-Len"))
		if status == 0 {
			_, _ = io.WriteString(w, "implicit 200")
			return nil
		}
		w.WriteHeader(status)
		_, _ = io.Copy(w, strings.NewReader("upstream body"))
		return nil
	})
	err := h.ServeHTTP(rec, req, next)
	if httperr.As(err) != nil {
		// A plugin failure: Caddy's error routes answer.
		errorRoute(t, rec, req, err)
		err = nil
	}
	return rec, err
}

func TestResponsePhase(t *testing.T) {
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{
				map[string]any{"id": "rg", "path": buildPlugin(t, "respguard"), "failure_mode": mode},
			}}))
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPut, "/x", nil)
			req.Header.Set("X-Echo", "hi")
			req.Header.Set("X-Secret", "s")
			req.Header.Set("X-Long", strings.Repeat("y", 1000))
			rec, err := serve(t, h, req, 200, http.Header{"X-Internal": {"1"}, "X-Upstream": {"1"}})
			if err != nil {
				t.Fatal(err)
			}
			res := rec.Result()
			if res.StatusCode != 200 || rec.Body.String() != "upstream body" {
				t.Errorf("allow: %d %q", res.StatusCode, rec.Body.String())
			}
			if res.Header.Get("X-Echo-Method") != "PUT hi" || res.Header.Get("X-Internal") != "" ||
				res.Header.Get("X-Seen-Upstream") != "1" || res.Header.Get("X-Long-Len-Seen") != "xxxxxxxxxx" {
				t.Errorf("headers: %v", res.Header)
			}

			rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/x", nil), 500, nil)
			if rec.Code != 502 || rec.Body.String() != "upstream error hidden\n" {
				t.Errorf("response block: %d %q", rec.Code, rec.Body.String())
			}
			rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/redirect", nil), 0, nil)
			if rec.Code != 302 || rec.Header().Get("Location") != "/elsewhere" || rec.Body.Len() != 0 {
				t.Errorf("response redirect: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
			}
			rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/panic", nil), 200, nil)
			if mode == "closed" && (rec.Code != 503 || !strings.Contains(rec.Body.String(), `"reason":"trap"`)) {
				t.Errorf("response trap closed: %d %q", rec.Code, rec.Body.String())
			}
			if mode == "open" && (rec.Code != 200 || rec.Body.String() != "upstream body") {
				t.Errorf("response trap open: %d %q", rec.Code, rec.Body.String())
			}
			// request-phase block with a status out of range defaults to 403
			req = httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("X-Missing", "1")
			rec, _ = serve(t, h, req, 200, nil)
			if rec.Code != 500 || rec.Body.String() != "unexpected" {
				t.Errorf("request block: %d %q", rec.Code, rec.Body.String())
			}
			// the next handler's error is returned
			req = httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("X-Echo", "1")
			if _, err := serve(t, h, req, 200, nil); err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestCleanupClosesPool(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{
		map[string]any{"id": "t", "path": buildPlugin(t, "trivial"), "failure_mode": "closed"},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	p := h.Plugins[0]
	pool := p.pool
	inst, err := pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, pl := range h.Plugins {
		pl.graceAfterCleanup = 0 // release at once
	}
	h.Cleanup()
	pool.put(inst) // an in-flight instance returned after cleanup is closed
	if _, err := pool.newInstance(context.Background()); !errors.Is(err, errPoolClosed) {
		t.Errorf("newInstance after close: %v", err)
	}
	// a request reaching a cleaned-up plugin is answered by the failure mode
	p.pool = pool
	rec := serveStage(t, &sentinelStage{p: p, next: http.NotFoundHandler()}, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "unloaded") {
		t.Errorf("closed pool: %d %s", rec.Code, rec.Body.String())
	}
	if ct, cc := rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" ||
		!strings.Contains(rec.Body.String(), `"error":"wasm plugin failure"`) || !strings.Contains(rec.Body.String(), `"plugin":"`+p.ID+`"`) {
		t.Errorf("failure body: %v %s", rec.Header(), rec.Body.String())
	}
	// The failure is the handler's error, for Caddy's logs and error
	// routes: the plugin writes nothing itself.
	err = h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	if he, ok := err.(caddyhttp.HandlerError); !ok || he.StatusCode != 503 || httperr.As(err) == nil {
		t.Errorf("failure: %#v", err)
	}
	direct := httptest.NewRecorder()
	(&sentinelStage{p: p, next: http.NotFoundHandler()}).ServeHTTP(direct, httptest.NewRequest("GET", "/", nil))
	if direct.Body.Len() != 0 || len(direct.Header()) != 0 {
		t.Errorf("the stage wrote the failure itself: %v %q", direct.Header(), direct.Body.String())
	}
	p.closed = false
	rec = serveStage(t, &sentinelStage{p: p, next: http.NotFoundHandler()}, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 404 {
		t.Errorf("closed pool, open mode: %d", rec.Code)
	}
}

func TestPoolOverflow(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{
		map[string]any{"id": "t", "path": buildPlugin(t, "trivial"), "max_idle_instances": 1},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	pool := h.Plugins[0].pool
	a, _ := pool.get(context.Background())
	b, err := pool.get(context.Background())
	if err != nil || a == b {
		t.Fatalf("second instance: %v", err)
	}
	pool.put(a)
	pool.put(b) // pool full: closed
	if len(pool.idle) != 1 {
		t.Errorf("idle = %d", len(pool.idle))
	}
}

func TestMetricsReuse(t *testing.T) {
	reg := prometheusRegistry()
	m1, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if m1.calls != m2.calls || m1.latency != m2.latency {
		t.Error("collectors not reused")
	}
}

// TestCleanupWaitsForRequests checks that a config cleaned up while a
// request still uses its plugin keeps serving until the last one ends.
func TestCleanupWaitsForRequests(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{
		map[string]any{"id": "t", "path": buildPlugin(t, "trivial")},
		map[string]any{"id": "hw", "path": buildPlugin(t, "httpwasm")},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	p := h.Plugins[0]
	if !p.acquire() {
		t.Fatal("acquire failed")
	}
	for _, pl := range h.Plugins {
		pl.graceAfterCleanup = 0 // release at once
	}
	h.Cleanup()
	h.Cleanup() // idempotent
	// still serving: a late request works
	rec, err := serve(t, h, httptest.NewRequest(http.MethodGet, "/x", nil), 200, nil)
	if err != nil || rec.Code != 200 || rec.Header().Get("X-Http-Wasm") != "" {
		// the http-wasm plugin was released (no request held it)
		t.Logf("late request: %d %v", rec.Code, err)
	}
	if p.released {
		t.Fatal("released while a request is active")
	}
	p.release()
	if !p.released {
		t.Fatal("not released after the last request")
	}
	if p.acquire() {
		t.Error("acquire after release")
	}
	// the released http-wasm plugin answers with its failure mode
	rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/x", nil), 200, nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "unloaded") {
		t.Errorf("after release: %d %s", rec.Code, rec.Body.String())
	}
}

// TestGraceAfterCleanup: an unloaded config's plugin still serves late
// requests during the grace period, then releases.
func TestGraceAfterCleanup(t *testing.T) {
	p := &Plugin{graceAfterCleanup: 50 * time.Millisecond}
	p.cleanup()
	if !p.acquire() {
		t.Fatal("late request refused during the grace period")
	}
	p.release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		released := p.released
		p.mu.Unlock()
		if released {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not released after the grace period")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p.acquire() {
		t.Error("acquire after release")
	}
}
