package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/http-wasm/http-wasm-host-go/handler"
	nethttp "github.com/http-wasm/http-wasm-host-go/handler/nethttp"
	"github.com/tetratelabs/wazero"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

// middlewareEntry is an entry of httpWasms. Its guests' stdout, stderr and
// log calls outside a request go to logger: that of the plugin of the
// config that loaded it last.
type middlewareEntry struct {
	mw     nethttp.Middleware
	logger *atomic.Pointer[zap.Logger]
}

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
	logger := new(atomic.Pointer[zap.Logger])
	logger.Store(p.logger)
	v, _, err := httpWasms.LoadOrNew(key, func() (caddy.Destructor, error) {
		newRT := func(ctx context.Context) (wazero.Runtime, error) {
			rt, err := newRuntime(ctx, pages, cc)
			if err != nil {
				return nil, err
			}
			return &guardedRuntime{Runtime: rt}, nil
		}
		mc := wazero.NewModuleConfig().
			WithStartFunctions("_start", "_initialize").
			WithSysNanotime().
			WithSysWalltime().
			WithRandSource(rand.Reader).
			WithStdout(newLogWriter(logger, zapcore.InfoLevel, "stdout")).
			WithStderr(newLogWriter(logger, zapcore.WarnLevel, "stderr"))
		mw, err := nethttp.NewMiddleware(context.Background(), code,
			handler.Runtime(newRT), handler.ModuleConfig(mc), handler.GuestConfig(config),
			handler.Logger(zapGuestLogger{fallback: logger}))
		if err != nil {
			return nil, err
		}
		return middlewareEntry{mw: mw, logger: logger}, nil
	})
	if err != nil {
		return err
	}
	e := v.(middlewareEntry)
	e.logger.Store(p.logger)
	p.httpWasm = &httpWasmPlugin{key: key, mw: e.mw}
	return nil
}

// stage wraps next with the http-wasm guest.
func (h *httpWasmPlugin) stage(ctx context.Context, p *Plugin, next http.Handler) http.Handler {
	reached := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := httpWasmStateOf(r.Context()); t != nil {
			t.reached = true
		}
		next.ServeHTTP(w, r)
	})
	return &httpWasmStage{p: p, guest: h.mw.NewHandler(ctx, reached), next: next}
}

// httpWasmStateKey is the request context key of an *httpWasmState.
type httpWasmStateKey struct{}

// httpWasmState is what the stage learns of a request's guest calls.
type httpWasmState struct {
	p       *Plugin
	reached bool   // the guest passed the request on
	phase   int    // of the failure
	reason  string // of the failure: trap, timeout, instantiate
	err     error  // the failure
}

// fail records the first failure of a request's guest calls.
func (t *httpWasmState) fail(phase int, reason string, err error) {
	if t.err == nil {
		t.phase, t.reason, t.err = phase, reason, err
	}
}

// httpWasmStateOf returns the state of the request of ctx, or nil.
func httpWasmStateOf(ctx context.Context) *httpWasmState {
	t, _ := ctx.Value(httpWasmStateKey{}).(*httpWasmState)
	return t
}

// httpWasmStage runs an http-wasm guest with Sentinel's rules: the
// plugin's deadline per call, failure_mode for a guest that traps, times
// out or cannot be instantiated, in either phase, and the plugin's
// metrics. The response is held (up to max_body_bytes) until
// handle_response has run, so that its failure can still be answered.
type httpWasmStage struct {
	p     *Plugin
	guest http.Handler
	next  http.Handler
}

