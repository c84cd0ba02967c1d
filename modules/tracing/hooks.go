package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span is an OpenTelemetry span, as the hooks return it (nil when the
// request is not traced).
type Span = trace.Span

// tracerOf returns Sentinel's tracer of the request's traced span, or
// nil when ctx has no recording span (tracing off, or not sampled).
func tracerOf(ctx context.Context) (trace.Tracer, bool) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return nil, false
	}
	return parent.TracerProvider().Tracer(instrumentationName), true
}

// StartUpstream starts the client span of one attempt of a proxied
// request to the target addr (attempt counts from 1), and sets the
// request's traceparent to it. A request that is not sampled gets the
// traceparent of its server span, with no span (nil). The caller ends
// the span with EndUpstream.
func StartUpstream(req *http.Request, addr string, attempt int) Span {
	ctx := req.Context()
	tr, ok := tracerOf(ctx)
	if !ok {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			inject(ctx, req.Header)
		}
		return nil
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", req.Method),
		attribute.String("sentinel.upstream.address", addr),
		attribute.Int("sentinel.upstream.attempt", attempt),
		attribute.String("url.path", req.URL.Path),
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		attrs = append(attrs, attribute.String("server.address", host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attribute.Int("server.port", p))
		}
	}
	ctx, sp := tr.Start(ctx, "upstream.attempt", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	inject(ctx, req.Header)
	return sp
}

// inject sets the trace context headers of an upstream request to ctx's
// span: traceparent, and tracestate when the trace has one (the client's
// own tracestate goes with its traceparent, which is replaced).
func inject(ctx context.Context, h http.Header) {
	h.Del("Tracestate")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// EndUpstream ends an attempt's span with its outcome: the response's
// status, or the transport error.
func EndUpstream(sp Span, res *http.Response, err error) {
	if err != nil {
		sp.SetStatus(codes.Error, "transport error")
		sp.SetAttributes(attribute.String("error.type", errorType(err)))
	} else if res != nil {
		sp.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
		if res.StatusCode >= 500 {
			sp.SetStatus(codes.Error, strconv.Itoa(res.StatusCode))
			sp.SetAttributes(attribute.String("error.type", strconv.Itoa(res.StatusCode)))
		}
	}
	sp.End()
}

// errorType classifies a transport error for error.type.
func errorType(err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, new(reverseproxy.DialError)), errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport"
}

// StartAgent starts the span of a call to an agent (event is the
// protocol's event name), as a child of ctx's span; nil when the request
// is not traced. The caller ends it with EndAgent.
func StartAgent(ctx context.Context, agent, event string) (context.Context, Span) {
	tr, ok := tracerOf(ctx)
	if !ok {
		return ctx, nil
	}
	return tr.Start(ctx, "agent "+agent, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("sentinel.agent.name", agent),
		attribute.String("sentinel.agent.event", event),
	))
}

// EndAgent ends an agent call's span with the agent's decision (allow,
// block, redirect, challenge; "" when there is none) or the call's
// error.
func EndAgent(sp Span, decision string, err error) {
	if err != nil {
		sp.SetStatus(codes.Error, "agent call failed")
		sp.SetAttributes(attribute.String("error.type", errorType(err)))
	} else if decision != "" {
		sp.SetAttributes(attribute.String("sentinel.agent.decision", decision))
	}
	sp.End()
}

// Traceparent is the W3C traceparent of ctx's span (the request's, or
// an agent call's), or fallback when ctx has none (tracing off).
func Traceparent(ctx context.Context, fallback string) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return fallback
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}
