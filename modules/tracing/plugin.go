package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// pluginSpanKey holds the span of the WASM plugin running a request. It
// is not the context's current span: the handlers after the plugin
// (the proxy's attempts) are children of the request's span, not of
// the plugin's.
type pluginSpanKey struct{}

// WrapPlugin returns the stage of a WASM plugin with a span per request
// that it runs: from the plugin's start until it passes the request on
// (`sentinel.plugin.decision` allow) or answers it itself (block). stage
// builds the plugin's stage before a next handler; WrapPlugin gives it
// one that ends the span, then calls next.
func WrapPlugin(name, abi string, next http.Handler, stage func(next http.Handler) http.Handler) http.Handler {
	return &pluginStart{name: name, abi: abi, stage: stage(&pluginDone{next: next})}
}

// pluginStart starts a plugin's span.
type pluginStart struct {
	name, abi string
	stage     http.Handler
}

// pluginSpan is a plugin's span and whether the plugin passed the
// request on.
type pluginSpan struct {
	sp     trace.Span
	passed bool
}

// ServeHTTP runs the plugin with its span.
func (p *pluginStart) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tr, ok := tracerOf(r.Context())
	if !ok {
		p.stage.ServeHTTP(w, r)
		return
	}
	_, sp := tr.Start(r.Context(), "wasm "+p.name, trace.WithAttributes(
		attribute.String("sentinel.plugin.name", p.name),
		attribute.String("sentinel.plugin.abi", p.abi),
	))
	ps := &pluginSpan{sp: sp}
	p.stage.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), pluginSpanKey{}, ps)))
	if !ps.passed {
		sp.SetAttributes(attribute.String("sentinel.plugin.decision", "block"))
		sp.End()
	}
}

// pluginDone ends the span of the plugin that passes the request on.
type pluginDone struct{ next http.Handler }

// ServeHTTP ends the plugin's span and calls next.
func (p *pluginDone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ps, ok := r.Context().Value(pluginSpanKey{}).(*pluginSpan); ok && !ps.passed {
		ps.passed = true
		ps.sp.SetAttributes(attribute.String("sentinel.plugin.decision", "allow"))
		ps.sp.End()
	}
	p.next.ServeHTTP(w, r)
}
