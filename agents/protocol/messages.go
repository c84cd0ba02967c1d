package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ProtocolVersion is the agent protocol version this package speaks.
const ProtocolVersion = 2

// Dialect is the flavour of the UDS v2 protocol an agent speaks.
type Dialect int

const (
	// DialectAuto detects the dialect at the handshake (Options.Dialect only).
	DialectAuto Dialect = iota
	// DialectRust is what the Rust proxy and the Rust agent server
	// (agent-protocol crate) actually do: reference §2.
	DialectRust
	// DialectSDK is the documented variant implemented by the official Go
	// SDK zentinel-agent-go-sdk v2: numeric request ids, 0x20 Decision,
	// 0xF0/0xF1 ping/pong.
	DialectSDK
	// DialectGRPC marks a gRPC v2 connection (AgentInfo.Dialect only).
	DialectGRPC
)

// String returns "auto", "rust", "sdk" or "grpc".
func (d Dialect) String() string {
	switch d {
	case DialectRust:
		return "rust"
	case DialectSDK:
		return "sdk"
	case DialectGRPC:
		return "grpc"
	}
	return "auto"
}

// EventType is the numeric event code used in capabilities
// (supported_events) and the gRPC EventType enum.
type EventType int32

// Event codes (reference §2.5 / proto EventType).
const (
	EventRequestHeaders    EventType = 1
	EventRequestBodyChunk  EventType = 2
	EventResponseHeaders   EventType = 3
	EventResponseBodyChunk EventType = 4
	EventRequestComplete   EventType = 5
	EventWebSocketFrame    EventType = 6
	EventGuardrailInspect  EventType = 7
	EventConfigure         EventType = 8
)

// String returns the KDL-style name of the event.
func (e EventType) String() string {
	switch e {
	case EventRequestHeaders:
		return "request_headers"
	case EventRequestBodyChunk:
		return "request_body"
	case EventResponseHeaders:
		return "response_headers"
	case EventResponseBodyChunk:
		return "response_body"
	case EventRequestComplete:
		return "request_complete"
	case EventWebSocketFrame:
		return "websocket_frame"
	case EventGuardrailInspect:
		return "guardrail"
	case EventConfigure:
		return "configure"
	}
	return fmt.Sprintf("event(%d)", int32(e))
}

// MessageType returns the Rust-dialect UDS frame type carrying the event.
func (e EventType) MessageType() MessageType {
	switch e {
	case EventRequestHeaders:
		return MsgRequestHeaders
	case EventRequestBodyChunk:
		return MsgRequestBodyChunk
	case EventResponseHeaders:
		return MsgResponseHeaders
	case EventResponseBodyChunk:
		return MsgResponseBodyChunk
	case EventRequestComplete:
		return MsgRequestComplete
	case EventWebSocketFrame:
		return MsgWebSocketFrame
	case EventGuardrailInspect:
		return MsgGuardrailInspect
	case EventConfigure:
		return MsgConfigure
	}
	return 0
}

// Event is a proxy → agent event.
type Event interface {
	// EventType tells which event this is.
	EventType() EventType
	// Correlation returns the correlation id (the proxy's trace id for the request).
	Correlation() string
}

// OptString is a string that is encoded as JSON null when empty and
// decodes null as "" (the Rust side's Option<String>).
type OptString string

