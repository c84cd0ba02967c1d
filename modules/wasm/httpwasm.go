package wasm

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"time"

	"github.com/http-wasm/http-wasm-host-go/handler"
	nethttp "github.com/http-wasm/http-wasm-host-go/handler/nethttp"
	"github.com/tetratelabs/wazero"

	"github.com/caddyserver/caddy/v2"
)

// httpWasmModule is the import module of http-wasm guests.
const httpWasmModule = "http_handler"

// httpWasms is the process-level cache of http-wasm middlewares, keyed by
// "<sha256 of the module>/<memory pages>/<sha256 of the config>": the
// http-wasm host compiles the module and instantiates its guests with the
// config, so one middleware serves every config that loads the same
// module with the same config and limit (config reloads included). Its
// machine code comes from the plugin's compilation cache.
var httpWasms = caddy.NewUsagePool()

// httpWasmPlugin is a plugin speaking the http-wasm ABI.
type httpWasmPlugin struct {
	key string
	mw  nethttp.Middleware
}

// middlewareEntry is an entry of httpWasms.
type middlewareEntry struct{ mw nethttp.Middleware }

// Destruct closes the middleware's runtime.
func (e middlewareEntry) Destruct() error { return e.mw.Close(context.Background()) }

// httpWasmKey is the httpWasms key of a module, limit and config.
func httpWasmKey(hash string, pages uint32, config []byte) string {
	return fmt.Sprintf("%s/%d/%s", hash, pages, sha256Hex(config))
}

// provisionHTTPWasm loads an http-wasm plugin with the http-wasm host.
func (p *Plugin) provisionHTTPWasm(ctx caddy.Context, code []byte, hash string, config []byte) error {
	key := httpWasmKey(hash, p.pages, config)
	pages, cc := p.pages, p.cache
	v, _, err := httpWasms.LoadOrNew(key, func() (caddy.Destructor, error) {
		newRT := func(ctx context.Context) (wazero.Runtime, error) { return newRuntime(ctx, pages, cc) }
		mc := wazero.NewModuleConfig().
			WithStartFunctions("_start", "_initialize").
			WithSysNanotime().
			WithSysWalltime().
			WithRandSource(rand.Reader)
		mw, err := nethttp.NewMiddleware(context.Background(), code,
			handler.Runtime(newRT), handler.ModuleConfig(mc), handler.GuestConfig(config))
		if err != nil {
			return nil, err
		}
		return middlewareEntry{mw: mw}, nil
	})
	if err != nil {
		return err
	}
	p.httpWasm = &httpWasmPlugin{key: key, mw: v.(middlewareEntry).mw}
	return nil
}

// stage wraps next with the http-wasm guest. A guest error is answered
// by the http-wasm host (500); the deadline and failure_mode do not apply
// to http-wasm plugins.
func (h *httpWasmPlugin) stage(ctx context.Context, p *Plugin, next http.Handler) http.Handler {
	reached := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, ok := r.Context().Value(httpWasmTimingKey{}).(*httpWasmTiming); ok && !t.reached {
			t.reached, t.request = true, time.Since(t.start)
		}
		next.ServeHTTP(w, r)
	})
	return &httpWasmStage{p: p, guest: h.mw.NewHandler(ctx, reached), next: next}
}

// httpWasmTimingKey is the request context key of an *httpWasmTiming.
type httpWasmTimingKey struct{}

// httpWasmTiming records when an http-wasm guest passed the request on.
type httpWasmTiming struct {
	start   time.Time
	request time.Duration
	reached bool
}

// httpWasmStage counts the calls, latency and decisions of an http-wasm
// plugin: the latency is the request phase, up to the guest passing the
// request on (or answering it, which counts as a block).
type httpWasmStage struct {
	p     *Plugin
	guest http.Handler
	next  http.Handler
}

// ServeHTTP runs the guest and records its metrics.
func (s *httpWasmStage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.p.acquire() {
		if !s.p.fail(r, "unloaded") {
			s.next.ServeHTTP(w, r)
		}
		return
	}
	defer s.p.release()
	t := &httpWasmTiming{start: time.Now()}
	s.guest.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), httpWasmTimingKey{}, t)))
	m := &s.p.calls[phaseRequestHeaders]
	m.calls.Inc()
	if t.reached {
		m.latency.Observe(t.request.Seconds())
		s.p.decisions[decisionAllowIdx].Inc()
		return
	}
	m.latency.Observe(time.Since(t.start).Seconds())
	s.p.decisions[decisionBlockIdx].Inc()
}

func (h *httpWasmPlugin) close() {
	_, _ = httpWasms.Delete(h.key)
}

// Interface guards
var (
	_ http.Handler     = (*httpWasmStage)(nil)
	_ caddy.Destructor = middlewareEntry{}
)
