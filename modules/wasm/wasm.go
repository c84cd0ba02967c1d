// Package wasm provides the `sentinel_wasm` HTTP handler, which runs one or
// more WebAssembly plugins on each request with wazero (pure Go). Plugins
// speak either Sentinel's own core-wasm ABI, "sentinel_v1" (see
// docs/wasm.md), or the http-wasm ABI (https://http-wasm.io).
package wasm

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/tracing"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler runs a chain of WASM plugins in order. Each plugin may let the
// request continue (allow), answer it itself (block or redirect) or change
// its headers; the first plugin that answers ends the chain. When every
// plugin allows the request, it is passed on to the next handler.
//
// Compiled modules are shared by every handler and config reload that
// loads the same bytes (see [modules]); each plugin keeps a pool of
// instances so that concurrent requests run in parallel. A plugin that
// traps, exceeds its memory limit or its per-call deadline is handled by
// its failure mode and its instance is discarded.
type Handler struct {
	// The plugins to run, in order.
	Plugins []*Plugin `json:"plugins,omitempty"`

	// The folder of the disk cache of compiled plugins: compiling a
	// Go-built plugin takes seconds, reading it back from the cache
	// milliseconds, so a restart is fast. Default: `wasm-cache` in
	// Caddy's data folder; `off` keeps compiled code in memory only. The
	// folder is created with mode 0700; a folder that group or others
	// may write is refused (its files are machine code the proxy runs):
	// a configured one fails the load, the default one is skipped with a
	// warning.
	CacheDir string `json:"cache_dir,omitempty"`

	// The id of the route the handler serves, which plugins read with
	// get_route_id (sentinel_v1 revision 1.2). The KDL adapter sets it;
	// empty, get_route_id reports it absent.
	Route string `json:"route,omitempty"`

	chain  http.Handler
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_wasm",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision loads, compiles (or reuses) and validates every plugin.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	var reg prometheus.Registerer
	if r := ctx.GetMetricsRegistry(); r != nil {
		reg = r
	}
	m, err := newMetrics(reg)
	if err != nil {
		return err
	}
	dir := cacheDirOf(h.CacheDir)
	cc, err := compilationCache(dir)
	if err != nil {
		if h.CacheDir != "" {
			return fmt.Errorf("cache_dir: %w", err)
		}
		h.logger.Warn("WASM compilation cache folder not usable: compiled plugins are kept in memory only", zap.String("dir", dir), zap.Error(err))
		dir = ""
		if cc, err = compilationCache(dir); err != nil {
			return err
		}
	}
	trail, err := audit.Lookup(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(h.Plugins))
	for i, p := range h.Plugins {
		if p == nil {
			return fmt.Errorf("plugins[%d]: null plugin", i)
		}
		if p.ID == "" {
			p.ID = fmt.Sprintf("plugin%d", i)
		}
		if seen[p.ID] {
			return fmt.Errorf("plugins[%d]: duplicate id %q", i, p.ID)
		}
		seen[p.ID] = true
		p.cache, p.cacheDir, p.route, p.audit = cc, dir, h.Route, trail
		if err := p.provision(ctx, h.logger.With(zap.String("plugin", p.ID)), m); err != nil {
			return fmt.Errorf("plugin %q: %w", p.ID, err)
		}
	}
	var next http.Handler = http.HandlerFunc(serveNext)
	traced := tracing.Configured(ctx)
	for i := len(h.Plugins) - 1; i >= 0; i-- {
		p := h.Plugins[i]
		if traced {
			// A span per plugin run (tracing on only).
			next = tracing.WrapPlugin(p.ID, p.ABI, next, func(n http.Handler) http.Handler { return p.stage(ctx, n) })
			continue
		}
		next = p.stage(ctx, next)
	}
	h.chain = next
	return nil
}

// Validate checks that at least one plugin is configured.
func (h *Handler) Validate() error {
	if len(h.Plugins) == 0 {
		return fmt.Errorf("sentinel_wasm: no plugins configured")
	}
	return nil
}

// Cleanup releases the plugins' instances and their share of the compiled
// modules.
func (h *Handler) Cleanup() error {
	for _, p := range h.Plugins {
		if p != nil {
			p.cleanup()
		}
	}
	return nil
}

// chainKey is the request context key of the *chainState of a request.
type chainKey struct{}

// chainState carries Caddy's next handler through the plugin chain (whose
// stages are plain http.Handlers, as http-wasm requires) and its error
// back, or a plugin's closed failure, which takes precedence.
type chainState struct {
	next    caddyhttp.Handler
	err     error
	failure error
}

// serveNext is the end of the plugin chain: it calls Caddy's next handler.
func serveNext(w http.ResponseWriter, r *http.Request) {
	cs := r.Context().Value(chainKey{}).(*chainState)
	cs.err = cs.next.ServeHTTP(w, r)
}

// ServeHTTP runs the plugin chain.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	cs := &chainState{next: next}
	r = r.WithContext(context.WithValue(r.Context(), chainKey{}, cs))
	h.chain.ServeHTTP(w, r)
	if cs.failure != nil {
		return cs.failure
	}
	return cs.err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
