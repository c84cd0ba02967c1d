package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler starts the server span of a request: a child of the request's
// W3C traceparent when it has one (parent-based sampling), the root of a
// new trace otherwise. The span is the current span of the request's
// context for the handlers after it, whose spans are its children.
//
// A handler with a route names the request's span after the route
// instead when an earlier sentinel_tracing handler (the server's) has
// started it, and starts it otherwise. The Sentinel adapter puts one
// handler first in each server and one with the route id in each route.
type Handler struct {
	// Route is the route id: the span's `http.route` and
	// `sentinel.route.id` attributes, and its name (`GET <route>`).
	Route string `json:"route,omitempty"`

	tracer trace.Tracer
	// names is the span name for each method, for the route.
	names map[string]string
	// opts are the server span's options (a slice made once: a variadic
	// argument list would be allocated per request).
	opts []trace.SpanStartOption
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_tracing",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the tracer of the configuration's tracing app.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := ctx.App(AppName)
	if err != nil {
		return err
	}
	h.setup(app.(*App).tracer)
	return nil
}

// setup sets the tracer and what is made once.
func (h *Handler) setup(tr trace.Tracer) {
	h.tracer = tr
	h.opts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	h.names = make(map[string]string, len(methods))
	for _, m := range methods {
		h.names[m] = spanName(m, h.Route)
	}
}

// methods are the methods whose span names are made once.
var methods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace}

func spanName(method, route string) string {
	if route == "" {
		return method
	}
	return method + " " + route
}

// name is the span name of a request with method m.
func (h *Handler) name(m string) string {
	if n, ok := h.names[m]; ok {
		return n
	}
	// Another method: not a span name of its own (cardinality).
	return spanName("HTTP", h.Route)
}

// serverSpanKey marks the context of a request whose server span a
// sentinel_tracing handler started.
type serverSpanKey struct{}

// ServeHTTP traces the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if sp, ok := r.Context().Value(serverSpanKey{}).(trace.Span); ok {
		// The server's handler started the span: name it for the route.
		if h.Route != "" && sp.IsRecording() {
			sp.SetName(h.name(r.Method))
			sp.SetAttributes(attribute.String("http.route", h.Route), attribute.String("sentinel.route.id", h.Route))
		}
		return next.ServeHTTP(w, r)
	}
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, sp := h.tracer.Start(ctx, h.name(r.Method), h.opts...)
	defer sp.End()
	ctx = contextWithServerSpan(ctx, sp)
	r = r.WithContext(ctx)
	if !sp.IsRecording() {
		// Not sampled: the span context is still passed on (flags 00).
		return next.ServeHTTP(w, r)
	}
	sp.SetAttributes(requestAttributes(r)...)
	if h.Route != "" {
		sp.SetAttributes(attribute.String("http.route", h.Route), attribute.String("sentinel.route.id", h.Route))
	}
	rec := &statusRecorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(rec, r)
	status := rec.status
	if err != nil {
		status = http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
	} else if status == 0 {
		status = http.StatusOK
	}
	sp.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		sp.SetStatus(codes.Error, strconv.Itoa(status))
		sp.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
	}
	return err
}

// contextWithServerSpan marks ctx as traced by a sentinel_tracing
// handler, with its server span.
func contextWithServerSpan(ctx context.Context, sp trace.Span) context.Context {
	return context.WithValue(ctx, serverSpanKey{}, sp)
}

// requestAttributes are the attributes of the server span: method,
// scheme, path (no query: it may carry tokens), host, peer, protocol. No
// header value is recorded.
func requestAttributes(r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("url.scheme", scheme),
		attribute.String("url.path", r.URL.Path),
		attribute.String("server.address", host),
		attribute.String("network.protocol.version", protoVersion(r)),
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, attribute.String("network.peer.address", ip))
	}
	if addr, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && addr != "" {
		attrs = append(attrs, attribute.String("client.address", addr))
	}
	return attrs
}

func protoVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	if r.ProtoMinor == 0 {
		return "1.0"
	}
	return "1.1"
}

// statusRecorder records the status of the response.
type statusRecorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

// WriteHeader records the first final status.
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

// Write records an implicit 200.
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
