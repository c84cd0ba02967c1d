package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Defaults of the original Sentinel (see docs/agents.md).
const (
	defaultTimeout            = time.Second
	defaultChunkTimeout       = 5 * time.Second
	defaultMaxBodyBytes       = 1 << 20
	defaultHybridBytes        = 64 << 10
	defaultChunkBytes         = 64 << 10
	defaultMaxConcurrentCalls = 100
	defaultQueueDepth         = 100
	defaultConnections        = 4
	defaultConnectTimeout     = 5 * time.Second
	defaultReconnectBackoff   = 5 * time.Second
	defaultMaxBackoff         = 30 * time.Second
	defaultHealthInterval     = 10 * time.Second
	defaultDrainTimeout       = 30 * time.Second
)

// The events an agent may ask for (KDL `events`).
const (
	EventRequestHeaders  = "request_headers"
	EventRequestBody     = "request_body"
	EventResponseHeaders = "response_headers"
	EventResponseBody    = "response_body"
	EventRequestComplete = "request_complete"
	EventWebSocketFrame  = "websocket_frame"
	EventGuardrail       = "guardrail"
)

var knownEvents = map[string]string{
	"request_headers": EventRequestHeaders, "request_body": EventRequestBody,
	"response_headers": EventResponseHeaders, "response_body": EventResponseBody,
	"request_complete": EventRequestComplete, "log": EventRequestComplete,
	"websocket_frame": EventWebSocketFrame, "guardrail": EventGuardrail,
}

// AgentConfig is one external agent: where it listens, what it is sent,
// and how the proxy protects itself from it.
type AgentConfig struct {
	// ID names the agent; filters refer to it.
	ID string `json:"id,omitempty"`
	// Type is informational (`waf`, `auth`, `rate_limit`, custom).
	Type string `json:"type,omitempty"`
	// UnixSocket is the path of the agent's Unix socket (UDS transport,
	// protocol v2 with binary framing). Exactly one of UnixSocket and
	// GRPC is given.
	UnixSocket string `json:"unix_socket,omitempty"`
	// GRPC is the agent's gRPC address, `http://host:port` (plain) or
	// `https://host:port` (TLS).
	GRPC string `json:"grpc,omitempty"`
	// GRPCPackage is the proto package of the gRPC service:
	// `sentinel.agent.v2` (default) or `zentinel.agent.v2`; the other is
	// tried when the agent answers Unimplemented.
	GRPCPackage string `json:"grpc_package,omitempty"`
	// TLS configures TLS to a gRPC agent.
	TLS *TLSConfig `json:"tls,omitempty"`
	// Events are the events sent to the agent (default
	// `request_headers`): request_headers, request_body,
	// response_headers, response_body, request_complete (alias log),
	// websocket_frame, guardrail.
	Events []string `json:"events,omitempty"`
	// Timeout bounds each call (default 1s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// ChunkTimeout bounds each body-chunk call (default 5s).
	ChunkTimeout caddy.Duration `json:"chunk_timeout,omitempty"`
	// FailureMode is `open` (default: a failing agent is skipped) or
	// `closed` (503/504/413 answers).
	FailureMode string `json:"failure_mode,omitempty"`
	// CircuitBreaker is the agent's breaker (5 failures open it for 30s).
	CircuitBreaker *BreakerConfig `json:"circuit_breaker,omitempty"`
	// MaxRequestBodyBytes is the largest request body sent (default 1 MiB).
	MaxRequestBodyBytes int64 `json:"max_request_body_bytes,omitempty"`
	// MaxResponseBodyBytes is the largest response body sent (default 1 MiB).
	MaxResponseBodyBytes int64 `json:"max_response_body_bytes,omitempty"`
	// RequestBodyMode is `buffer` (default), `stream` or `hybrid`.
	RequestBodyMode string `json:"request_body_mode,omitempty"`
	// ResponseBodyMode is `buffer` (default), `stream` or `hybrid`.
	ResponseBodyMode string `json:"response_body_mode,omitempty"`
	// HybridBufferBytes is what hybrid mode buffers before it streams
	// (default 64 KiB).
	HybridBufferBytes int64 `json:"hybrid_buffer_bytes,omitempty"`
	// ChunkBytes is the largest chunk sent in stream mode (default 64 KiB).
	ChunkBytes int64 `json:"chunk_bytes,omitempty"`
	// MaxConcurrentCalls limits the agent's calls in flight (default 100).
	MaxConcurrentCalls int `json:"max_concurrent_calls,omitempty"`
	// Config is delivered to the agent at the handshake and in a
	// Configure event.
	Config json.RawMessage `json:"config,omitempty"`
	// Pool holds the connection pool settings.
	Pool *PoolConfig `json:"pool,omitempty"`
}

