// Package shadow is the handler http.handlers.sentinel_shadow: traffic
// shadowing (mirroring). It sends a fire-and-forget copy of a sample of a
// route's requests to another upstream, for testing a new version with
// real traffic. The client's response comes from the route's own
// upstream: it never waits for the copy, and never fails because of it.
//
// The copy goes through a Caddy reverse proxy (the `proxy` field, which
// the KDL adapter writes as it writes a route's: the `sentinel` upstream
// source and transport, the upstream's load balancing, TLS and timeouts),
// so the shadow upstream is resolved like any route's upstream, live from
// the registry. Copies carry X-Shadow-Request: true, as the original's
// do. At most max_in_flight copies of a handler are in flight at once:
// a slow or dead shadow upstream cannot grow memory or goroutines without
// bound; copies beyond the limit are dropped and counted (see package
// metrics: sentinel_shadow_*).
package shadow

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/metrics"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the original's shadow block.
const (
	DefaultPercentage   = 100.0
	DefaultTimeout      = 5 * time.Second
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxInFlight  = 100
)

// MarkerHeader is the header every copy carries, with the value "true",
// so that the shadow upstream can tell copies from real traffic.
const MarkerHeader = "X-Shadow-Request"

// Handler sends a copy of a sample of the requests to a shadow upstream
// and passes every request on, unchanged, to the next handler.
type Handler struct {
	// Upstream is the id of the shadow upstream in the registry. It
	// labels the metrics, and without Proxy the copies go to it through
	// a reverse proxy with the `sentinel` upstream source and transport
	// and default settings. Required.
	Upstream string `json:"upstream"`

	// Route is the id of the route, for the metrics and logs.
	Route string `json:"route,omitempty"`

	// Percentage is the share of the requests (those that carry the
	// sample header, when one is set) copied, from 0 to 100. Default 100.
	Percentage *float64 `json:"percentage,omitempty"`

	// SampleHeader, when set, limits shadowing to the requests that
	// carry this header with exactly this value.
	SampleHeader *SampleHeader `json:"sample_header,omitempty"`

	// Timeout bounds each copy, from the request until the shadow
	// upstream's whole response is read. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// BufferBody copies the request body too. The body is read, up to
	// MaxBodyBytes, before the request goes on to the route's upstream,
	// which then gets the same bytes. Without it, copies are sent
	// without a body (as the original's are).
	BufferBody bool `json:"buffer_body,omitempty"`

	// MaxBodyBytes is the largest body copied with BufferBody. A request
	// with a larger body is not copied (dropped, reason body_too_large);
	// the route's upstream still gets its whole body, streamed beyond
	// the limit. Default 1 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`

	// MaxInFlight is the most copies of this handler in flight at once
	// (each holds a goroutine and at most MaxBodyBytes of body); a copy
	// beyond it is dropped (reason limit). Default 100.
	MaxInFlight int `json:"max_in_flight,omitempty"`

	// ProxyRaw is the reverse proxy handler that sends the copies
	// (normally `reverse_proxy` to Upstream). Its response is read and
	// discarded.
	ProxyRaw json.RawMessage `json:"proxy,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	proxy    caddyhttp.MiddlewareHandler
	ctx      caddy.Context
	logger   *zap.Logger
	metrics  *metrics.Shadow
	slots    chan struct{}
	inFlight *flight
	percent  float64
}

// SampleHeader is a header name and the value a request must carry in it
// to be shadowed.
type SampleHeader struct {
	// Name is the header name.
	Name string `json:"name"`
	// Value is the exact value the header must have.
	Value string `json:"value"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_shadow",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies the defaults, loads the proxy and registers the
// metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	h.inFlight = new(flight)
	h.percent = DefaultPercentage
	if h.Percentage != nil {
		h.percent = *h.Percentage
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(DefaultTimeout)
	}
	if h.MaxBodyBytes == 0 {
		h.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.MaxInFlight == 0 {
		h.MaxInFlight = DefaultMaxInFlight
	}
	if h.ProxyRaw == nil && h.Upstream != "" {
		h.ProxyRaw = defaultProxy(h.Upstream)
	}
	if h.ProxyRaw != nil {
		mod, err := ctx.LoadModule(h, "ProxyRaw")
		if err != nil {
			return fmt.Errorf("sentinel_shadow %q: loading the proxy: %w", h.Upstream, err)
		}
		p, ok := mod.(caddyhttp.MiddlewareHandler)
		if !ok {
			return fmt.Errorf("sentinel_shadow %q: proxy module %T is not an HTTP handler", h.Upstream, mod)
		}
		h.proxy = p
	}
	if h.MaxInFlight > 0 {
		h.slots = make(chan struct{}, h.MaxInFlight)
	}
	m, err := metrics.NewShadow(ctx.GetMetricsRegistry(), h.Route, h.Upstream)
	if err != nil {
		return fmt.Errorf("sentinel_shadow %q: registering metrics: %w", h.Upstream, err)
	}
	h.metrics = m
	return nil
}

// defaultProxy is the reverse proxy to upstream with the `sentinel`
// upstream source and transport and their default settings.
func defaultProxy(upstream string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"handler":           "reverse_proxy",
		"dynamic_upstreams": map[string]string{"source": "sentinel", "upstream": upstream},
		"transport":         map[string]string{"protocol": "sentinel"},
		"headers":           HostHeaders(),
	})
	return b
}

