// Package sdk is what an agent author uses to write a Sentinel agent in Go:
// implement Handler (embed Base for allow-by-default methods) and serve it
// over a Unix socket (ServeUDS), gRPC (ServeGRPC) or by registering with a
// proxy's registration listener (Register). The agent side speaks the Rust
// dialect of agent protocol v2 (what the Rust proxy and Sentinel's proxy
// expect) and, over gRPC, both proto packages sentinel.agent.v2 and
// zentinel.agent.v2.
package sdk

import (
	"context"
	"crypto/tls"
	"time"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk/sdkconfig"
)

// Handler handles the events of one agent. Methods may be called
// concurrently (one goroutine per event; events of one request arrive one
// at a time). A nil *protocol.Response means allow. The SDK fills in the
// correlation id and version.
type Handler interface {
	// OnConfigure receives the agent's config block; an error rejects it.
	OnConfigure(ctx context.Context, cfg *protocol.Configure) error
	// OnRequestHeaders decides on the request headers.
	OnRequestHeaders(ctx context.Context, ev *protocol.RequestHeaders) *protocol.Response
	// OnRequestBody decides on one request body chunk.
	OnRequestBody(ctx context.Context, ev *protocol.RequestBodyChunk) *protocol.Response
	// OnResponseHeaders decides on the response headers.
	OnResponseHeaders(ctx context.Context, ev *protocol.ResponseHeaders) *protocol.Response
	// OnResponseBody decides on one response body chunk.
	OnResponseBody(ctx context.Context, ev *protocol.ResponseBodyChunk) *protocol.Response
	// OnRequestComplete is told that a request finished.
	OnRequestComplete(ctx context.Context, ev *protocol.RequestComplete)
	// OnWebSocketFrame decides on one WebSocket frame.
	OnWebSocketFrame(ctx context.Context, ev *protocol.WebSocketFrame) *protocol.Response
	// OnGuardrailInspect inspects content for a guardrail.
	OnGuardrailInspect(ctx context.Context, ev *protocol.GuardrailInspect) *protocol.Response
	// OnCancel is told that the proxy abandoned a request (the context of a
	// running handler call for it is canceled too).
	OnCancel(ctx context.Context, c *protocol.Cancel)
}

// DecodeConfig decodes an agent's config block (Configure.Config) into v
// strictly: unknown keys and values of the wrong type are errors naming
// the key, and a single value where a list is expected says how to write
// a one-element list in KDL (`allow (list)"/api"`). Return its error from
// OnConfigure: the proxy's handshake with the agent then fails with the
// reason in the proxy's log, instead of the agent running with a config
// it misread. Empty input and null leave v unchanged.
func DecodeConfig(raw []byte, v any) error {
	return sdkconfig.Decode(raw, v)
}

// Base implements every Handler method with "allow"/no-op; embed it.
type Base struct{}

// OnConfigure accepts any config.
func (Base) OnConfigure(context.Context, *protocol.Configure) error { return nil }

// OnRequestHeaders allows.
func (Base) OnRequestHeaders(context.Context, *protocol.RequestHeaders) *protocol.Response {
	return nil
}

// OnRequestBody allows.
func (Base) OnRequestBody(context.Context, *protocol.RequestBodyChunk) *protocol.Response {
	return nil
}

// OnResponseHeaders allows.
func (Base) OnResponseHeaders(context.Context, *protocol.ResponseHeaders) *protocol.Response {
	return nil
}

// OnResponseBody allows.
func (Base) OnResponseBody(context.Context, *protocol.ResponseBodyChunk) *protocol.Response {
	return nil
}

// OnRequestComplete does nothing.
func (Base) OnRequestComplete(context.Context, *protocol.RequestComplete) {}

// OnWebSocketFrame allows.
func (Base) OnWebSocketFrame(context.Context, *protocol.WebSocketFrame) *protocol.Response {
	return nil
}

// OnGuardrailInspect allows.
func (Base) OnGuardrailInspect(context.Context, *protocol.GuardrailInspect) *protocol.Response {
	return nil
}

// OnCancel does nothing.
func (Base) OnCancel(context.Context, *protocol.Cancel) {}

// Interface guard.
var _ Handler = Base{}

// Options configure an agent server.
type Options struct {
	// AgentID is the agent id (default "go-agent").
	AgentID string
	// Name is the agent name (default AgentID).
	Name string
	// Version is the agent version (default "0.1.0").
	Version string
	// Events are the events announced in capabilities (default request headers).
	Events []protocol.EventType
	// Features override the announced features (zero: cancellation, flow control and health reporting on).
	Features *protocol.Features
	// Limits override the announced limits (zero: 1 MiB body, MaxConcurrency, 64 KiB chunks).
	Limits *protocol.Limits
	// MaxConcurrency bounds concurrently handled events per connection (default 100).
	MaxConcurrency int
	// Logger receives logs (default zap.NewNop()).
	Logger *zap.Logger
	// Controller, when set, lets the caller push flow control and health to connected proxies.
	Controller *Controller
	// TLS serves gRPC over TLS (set ClientAuth/ClientCAs for mTLS).
	TLS *tls.Config
	// GRPCPackages are the proto packages served (default both).
	GRPCPackages []string
	// HandshakeTimeout bounds the wait for the proxy's handshake (default 10s).
	HandshakeTimeout time.Duration
}