// TLSConfig is TLS from the proxy to a gRPC agent.
type TLSConfig struct {
	// Insecure skips the verification of the agent's certificate.
	Insecure bool `json:"insecure,omitempty"`
	// CACert is a PEM file of CAs that sign the agent's certificate.
	CACert string `json:"ca_cert,omitempty"`
	// ClientCert is the proxy's certificate (PEM file) for mTLS.
	ClientCert string `json:"client_cert,omitempty"`
	// ClientKey is the key of ClientCert.
	ClientKey string `json:"client_key,omitempty"`
	// ServerName overrides the name checked in the agent's certificate.
	ServerName string `json:"server_name,omitempty"`
}

// BreakerConfig is an agent's circuit breaker.
type BreakerConfig struct {
	// FailureThreshold is the number of failures in a row that open the
	// breaker (default 5).
	FailureThreshold int `json:"failure_threshold,omitempty"`
	// SuccessThreshold is the number of half-open successes that close it
	// (default 2).
	SuccessThreshold int `json:"success_threshold,omitempty"`
	// Timeout is how long the breaker stays open (default 30s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// HalfOpenMaxRequests is the number of probes let through at a time
	// when half-open (default 1).
	HalfOpenMaxRequests int `json:"half_open_max_requests,omitempty"`
}