// MarshalJSON encodes "" as null.
func (s OptString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// UnmarshalJSON decodes null as "".
func (s *OptString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = ""
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = OptString(v)
	return nil
}

// RequestMetadata describes the request (reference §2.7.1 `metadata`).
type RequestMetadata struct {
	// CorrelationID is the proxy's trace id of the request.
	CorrelationID string `json:"correlation_id"`
	// RequestID is a fresh id per event (UUID v4 in the Rust proxy).
	RequestID string `json:"request_id"`
	// ClientIP is the client address as text (the Rust proxy includes the port).
	ClientIP string `json:"client_ip"`
	// ClientPort is the client port (the Rust proxy always sends 0).
	ClientPort uint16 `json:"client_port"`
	// ServerName is the request host, null when unknown.
	ServerName OptString `json:"server_name"`
	// Protocol is the HTTP protocol, e.g. "HTTP/1.1".
	Protocol string `json:"protocol"`
	// TLSVersion is the TLS version, null for plain HTTP.
	TLSVersion OptString `json:"tls_version"`
	// TLSCipher is the TLS cipher suite, null for plain HTTP.
	TLSCipher OptString `json:"tls_cipher"`
	// RouteID is the matched route id.
	RouteID OptString `json:"route_id"`
	// UpstreamID is the route's upstream id.
	UpstreamID OptString `json:"upstream_id"`
	// Timestamp is the RFC 3339 time of the event.
	Timestamp string `json:"timestamp"`
	// Traceparent is the W3C traceparent, omitted when empty.
	Traceparent string `json:"traceparent,omitempty"`
}

// RequestHeaders is event 0x10: the request line and headers.
type RequestHeaders struct {
	// CorrelationID is the top-level copy the proxy adds to every event;
	// when empty the client fills it from Metadata.CorrelationID.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Metadata describes the request.
	Metadata RequestMetadata `json:"metadata"`
	// Method is the request method.
	Method string `json:"method"`
	// URI is the path plus query. Sentinel sends the normalised path,
	// the one route matching evaluates: percent-decoded, `.` and `..`
	// segments resolved, repeated slashes merged (a trailing slash
	// kept), then re-encoded canonically (only what must be escaped is,
	// e.g. a space as %20), followed by the query as received. Judge
	// paths by URI: `/api/%73ecret`, `/api//secret`, `/api/./secret` and
	// `/api/x/../secret` all arrive as `/api/secret`.
	URI string `json:"uri"`
	// RawURI is the request-target as the upstream gets it: the path as
	// received (not normalised) plus the query (Sentinel extension; empty
	// from proxies that do not send it). Use it to refuse ambiguous
	// encodings, not to match paths.
	RawURI string `json:"raw_uri,omitempty"`
	// Headers maps lower-case header names to all their values.
	Headers map[string][]string `json:"headers"`
}

// EventType implements Event.
func (*RequestHeaders) EventType() EventType { return EventRequestHeaders }

// Correlation implements Event.
func (e *RequestHeaders) Correlation() string {
	if e.Metadata.CorrelationID != "" {
		return e.Metadata.CorrelationID
	}
	return e.CorrelationID
}

// RequestBodyChunk is event 0x11: one chunk of the request body.
type RequestBodyChunk struct {
	// CorrelationID identifies the request.
	CorrelationID string `json:"correlation_id"`
	// Data is the chunk (standard base64 on the wire).
	Data []byte `json:"data"`
	// IsLast marks the last chunk of the body.
	IsLast bool `json:"is_last"`
	// TotalSize is the whole body size if known.
	TotalSize *uint64 `json:"total_size"`
	// ChunkIndex is the 0-based chunk number.
	ChunkIndex uint32 `json:"chunk_index"`
	// BytesReceived is the number of body bytes received so far.
	BytesReceived uint64 `json:"bytes_received"`
}

// EventType implements Event.
func (*RequestBodyChunk) EventType() EventType { return EventRequestBodyChunk }

// Correlation implements Event.
func (e *RequestBodyChunk) Correlation() string { return e.CorrelationID }

// ResponseHeaders is event 0x12: the upstream response status and headers.
type ResponseHeaders struct {
	// CorrelationID identifies the request.
	CorrelationID string `json:"correlation_id"`
	// Status is the HTTP status code.
	Status uint16 `json:"status"`
	// Headers maps lower-case header names to all their values.
	Headers map[string][]string `json:"headers"`
}

// EventType implements Event.
func (*ResponseHeaders) EventType() EventType { return EventResponseHeaders }

// Correlation implements Event.
func (e *ResponseHeaders) Correlation() string { return e.CorrelationID }

// ResponseBodyChunk is event 0x13: one chunk of the response body.
type ResponseBodyChunk struct {
	// CorrelationID identifies the request.
	CorrelationID string `json:"correlation_id"`
	// Data is the chunk (standard base64 on the wire).
	Data []byte `json:"data"`
	// IsLast marks the last chunk of the body.
	IsLast bool `json:"is_last"`
	// TotalSize is the whole body size if known.
	TotalSize *uint64 `json:"total_size"`
	// ChunkIndex is the 0-based chunk number.
	ChunkIndex uint32 `json:"chunk_index"`
	// BytesSent is the number of body bytes sent so far.
	BytesSent uint64 `json:"bytes_sent"`
}

// EventType implements Event.
func (*ResponseBodyChunk) EventType() EventType { return EventResponseBodyChunk }

// Correlation implements Event.
func (e *ResponseBodyChunk) Correlation() string { return e.CorrelationID }

// RequestComplete is event 0x14: the request finished (sent with Notify).
type RequestComplete struct {
	// CorrelationID identifies the request.
	CorrelationID string `json:"correlation_id"`
	// Status is the final HTTP status.
	Status uint16 `json:"status"`
	// DurationMs is the request duration in milliseconds.
	DurationMs uint64 `json:"duration_ms"`
	// RequestBodySize is the request body size in bytes.
	RequestBodySize uint64 `json:"request_body_size"`
	// ResponseBodySize is the response body size in bytes.
	ResponseBodySize uint64 `json:"response_body_size"`
	// UpstreamAttempts is the number of upstream attempts.
	UpstreamAttempts uint32 `json:"upstream_attempts"`
	// Error describes a failure, null when none.
	Error OptString `json:"error"`
}

// EventType implements Event.
func (*RequestComplete) EventType() EventType { return EventRequestComplete }

// Correlation implements Event.
func (e *RequestComplete) Correlation() string { return e.CorrelationID }

// WebSocketFrame is event 0x15: one WebSocket frame.
type WebSocketFrame struct {
	// CorrelationID is the id of the upgrade request.
	CorrelationID string `json:"correlation_id"`
	// Opcode is "continuation", "text", "binary", "close", "ping" or "pong".
	Opcode string `json:"opcode"`
	// Data is the frame payload (base64 on the wire).
	Data []byte `json:"data"`
	// ClientToServer is the direction.
	ClientToServer bool `json:"client_to_server"`
	// FrameIndex is the 0-based frame number per direction.
	FrameIndex uint64 `json:"frame_index"`
	// Fin is the FIN bit.
	Fin bool `json:"fin"`
	// RouteID is the route id, null when unknown.
	RouteID OptString `json:"route_id"`
	// ClientIP is the client address.
	ClientIP string `json:"client_ip"`
}

// EventType implements Event.
func (*WebSocketFrame) EventType() EventType { return EventWebSocketFrame }

// Correlation implements Event.
func (e *WebSocketFrame) Correlation() string { return e.CorrelationID }

// GuardrailInspect is event 0x16 (UDS only): content to inspect.
type GuardrailInspect struct {
	// CorrelationID identifies the request.
	CorrelationID string `json:"correlation_id"`
	// InspectionType is "prompt_injection" or "pii_detection".
	InspectionType string `json:"inspection_type"`
	// Content is the text to inspect.
	Content string `json:"content"`
	// Model is the model name, omitted when empty.
	Model string `json:"model,omitempty"`
	// Categories are PII categories.
	Categories []string `json:"categories"`
	// RouteID is the route id, omitted when empty.
	RouteID string `json:"route_id,omitempty"`
	// Metadata is free-form.
	Metadata map[string]string `json:"metadata"`
}

// EventType implements Event.
func (*GuardrailInspect) EventType() EventType { return EventGuardrailInspect }

// Correlation implements Event.
func (e *GuardrailInspect) Correlation() string { return e.CorrelationID }

// Configure is event 0x17: the agent's `config { }` block as JSON.
type Configure struct {
	// CorrelationID is the id the answer is correlated by (the client uses
	// "configure-<n>" when empty).
	CorrelationID string `json:"correlation_id,omitempty"`
	// Config is the configuration (any JSON; null when none).
	Config json.RawMessage `json:"config,omitempty"`
	// ConfigVersion is an optional version string.
	ConfigVersion OptString `json:"config_version,omitempty"`
}

// EventType implements Event.
func (*Configure) EventType() EventType { return EventConfigure }

// Correlation implements Event.
func (e *Configure) Correlation() string { return e.CorrelationID }

// CancelReason is the Rust-dialect (0-based) cancel reason.
type CancelReason int

// Cancel reasons (UDS, 0-based; the gRPC enum is 1-based: add 1).
const (
	CancelClientDisconnect CancelReason = 0
	CancelTimeout          CancelReason = 1
	CancelBlockedByAgent   CancelReason = 2
	CancelUpstreamError    CancelReason = 3
	CancelProxyShutdown    CancelReason = 4
	CancelManual           CancelReason = 5
)

// ParseCancelReason maps a reason text ("client_disconnect", "timeout",
// "blocked_by_agent", "upstream_error", "proxy_shutdown"; anything else is
// manual) to its code.
func ParseCancelReason(s string) CancelReason {
	switch s {
	case "client_disconnect", "client-disconnect", "disconnect":
		return CancelClientDisconnect
	case "timeout":
		return CancelTimeout
	case "blocked_by_agent", "blocked":
		return CancelBlockedByAgent
	case "upstream_error":
		return CancelUpstreamError
	case "proxy_shutdown", "shutdown":
		return CancelProxyShutdown
	}
	return CancelManual
}

// String returns the snake_case reason name.
func (r CancelReason) String() string {
	switch r {
	case CancelClientDisconnect:
		return "client_disconnect"
	case CancelTimeout:
		return "timeout"
	case CancelBlockedByAgent:
		return "blocked_by_agent"
	case CancelUpstreamError:
		return "upstream_error"
	case CancelProxyShutdown:
		return "proxy_shutdown"
	}
	return "manual"
}

// Cancel is message 0x40 (proxy → agent): the request is abandoned.
type Cancel struct {
	// CorrelationID identifies the request.
	CorrelationID string `json:"correlation_id"`
	// Reason is the 0-based reason code.
	Reason CancelReason `json:"reason"`
	// TimestampMs is the Unix time in milliseconds.
	TimestampMs uint64 `json:"timestamp_ms"`
}

// Ping is message 0x41 (proxy → agent).
type Ping struct {
	// Sequence is the ping number.
	Sequence uint64 `json:"sequence"`
	// TimestampMs is the Unix time in milliseconds when sent.
	TimestampMs uint64 `json:"timestamp_ms"`
}

// Pong is message 0x42: the Rust agent server echoes the Ping payload.
type Pong = Ping

// HealthState is the agent health (1 healthy … 4 unhealthy; 0 unknown).
type HealthState int

// Health states (proto HealthState).
const (
	HealthUnknown   HealthState = 0
	HealthHealthy   HealthState = 1
	HealthDegraded  HealthState = 2
	HealthDraining  HealthState = 3
	HealthUnhealthy HealthState = 4
)

// String returns the lower-case state name.
func (s HealthState) String() string {
	switch s {
	case HealthHealthy:
		return "healthy"
	case HealthDegraded:
		return "degraded"
	case HealthDraining:
		return "draining"
	case HealthUnhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// HealthStatus is message 0x30 (agent → proxy). Only `state` is read by
// the Rust proxy; the other keys are optional.
type HealthStatus struct {
	// AgentID is the reporting agent.
	AgentID string `json:"agent_id,omitempty"`
	// State is the health state.
	State HealthState `json:"state"`
	// Message is a human-readable detail.
	Message string `json:"message,omitempty"`
	// TimestampMs is the Unix time in milliseconds.
	TimestampMs uint64 `json:"timestamp_ms,omitempty"`
}

// FlowAction is a flow-control action.
type FlowAction int

// Flow actions (anything but Pause means resume).
const (
	FlowPause          FlowAction = 1
	FlowResume         FlowAction = 2
	FlowUpdateCapacity FlowAction = 3
)

// FlowControl is message 0x33 (agent → proxy).
type FlowControl struct {
	// Action is 1 pause, 2 resume (anything else = resume).
	Action FlowAction `json:"action"`
	// CorrelationID limits the signal to one request (optional; this
	// client applies every signal to the whole connection).
	CorrelationID string `json:"correlation_id,omitempty"`
	// BufferAvailable is the agent's free buffer (optional).
	BufferAvailable *uint64 `json:"buffer_available,omitempty"`
	// TimestampMs is the Unix time in milliseconds.
	TimestampMs uint64 `json:"timestamp_ms,omitempty"`
}

// CounterMetric is a counter in a MetricsReport.
type CounterMetric struct {
	// Name is the metric name.
	Name string `json:"name"`
	// Help is the description.
	Help string `json:"help,omitempty"`
	// Labels are the metric labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Value is the counter value.
	Value uint64 `json:"value"`
}

// GaugeMetric is a gauge in a MetricsReport.
type GaugeMetric struct {
	// Name is the metric name.
	Name string `json:"name"`
	// Help is the description.
	Help string `json:"help,omitempty"`
	// Labels are the metric labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Value is the gauge value.
	Value float64 `json:"value"`
}

// HistogramBucket is one bucket; Le is a number or the string "+Inf".
type HistogramBucket struct {
	// Le is the upper bound (JSON number or "+Inf").
	Le json.RawMessage `json:"le"`
	// Count is the cumulative count.
	Count uint64 `json:"count"`
}

// HistogramMetric is a histogram in a MetricsReport.
type HistogramMetric struct {
	// Name is the metric name.
	Name string `json:"name"`
	// Help is the description.
	Help string `json:"help,omitempty"`
	// Labels are the metric labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Sum is the sum of observations.
	Sum float64 `json:"sum"`
	// Count is the number of observations.
	Count uint64 `json:"count"`
	// Buckets are the buckets.
	Buckets []HistogramBucket `json:"buckets"`
}

// MetricsReport is message 0x31 (agent → proxy).
type MetricsReport struct {
	// AgentID is the reporting agent.
	AgentID string `json:"agent_id"`
	// TimestampMs is the Unix time in milliseconds.
	TimestampMs uint64 `json:"timestamp_ms"`
	// IntervalMs is the reporting interval.
	IntervalMs uint64 `json:"interval_ms"`
	// Counters are counter metrics.
	Counters []CounterMetric `json:"counters"`
	// Gauges are gauge metrics.
	Gauges []GaugeMetric `json:"gauges"`
	// Histograms are histogram metrics.
	Histograms []HistogramMetric `json:"histograms"`
}

// ConfigUpdateRequest is message 0x32 (agent → proxy). UpdateType is kept
// raw: {"type":"request_reload"} | {"type":"rule_update",…} | ….
type ConfigUpdateRequest struct {
	// UpdateType is the tagged update object.
	UpdateType json.RawMessage `json:"update_type"`
	// RequestID identifies the update request.
	RequestID string `json:"request_id"`
	// TimestampMs is the Unix time in milliseconds.
	TimestampMs uint64 `json:"timestamp_ms"`
}

// HandshakeRequest is message 0x01 (proxy → agent). The first five keys
// are the Rust dialect; ProtocolVersion, ClientName and SupportedFeatures
// are the Go-SDK dialect. The client's auto-detecting handshake sets both
// sets (each side ignores the other's keys).
type HandshakeRequest struct {
	// SupportedVersions lists the protocol versions the proxy speaks ([2]).
	SupportedVersions []uint32 `json:"supported_versions,omitempty"`
	// ProxyID names the proxy ("sentinel-proxy").
	ProxyID string `json:"proxy_id,omitempty"`
	// ProxyVersion is the proxy version.
	ProxyVersion string `json:"proxy_version,omitempty"`
	// Config is the agent configuration (the Rust proxy always sends null).
	Config json.RawMessage `json:"config,omitempty"`
	// SupportedEncodings lists "json"/"msgpack"; omitted when empty (= JSON only).
	SupportedEncodings []string `json:"supported_encodings,omitempty"`
	// ProtocolVersion is the SDK dialect's version field (2).
	ProtocolVersion uint32 `json:"protocol_version,omitempty"`
	// ClientName is the SDK dialect's proxy name.
	ClientName string `json:"client_name,omitempty"`
	// SupportedFeatures is the SDK dialect's feature list.
	SupportedFeatures []string `json:"supported_features,omitempty"`
}

// Features are the agent's feature flags (all nine keys always present).
type Features struct {
	// StreamingBody: the agent handles body chunks as they stream.
	StreamingBody bool `json:"streaming_body"`
	// WebSocket: the agent inspects WebSocket frames.
	WebSocket bool `json:"websocket"`
	// Guardrails: the agent answers GuardrailInspect.
	Guardrails bool `json:"guardrails"`
	// ConfigPush: the agent accepts configuration pushes.
	ConfigPush bool `json:"config_push"`
	// MetricsExport: the agent sends metrics reports.
	MetricsExport bool `json:"metrics_export"`
	// ConcurrentRequests is how many requests the agent handles at once.
	ConcurrentRequests uint32 `json:"concurrent_requests"`
	// Cancellation: the agent honours Cancel.
	Cancellation bool `json:"cancellation"`
	// FlowControl: the agent may send flow-control signals.
	FlowControl bool `json:"flow_control"`
	// HealthReporting: the agent sends health reports.
	HealthReporting bool `json:"health_reporting"`
}

// Limits are the agent's limits (all three keys always present).
type Limits struct {
	// MaxBodySize is the largest body the agent inspects.
	MaxBodySize uint64 `json:"max_body_size"`
	// MaxConcurrency is the agent's concurrency limit.
	MaxConcurrency uint32 `json:"max_concurrency"`
	// PreferredChunkSize is the preferred body chunk size.
	PreferredChunkSize uint64 `json:"preferred_chunk_size"`
}

// Capabilities are what the agent announces in its handshake response.
type Capabilities struct {
	// AgentID is the agent id.
	AgentID string `json:"agent_id"`
	// Name is the agent name.
	Name string `json:"name"`
	// Version is the agent version.
	Version string `json:"version"`
	// SupportedEvents are event codes (EventType).
	SupportedEvents []EventType `json:"supported_events"`
	// Features are the feature flags.
	Features Features `json:"features"`
	// Limits are the limits.
	Limits Limits `json:"limits"`
}

// HandshakeResponse is message 0x02 (agent → proxy), Rust dialect.
type HandshakeResponse struct {
	// ProtocolVersion is 2.
	ProtocolVersion uint32 `json:"protocol_version"`
	// Success false refuses the connection.
	Success bool `json:"success"`
	// Error is the refusal reason, null otherwise.
	Error OptString `json:"error"`
	// Encoding is the chosen payload encoding ("json").
	Encoding string `json:"encoding,omitempty"`
	// Capabilities describe the agent.
	Capabilities Capabilities `json:"capabilities"`
}

// SDKCapabilities are the Go-SDK dialect's capabilities object.
type SDKCapabilities struct {
	// HandlesRequestHeaders: the agent processes request headers.
	HandlesRequestHeaders bool `json:"handles_request_headers"`
	// HandlesRequestBody: the agent processes request bodies.
	HandlesRequestBody bool `json:"handles_request_body"`
	// HandlesResponseHeaders: the agent processes response headers.
	HandlesResponseHeaders bool `json:"handles_response_headers"`
	// HandlesResponseBody: the agent processes response bodies.
	HandlesResponseBody bool `json:"handles_response_body"`
	// SupportsStreaming: streaming body processing.
	SupportsStreaming bool `json:"supports_streaming"`
	// SupportsCancellation: the agent honours cancel requests.
	SupportsCancellation bool `json:"supports_cancellation"`
	// MaxConcurrentRequests is the concurrency limit, absent = none.
	MaxConcurrentRequests *uint32 `json:"max_concurrent_requests,omitempty"`
	// SupportedFeatures lists extra features.
	SupportedFeatures []string `json:"supported_features,omitempty"`
}

// SDKHandshakeResponse is message 0x02 in the Go-SDK dialect.
type SDKHandshakeResponse struct {
	// ProtocolVersion is 2.
	ProtocolVersion uint32 `json:"protocol_version"`
	// AgentName names the agent.
	AgentName string `json:"agent_name"`
	// Capabilities describe the agent (null on refusal).
	Capabilities *SDKCapabilities `json:"capabilities"`
	// Error is the refusal reason.
	Error string `json:"error,omitempty"`
	// Accepted false refuses the connection.
	Accepted bool `json:"accepted"`
}

// RegistrationHello is the first frame (type MsgRegistration 0x03, JSON) an
// agent sends after connecting to the proxy's registration listener
// (sdk.Register). The proxy checks AgentID and AuthToken; on success it runs
// the normal proxy-side handshake over the same connection (NewClient), on
// failure it closes the connection. Use WriteRegistrationHello /
// ReadRegistrationHello.
type RegistrationHello struct {
	// ProtocolVersion is 2.
	ProtocolVersion uint32 `json:"protocol_version"`
	// AgentID is the agent id (the KDL agent id it registers as).
	AgentID string `json:"agent_id"`
	// AuthToken is the shared secret, empty when none.
	AuthToken string `json:"auth_token,omitempty"`
	// Metadata is free-form information about the agent.
	Metadata map[string]string `json:"metadata,omitempty"`
}