// ServeHTTP runs the guest and applies the failure mode.
func (s *httpWasmStage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := s.p
	if !p.acquire() {
		if !p.fail(r, "unloaded") {
			s.next.ServeHTTP(w, r)
		}
		return
	}
	defer p.release()
	t := &httpWasmState{p: p}
	hw := &heldResponse{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, limit: p.MaxBodyBytes, t: t}
	rr := r.WithContext(context.WithValue(r.Context(), httpWasmStateKey{}, t))
	if !s.serveGuest(hw, rr, t) {
		panic(http.ErrAbortHandler) // a panic that is not a guest failure
	}
	if t.err == nil {
		if t.reached {
			p.decisions[decisionAllowIdx].Inc()
		} else {
			p.decisions[decisionBlockIdx].Inc()
			if p.audit != nil {
				p.auditDecision(r, false, hw.status)
			}
		}
		hw.commit()
		return
	}
	p.logger.Error("plugin failed", zap.Error(t.err))
	if hw.committed {
		// handle_response failed after the response went out (it was
		// longer than max_body_bytes, or flushed): too late to answer.
		p.decisions[decisionFailureOpen].Inc()
		return
	}
	// The held response (the host's 500 with the error's text, or the
	// next handler's response) is dropped.
	if p.fail(r, t.reason) {
		clear(hw.Header())
		return
	}
	if t.phase == phaseRequestHeaders && !t.reached {
		// open: as if the plugin were not there
		hw.drop()
		s.next.ServeHTTP(w, r)
		return
	}
	hw.commit()
}

// serveGuest runs the guest; it reports false for a panic that is not
// the host's reaction to a failed handle_response.
func (s *httpWasmStage) serveGuest(w http.ResponseWriter, r *http.Request, t *httpWasmState) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = t.err != nil
			if !ok {
				s.p.logger.Error("http-wasm handler panicked", zap.Any("panic", v))
			}
		}
	}()
	s.guest.ServeHTTP(w, r)
	return true
}

// heldResponse holds a response's status and its first limit bytes until
// commit; past the limit, or on a flush, it commits and streams.
type heldResponse struct {
	*caddyhttp.ResponseWriterWrapper
	limit     int64
	status    int
	buf       bytes.Buffer
	committed bool
	// t tells whether the guest passed the request on: a status
	// written before it did is the guest's own answer.
	t *httpWasmState
}

// WriteHeader holds the status. The next handler's 1xx go through; the
// guest's own answer with an informational status (100 sent an interim
// response then the body as a 200, 101 switched the connection's
// protocol) is a 403.
func (h *heldResponse) WriteHeader(status int) {
	if h.committed || h.status != 0 {
		return
	}
	if status < 200 {
		if h.t != nil && !h.t.reached {
			h.status = http.StatusForbidden
			return
		}
		h.ResponseWriter.WriteHeader(status)
		return
	}
	h.status = status
}

// Write holds b, or commits and writes it past the limit.
func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	if !h.committed && int64(h.buf.Len()+len(b)) <= h.limit {
		return h.buf.Write(b)
	}
	h.commit()
	return h.ResponseWriter.Write(b)
}

// ReadFrom copies r through Write.
func (h *heldResponse) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{h}, r)
}

// Flush commits the held response and flushes it.
func (h *heldResponse) Flush() {
	h.commit()
	_ = http.NewResponseController(h.ResponseWriter).Flush()
}

// commit writes the held status and bytes.
func (h *heldResponse) commit() {
	if h.committed {
		return
	}
	h.committed = true
	if h.status != 0 {
		h.ResponseWriter.WriteHeader(h.status)
	}
	if h.buf.Len() > 0 {
		_, _ = h.ResponseWriter.Write(h.buf.Bytes())
	}
	h.buf.Reset()
}

// drop forgets the held response.
func (h *heldResponse) drop() {
	h.status = 0
	h.buf.Reset()
}

func (h *httpWasmPlugin) close() {
	_, _ = httpWasms.Delete(h.key)
}

// Interface guards
var (
	_ http.Handler     = (*httpWasmStage)(nil)
	_ http.Flusher     = (*heldResponse)(nil)
	_ io.ReaderFrom    = (*heldResponse)(nil)
	_ caddy.Destructor = middlewareEntry{}
)