// PoolConfig is an agent's connection pool (the original hard-coded it).
type PoolConfig struct {
	// Connections is the number of connections to the agent (default 4);
	// calls are spread round robin over the connected ones.
	Connections int `json:"connections,omitempty"`
	// ConnectTimeout bounds a connection attempt with its handshake
	// (default 5s).
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`
	// ReconnectBackoff is the first wait after a failed connection; it
	// doubles up to MaxReconnectBackoff (default 5s).
	ReconnectBackoff caddy.Duration `json:"reconnect_backoff,omitempty"`
	// MaxReconnectBackoff caps the reconnect wait (default 30s).
	MaxReconnectBackoff caddy.Duration `json:"max_reconnect_backoff,omitempty"`
	// QueueDepth is the number of calls that may wait for a free slot
	// when MaxConcurrentCalls are in flight (default 100); more fail at
	// once.
	QueueDepth *int `json:"queue_depth,omitempty"`
	// HealthCheckInterval is the interval of the health pings (default
	// 10s; negative turns them off).
	HealthCheckInterval caddy.Duration `json:"health_check_interval,omitempty"`
	// DrainTimeout is how long in-flight calls may finish when the agent
	// is removed or changed by a reload (default 30s); then they are
	// cancelled.
	DrainTimeout caddy.Duration `json:"drain_timeout,omitempty"`
}

// settings are an agent's configuration with the defaults applied.
type settings struct {
	id, typ              string
	network, address     string // "unix" path, or "grpc" host:port
	grpcTLS              bool
	grpcPackage          string
	tls                  *TLSConfig
	events               map[string]bool
	timeout, chunkTO     time.Duration
	failClosed           bool
	breaker              *BreakerConfig
	maxReqBody, maxResp  int64
	reqMode, respMode    string
	hybridBytes, chunk   int64
	concurrency, queue   int
	connections          int
	connectTO            time.Duration
	backoff, maxBackoff  time.Duration
	healthEvery, drainTO time.Duration
	config               json.RawMessage
	hash                 string
}

// parseFailureMode accepts the original's spellings.
func parseFailureMode(s string) (closed bool, err error) {
	switch strings.ToLower(strings.ReplaceAll(s, "_", "-")) {
	case "", "open", "fail-open":
		return false, nil
	case "closed", "fail-closed":
		return true, nil
	}
	return false, fmt.Errorf("failure mode %q is not open or closed", s)
}

// parseBodyMode checks a body mode; "hybrid:N" sets the hybrid buffer.
func parseBodyMode(s string, hybrid *int64) (string, error) {
	s = strings.ToLower(s)
	if n, ok := strings.CutPrefix(s, "hybrid:"); ok {
		var v int64
		if _, err := fmt.Sscan(n, &v); err != nil || v <= 0 {
			return "", fmt.Errorf("body mode %q: hybrid needs a positive byte count", s)
		}
		*hybrid = v
		return "hybrid", nil
	}
	switch s {
	case "":
		return "buffer", nil
	case "buffer", "stream", "hybrid":
		return s, nil
	}
	return "", fmt.Errorf("body mode %q is not buffer, stream or hybrid", s)
}

func durOr(d caddy.Duration, def time.Duration) time.Duration {
	if d != 0 {
		return time.Duration(d)
	}
	return def
}

func intOr(v, def int) int {
	if v != 0 {
		return v
	}
	return def
}

func int64Or(v, def int64) int64 {
	if v != 0 {
		return v
	}
	return def
}

// resolve validates the agent's configuration and applies the defaults.
func (c *AgentConfig) resolve() (*settings, error) {
	if c.ID == "" {
		return nil, fmt.Errorf("agent without an id")
	}
	s := &settings{id: c.ID, typ: c.Type, tls: c.TLS, breaker: c.CircuitBreaker, config: c.Config}
	fail := func(format string, args ...any) (*settings, error) {
		return nil, fmt.Errorf("agent %q: "+format, append([]any{c.ID}, args...)...)
	}
	switch {
	case c.UnixSocket != "" && c.GRPC != "":
		return fail("give unix_socket or grpc, not both")
	case c.UnixSocket != "":
		s.network, s.address = "unix", c.UnixSocket
		if c.TLS != nil {
			return fail("tls applies to grpc agents only")
		}
	case c.GRPC != "":
		u, err := url.Parse(c.GRPC)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc" && u.Scheme != "grpcs") {
			return fail("grpc %q is not an http://host:port or https://host:port address", c.GRPC)
		}
		s.network, s.address = "grpc", u.Host
		s.grpcTLS = u.Scheme == "https" || u.Scheme == "grpcs" || c.TLS != nil
	default:
		return fail("needs a transport: unix_socket or grpc")
	}
	switch c.GRPCPackage {
	case "", "sentinel.agent.v2", "zentinel.agent.v2":
		s.grpcPackage = c.GRPCPackage
	default:
		return fail("grpc_package %q is not sentinel.agent.v2 or zentinel.agent.v2", c.GRPCPackage)
	}
	s.events = map[string]bool{}
	for _, e := range c.Events {
		ev, ok := knownEvents[strings.ReplaceAll(strings.ToLower(e), "-", "_")]
		if !ok {
			return fail("unknown event %q (request_headers, request_body, response_headers, response_body, request_complete, websocket_frame, guardrail)", e)
		}
		s.events[ev] = true
	}
	if len(s.events) == 0 {
		s.events[EventRequestHeaders] = true
	}
	var err error
	if s.failClosed, err = parseFailureMode(c.FailureMode); err != nil {
		return fail("%v", err)
	}
	s.timeout = durOr(c.Timeout, defaultTimeout)
	s.chunkTO = durOr(c.ChunkTimeout, defaultChunkTimeout)
	if s.timeout < 0 || s.chunkTO < 0 {
		return fail("timeouts must be positive")
	}
	s.maxReqBody = int64Or(c.MaxRequestBodyBytes, defaultMaxBodyBytes)
	s.maxResp = int64Or(c.MaxResponseBodyBytes, defaultMaxBodyBytes)
	s.hybridBytes = int64Or(c.HybridBufferBytes, defaultHybridBytes)
	s.chunk = int64Or(c.ChunkBytes, defaultChunkBytes)
	if s.maxReqBody < 0 || s.maxResp < 0 || s.hybridBytes < 0 || s.chunk < 0 {
		return fail("byte sizes must be positive")
	}
	if s.reqMode, err = parseBodyMode(c.RequestBodyMode, &s.hybridBytes); err != nil {
		return fail("%v", err)
	}
	if s.respMode, err = parseBodyMode(c.ResponseBodyMode, &s.hybridBytes); err != nil {
		return fail("%v", err)
	}
	s.concurrency = intOr(c.MaxConcurrentCalls, defaultMaxConcurrentCalls)
	if s.concurrency < 0 {
		return fail("max_concurrent_calls must be positive")
	}
	p := c.Pool
	if p == nil {
		p = &PoolConfig{}
	}
	s.connections = intOr(p.Connections, defaultConnections)
	s.queue = defaultQueueDepth
	if p.QueueDepth != nil {
		s.queue = *p.QueueDepth
	}
	s.connectTO = durOr(p.ConnectTimeout, defaultConnectTimeout)
	s.backoff = durOr(p.ReconnectBackoff, defaultReconnectBackoff)
	s.maxBackoff = durOr(p.MaxReconnectBackoff, defaultMaxBackoff)
	s.healthEvery = durOr(p.HealthCheckInterval, defaultHealthInterval)
	s.drainTO = durOr(p.DrainTimeout, defaultDrainTimeout)
	if s.connections < 1 || s.connections > 1024 || s.queue < 0 || s.connectTO < 0 || s.backoff < 0 || s.drainTO < 0 {
		return fail("pool: connections must be 1…1024, queue_depth, timeouts and backoff not negative")
	}
	if s.maxBackoff < s.backoff {
		s.maxBackoff = s.backoff
	}
	if c.CircuitBreaker != nil {
		b := c.CircuitBreaker
		if b.FailureThreshold < 0 || b.SuccessThreshold < 0 || b.HalfOpenMaxRequests < 0 || b.Timeout < 0 {
			return fail("circuit_breaker values must not be negative")
		}
	}
	if len(c.Config) > 0 && !json.Valid(c.Config) {
		return fail("config is not valid JSON")
	}
	raw, _ := json.Marshal(c)
	sum := sha256.Sum256(raw)
	s.hash = hex.EncodeToString(sum[:8])
	return s, nil
}