// HostHeaders are the header operations of the proxy that sends the
// copies: the Host of a copy is the shadow target's address, as in the
// original (the route's own proxy keeps the client's Host).
func HostHeaders() map[string]any {
	return map[string]any{"request": map[string]any{"set": map[string][]string{"Host": {"{http.reverse_proxy.upstream.hostport}"}}}}
}

// Validate checks the settings.
func (h *Handler) Validate() error {
	if h.Upstream == "" {
		return fmt.Errorf("sentinel_shadow: upstream is required")
	}
	if h.percent < 0 || h.percent > 100 || h.percent != h.percent {
		return fmt.Errorf("sentinel_shadow %q: percentage must be between 0 and 100, not %v", h.Upstream, h.percent)
	}
	if h.SampleHeader != nil && h.SampleHeader.Name == "" {
		return fmt.Errorf("sentinel_shadow %q: sample_header needs a name", h.Upstream)
	}
	if h.Timeout < 0 {
		return fmt.Errorf("sentinel_shadow %q: timeout must be positive, not %v", h.Upstream, time.Duration(h.Timeout))
	}
	if h.MaxBodyBytes < 0 {
		return fmt.Errorf("sentinel_shadow %q: max_body_bytes must be positive, not %d", h.Upstream, h.MaxBodyBytes)
	}
	if h.MaxInFlight < 0 {
		return fmt.Errorf("sentinel_shadow %q: max_in_flight must be positive, not %d", h.Upstream, h.MaxInFlight)
	}
	return nil
}

// Cleanup waits, for at most the copies' timeout, for the copies in
// flight (the config's context, which they watch, is cancelled by now);
// requests the old server still serves start no copy after it.
func (h *Handler) Cleanup() error {
	if h.inFlight != nil {
		h.inFlight.close(time.Duration(h.Timeout))
	}
	return nil
}

// flight counts the copies in flight, so that Cleanup can wait for them.
type flight struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// add counts a copy starting, unless the handler is cleaned up.
func (f *flight) add() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

// done counts a copy ended.
func (f *flight) done() { f.wg.Done() }

// close stops new copies and waits for the ones in flight, for at most
// timeout.
func (f *flight) close(timeout time.Duration) {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	ended := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(timeout):
	}
}

// ServeHTTP sends a copy of the request when it is sampled and passes the
// request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.sampled(r) {
		r = h.shadow(r)
	}
	return next.ServeHTTP(w, r)
}

// sampled reports whether r is to be copied: it carries the sample
// header (when one is set), falls in the percentage and is not a
// protocol upgrade (a WebSocket's copy would hold a connection open).
func (h *Handler) sampled(r *http.Request) bool {
	if sh := h.SampleHeader; sh != nil {
		vals, ok := r.Header[http.CanonicalHeaderKey(sh.Name)]
		if !ok || len(vals) == 0 || vals[0] != sh.Value {
			return false
		}
	}
	if h.percent < 100 && rand.Float64()*100 >= h.percent {
		return false
	}
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" {
		return false
	}
	return true
}

// shadow starts the copy of r, unless the limit of copies in flight is
// reached or the body cannot be copied, and returns the request to pass
// on (with its body replaced when it was read for the copy).
func (h *Handler) shadow(r *http.Request) *http.Request {
	select {
	case h.slots <- struct{}{}:
	default:
		h.metrics.Dropped(metrics.ShadowLimit)
		return r
	}
	body, primary, reason := h.copyBody(r)
	r = primary
	if reason != "" {
		<-h.slots
		h.metrics.Dropped(reason)
		return r
	}
	if !h.inFlight.add() {
		<-h.slots // the config is unloaded: no new copy
		return r
	}
	copyReq := newCopy(r, body)
	h.metrics.Start()
	go h.send(copyReq)
	return r
}

// send sends the copy through the proxy, discarding the response, and
// records the outcome.
func (h *Handler) send(req *http.Request) {
	defer h.inFlight.done()
	defer func() { <-h.slots }()
	ctx, cancel := context.WithTimeout(req.Context(), time.Duration(h.Timeout))
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel) // the config is unloaded
	defer stop()
	w := new(discard)
	req = prepare(req.WithContext(ctx), w)
	err := h.proxy.ServeHTTP(w, req, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	switch {
	case err == nil && ctx.Err() == nil:
		h.metrics.Sent()
	case ctx.Err() == context.DeadlineExceeded:
		h.metrics.Failed(metrics.ShadowTimeout)
		h.logger.Debug("shadow copy timed out", zap.String("route", h.Route), zap.String("upstream", h.Upstream),
			zap.Duration("timeout", time.Duration(h.Timeout)))
	default:
		h.metrics.Failed(metrics.ShadowError)
		h.logger.Debug("shadow copy failed", zap.String("route", h.Route), zap.String("upstream", h.Upstream), zap.Error(err))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
