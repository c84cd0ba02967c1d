package protocol

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// handshakeUDS runs the handshake per opts.Dialect over connections from dial.
func handshakeUDS(ctx context.Context, dial func() (net.Conn, error), opts Options, addr string) (Client, error) {
	attempts := []Dialect{DialectAuto, DialectRust, DialectSDK}
	if opts.Dialect == DialectRust || opts.Dialect == DialectSDK {
		attempts = []Dialect{opts.Dialect}
	}
	var lastErr error
	for _, d := range attempts {
		conn, err := dial()
		if err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w (after: %v)", err, lastErr)
			}
			return nil, err
		}
		c, retry, err := handshakeOnce(ctx, conn, d, opts, addr)
		if err == nil {
			if cerr := c.configure(ctx); cerr != nil {
				_ = c.Close()
				return nil, cerr
			}
			return c, nil
		}
		_ = conn.Close()
		lastErr = err
		if !retry {
			return nil, err
		}
	}
	return nil, lastErr
}

func handshakeRequest(d Dialect, opts Options) HandshakeRequest {
	var hr HandshakeRequest
	if d == DialectAuto || d == DialectRust {
		hr.SupportedVersions = []uint32{ProtocolVersion}
		hr.ProxyID = opts.ProxyID
		hr.ProxyVersion = opts.ProxyVersion
		hr.Config = json.RawMessage("null")
		hr.SupportedEncodings = []string{"json"}
	}
	if d == DialectAuto || d == DialectSDK {
		hr.ProtocolVersion = ProtocolVersion
		hr.ClientName = opts.ProxyID
		hr.SupportedFeatures = []string{"cancellation", "flow_control", "health"}
	}
	return hr
}

// handshakeOnce sends one handshake in dialect d (DialectAuto = both key
// sets) and reads the answer. retry reports whether another dialect may work.
func handshakeOnce(ctx context.Context, conn net.Conn, d Dialect, opts Options, addr string) (*client, bool, error) {
	deadline := time.Now().Add(opts.HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	payload, _ := json.Marshal(handshakeRequest(d, opts))
	if err := WriteFrame(conn, MsgHandshakeRequest, payload); err != nil {
		return nil, true, fmt.Errorf("%w: sending handshake to %s: %v", ErrHandshake, addr, err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	f, err := ReadFrame(br, DialectAuto)
	if err != nil {
		retry := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isConnReset(err)
		return nil, retry, fmt.Errorf("%w: reading handshake response from %s (%s handshake): %v", ErrHandshake, addr, d, err)
	}
	if f.Type != MsgHandshakeResponse {
		return nil, false, fmt.Errorf("%w: %s answered the handshake with %s", ErrHandshake, addr, f.Type)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(f.Payload, &keys); err != nil {
		return nil, false, fmt.Errorf("%w: decoding handshake response from %s: %v", ErrHandshake, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	info := AgentInfo{Transport: "uds", Address: addr, Encoding: "json"}
	if _, rust := keys["success"]; rust && d != DialectSDK {
		var hr HandshakeResponse
		if err := json.Unmarshal(f.Payload, &hr); err != nil {
			return nil, false, fmt.Errorf("%w: decoding handshake response from %s: %v", ErrHandshake, addr, err)
		}
		if !hr.Success {
			return nil, false, fmt.Errorf("%w: agent %s refused: %s", ErrHandshake, addr, hr.Error)
		}
		if hr.Encoding != "" && hr.Encoding != "json" {
			return nil, false, fmt.Errorf("%w: agent %s chose encoding %q, only json was offered", ErrHandshake, addr, hr.Encoding)
		}
		info.Dialect = DialectRust
		info.ProtocolVersion = hr.ProtocolVersion
		info.Capabilities = hr.Capabilities
		tr := &rustTransport{conn: conn, br: br, writeTimeout: opts.WriteTimeout}
		return newClient(tr, info, opts), false, nil
	}
	if _, sdk := keys["accepted"]; sdk && d != DialectRust {
		var hr SDKHandshakeResponse
		if err := json.Unmarshal(f.Payload, &hr); err != nil {
			return nil, false, fmt.Errorf("%w: decoding SDK handshake response from %s: %v", ErrHandshake, addr, err)
		}
		if !hr.Accepted {
			retry := d == DialectAuto && strings.Contains(hr.Error, "version")
			return nil, retry, fmt.Errorf("%w: agent %s refused (SDK dialect): %s", ErrHandshake, addr, hr.Error)
		}
		info.Dialect = DialectSDK
		info.ProtocolVersion = hr.ProtocolVersion
		info.Capabilities = sdkCapabilities(hr)
		tr := &sdkTransport{conn: conn, br: br, writeTimeout: opts.WriteTimeout, ids: map[string]*sdkReq{}, byID: map[uint64]string{}}
		return newClient(tr, info, opts), false, nil
	}
	return nil, d == DialectAuto, fmt.Errorf("%w: handshake response from %s has neither \"success\" nor \"accepted\"", ErrHandshake, addr)
}

func isConnReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

func sdkCapabilities(hr SDKHandshakeResponse) Capabilities {
	c := Capabilities{AgentID: hr.AgentName, Name: hr.AgentName, Version: ""}
	if hr.Capabilities == nil {
		return c
	}
	sc := hr.Capabilities
	if sc.HandlesRequestHeaders {
		c.SupportedEvents = append(c.SupportedEvents, EventRequestHeaders)
	}
	if sc.HandlesRequestBody {
		c.SupportedEvents = append(c.SupportedEvents, EventRequestBodyChunk)
	}
	if sc.HandlesResponseHeaders {
		c.SupportedEvents = append(c.SupportedEvents, EventResponseHeaders)
	}
	if sc.HandlesResponseBody {
		c.SupportedEvents = append(c.SupportedEvents, EventResponseBodyChunk)
	}
	c.Features.StreamingBody = sc.SupportsStreaming
	c.Features.Cancellation = sc.SupportsCancellation
	if sc.MaxConcurrentRequests != nil {
		c.Features.ConcurrentRequests = *sc.MaxConcurrentRequests
		c.Limits.MaxConcurrency = *sc.MaxConcurrentRequests
	}
	return c
}

// ---------------------------------------------------------------- Rust dialect

type rustTransport struct {
	conn         net.Conn
	br           *bufio.Reader
	writeTimeout time.Duration
}

type encodedFrame []byte

func (t *rustTransport) encode(m *outMsg) (any, error) {
	var mt MessageType
	var v any
	switch m.kind {
	case outPing:
		mt, v = MsgPing, m.ping
	case outCancel:
		mt, v = MsgCancel, m.cancel
	default:
		mt = m.ev.EventType().MessageType()
		if mt == 0 {
			return nil, fmt.Errorf("%w: event type %d", ErrUnsupported, m.ev.EventType())
		}
		v = withTopLevelCorrelation(m.ev)
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", mt, err)
	}
	return AppendFrame(nil, mt, payload)
}

// withTopLevelCorrelation returns the event with its top-level
// correlation_id set (the Rust proxy adds it to every event object).
func withTopLevelCorrelation(ev Event) Event {
	switch e := ev.(type) {
	case *RequestHeaders:
		if e.CorrelationID == "" {
			cp := *e
			cp.CorrelationID = e.Metadata.CorrelationID
			return &cp
		}
	case *Configure:
		if len(e.Config) == 0 {
			cp := *e
			cp.Config = json.RawMessage("null")
			return &cp
		}
	}
	return ev
}

func (t *rustTransport) write(v any) error {
	buf, _ := v.([]byte)
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.writeTimeout))
	if _, err := t.conn.Write(buf); err != nil {
		return fmt.Errorf("writing to agent: %w", err)
	}
	return nil
}

func (t *rustTransport) read() (inMsg, error) {
	f, err := ReadFrame(t.br, DialectRust)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return inMsg{}, fmt.Errorf("%w: agent closed the connection", ErrClosed)
		}
		return inMsg{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return decodeRustInbound(f)
}

func decodeRustInbound(f Frame) (inMsg, error) {
	switch f.Type {
	case MsgAgentResponse:
		r, err := DecodeResponse(f.Payload)
		if err != nil {
			return inMsg{}, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return inMsg{kind: inResponse, corr: r.CorrelationID(), resp: r}, nil
	case MsgPong:
		var p Ping
		_ = json.Unmarshal(f.Payload, &p)
		return inMsg{kind: inPong, pingTS: p.TimestampMs}, nil
	case MsgHealthStatus:
		var h HealthStatus
		if err := json.Unmarshal(f.Payload, &h); err != nil {
			return inMsg{}, fmt.Errorf("%w: HealthStatus: %v", ErrProtocol, err)
		}
		return inMsg{kind: inHealth, health: h}, nil
	case MsgFlowControl:
		var fc FlowControl
		if err := json.Unmarshal(f.Payload, &fc); err != nil {
			return inMsg{}, fmt.Errorf("%w: FlowControl: %v", ErrProtocol, err)
		}
		return inMsg{kind: inFlow, flow: fc}, nil
	case MsgMetricsReport:
		var mr MetricsReport
		if err := json.Unmarshal(f.Payload, &mr); err != nil {
			return inMsg{kind: inIgnore}, nil
		}
		return inMsg{kind: inMetrics, metrics: mr}, nil
	case MsgConfigUpdateRequest:
		var cu ConfigUpdateRequest
		if err := json.Unmarshal(f.Payload, &cu); err != nil {
			return inMsg{kind: inIgnore}, nil
		}
		return inMsg{kind: inConfigUpdate, cfg: cu}, nil
	}
	return inMsg{kind: inIgnore}, nil
}

func (t *rustTransport) close() error { return t.conn.Close() }

func (t *rustTransport) sweep(time.Duration) {}

// ---------------------------------------------------------------- SDK dialect

type sdkReq struct {
	id      uint64
	created time.Time
}

// sdkTransport speaks the Go-SDK dialect: numeric request ids per
// correlation id (allocated at the first event of a request, freed on
// RequestComplete / Cancel or after 5 minutes).
type sdkTransport struct {
	conn         net.Conn
	br           *bufio.Reader
	writeTimeout time.Duration

	mu     sync.Mutex
	nextID uint64
	ids    map[string]*sdkReq
	byID   map[uint64]string
}

// SDKRequestMetadata is the Go-SDK dialect's request metadata.
type SDKRequestMetadata struct {
	// CorrelationID is the proxy's trace id.
	CorrelationID string `json:"correlation_id"`
	// ClientIP is the client address.
	ClientIP string `json:"client_ip"`
	// ClientPort is the client port.
	ClientPort int `json:"client_port"`
	// ServerName is the request host.
	ServerName *string `json:"server_name,omitempty"`
	// Protocol is the HTTP protocol.
	Protocol string `json:"protocol"`
	// TLSVersion is the TLS version.
	TLSVersion *string `json:"tls_version,omitempty"`
	// RouteID is the route id.
	RouteID *string `json:"route_id,omitempty"`
	// UpstreamID is the upstream id.
	UpstreamID *string `json:"upstream_id,omitempty"`
	// Traceparent is the W3C traceparent.
	Traceparent *string `json:"traceparent,omitempty"`
}

// SDKRequestHeaders is the Go-SDK dialect's RequestHeaders (0x10).
type SDKRequestHeaders struct {
	// RequestID is the numeric request id.
	RequestID uint64 `json:"request_id"`
	// Method is the request method.
	Method string `json:"method"`
	// URI is the normalised path plus query (see RequestHeaders.URI).
	URI string `json:"uri"`
	// RawURI is the path as received plus query (Sentinel extension).
	RawURI string `json:"raw_uri,omitempty"`
	// Headers maps names to values.
	Headers map[string][]string `json:"headers"`
	// HasBody tells whether a body follows.
	HasBody bool `json:"has_body"`
	// Metadata describes the request.
	Metadata SDKRequestMetadata `json:"metadata"`
}

// SDKBodyChunk is the Go-SDK dialect's request/response body chunk (0x11/0x13).
type SDKBodyChunk struct {
	// RequestID is the numeric request id.
	RequestID uint64 `json:"request_id"`
	// ChunkIndex is the chunk number.
	ChunkIndex uint32 `json:"chunk_index"`
	// Data is the chunk (base64).
	Data []byte `json:"data"`
	// IsLast marks the last chunk.
	IsLast bool `json:"is_last"`
}

// SDKResponseHeaders is the Go-SDK dialect's ResponseHeaders (0x12).
type SDKResponseHeaders struct {
	// RequestID is the numeric request id.
	RequestID uint64 `json:"request_id"`
	// StatusCode is the HTTP status.
	StatusCode uint16 `json:"status_code"`
	// Headers maps names to values.
	Headers map[string][]string `json:"headers"`
	// HasBody tells whether a body follows.
	HasBody bool `json:"has_body"`
}

// SDKDecision is the Go-SDK dialect's Decision (0x20).
type SDKDecision struct {
	// RequestID is the numeric request id.
	RequestID uint64 `json:"request_id"`
	// Decision is the tagged decision ({"needs_more":true} = allow + needs more).
	Decision json.RawMessage `json:"decision"`
	// RequestHeaders are {"operation","name","value"} ops.
	RequestHeaders []HeaderOp `json:"request_headers,omitempty"`
	// ResponseHeaders are {"operation","name","value"} ops.
	ResponseHeaders []HeaderOp `json:"response_headers,omitempty"`
	// Audit is free-form audit metadata.
	Audit *Audit `json:"audit,omitempty"`
	// NeedsMore is accepted as a top-level flag too.
	NeedsMore bool `json:"needs_more,omitempty"`
}

// SDKCancel is the Go-SDK dialect's CancelRequest (0x30).
type SDKCancel struct {
	// RequestID is the numeric request id.
	RequestID uint64 `json:"request_id"`
	// Reason is a text reason.
	Reason *string `json:"reason,omitempty"`
}

// SDKPing is the Go-SDK dialect's Ping/Pong (0xF0/0xF1) payload.
type SDKPing struct {
	// Timestamp is the sender's time (the proxy sends Unix milliseconds).
	Timestamp int64 `json:"timestamp"`
}

func (t *sdkTransport) idFor(corr string, create bool) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.ids[corr]; ok {
		return r.id, true
	}
	if !create {
		return 0, false
	}
	t.nextID++
	t.ids[corr] = &sdkReq{id: t.nextID, created: time.Now()}
	t.byID[t.nextID] = corr
	return t.nextID, true
}

func (t *sdkTransport) free(corr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.ids[corr]; ok {
		delete(t.byID, r.id)
		delete(t.ids, corr)
	}
}

func (t *sdkTransport) sweep(ttl time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cut := time.Now().Add(-ttl)
	for corr, r := range t.ids {
		if r.created.Before(cut) {
			delete(t.byID, r.id)
			delete(t.ids, corr)
		}
	}
}

func optPtr(s OptString) *string {
	if s == "" {
		return nil
	}
	v := string(s)
	return &v
}

func hasBody(h map[string][]string) bool {
	for k, v := range h {
		lk := strings.ToLower(k)
		if lk == "transfer-encoding" {
			return true
		}
		if lk == "content-length" && len(v) > 0 && v[0] != "0" {
			return true
		}
	}
	return false
}

func (t *sdkTransport) encode(m *outMsg) (any, error) {
	var mt MessageType
	var v any
	switch m.kind {
	case outPing:
		mt, v = SDKMsgPing, SDKPing{Timestamp: int64(m.ping.TimestampMs)}
	case outCancel:
		id, ok := t.idFor(m.cancel.CorrelationID, false)
		if !ok {
			return nil, nil
		}
		t.free(m.cancel.CorrelationID)
		reason := m.cancel.Reason.String()
		mt, v = SDKMsgCancelRequest, SDKCancel{RequestID: id, Reason: &reason}
	default:
		corr := m.ev.Correlation()
		switch e := m.ev.(type) {
		case *RequestHeaders:
			id, _ := t.idFor(corr, true)
			mt, v = MsgRequestHeaders, SDKRequestHeaders{
				RequestID: id, Method: e.Method, URI: e.URI, RawURI: e.RawURI, Headers: e.Headers, HasBody: hasBody(e.Headers),
				Metadata: SDKRequestMetadata{
					CorrelationID: corr, ClientIP: e.Metadata.ClientIP, ClientPort: int(e.Metadata.ClientPort),
					ServerName: optPtr(e.Metadata.ServerName), Protocol: e.Metadata.Protocol,
					TLSVersion: optPtr(e.Metadata.TLSVersion), RouteID: optPtr(e.Metadata.RouteID),
					UpstreamID: optPtr(e.Metadata.UpstreamID), Traceparent: optPtr(OptString(e.Metadata.Traceparent)),
				},
			}
		case *RequestBodyChunk:
			id, _ := t.idFor(corr, true)
			mt, v = MsgRequestBodyChunk, SDKBodyChunk{RequestID: id, ChunkIndex: e.ChunkIndex, Data: nonNil(e.Data), IsLast: e.IsLast}
		case *ResponseHeaders:
			id, _ := t.idFor(corr, true)
			mt, v = MsgResponseHeaders, SDKResponseHeaders{RequestID: id, StatusCode: e.Status, Headers: e.Headers, HasBody: hasBody(e.Headers)}
		case *ResponseBodyChunk:
			id, _ := t.idFor(corr, true)
			mt, v = MsgResponseBodyChunk, SDKBodyChunk{RequestID: id, ChunkIndex: e.ChunkIndex, Data: nonNil(e.Data), IsLast: e.IsLast}
		case *RequestComplete:
			t.free(corr)
			if m.kind == outEvent {
				return nil, fmt.Errorf("%w: RequestComplete cannot be answered in the Go-SDK UDS dialect (use Notify)", ErrUnsupported)
			}
			return nil, nil // the SDK dialect has no such message
		default:
			return nil, fmt.Errorf("%w: %s in the Go-SDK UDS dialect", ErrUnsupported, m.ev.EventType())
		}
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", mt, err)
	}
	return AppendFrame(nil, mt, payload)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (t *sdkTransport) write(v any) error {
	buf, _ := v.([]byte)
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.writeTimeout))
	if _, err := t.conn.Write(buf); err != nil {
		return fmt.Errorf("writing to agent: %w", err)
	}
	return nil
}

func (t *sdkTransport) read() (inMsg, error) {
	f, err := ReadFrame(t.br, DialectSDK)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return inMsg{}, fmt.Errorf("%w: agent closed the connection", ErrClosed)
		}
		return inMsg{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	switch f.Type {
	case SDKMsgDecision:
		r, id, err := DecodeSDKDecision(f.Payload)
		if err != nil {
			return inMsg{}, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		t.mu.Lock()
		corr, ok := t.byID[id]
		t.mu.Unlock()
		if !ok {
			return inMsg{kind: inIgnore}, nil
		}
		r.SetCorrelationID(corr)
		return inMsg{kind: inResponse, corr: corr, resp: r}, nil
	case SDKMsgPong:
		var p SDKPing
		_ = json.Unmarshal(f.Payload, &p)
		return inMsg{kind: inPong, pingTS: uint64(p.Timestamp)}, nil
	case SDKMsgHealthResponse:
		var h struct {
			Healthy *bool  `json:"healthy"`
			Status  string `json:"status"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(f.Payload, &h)
		st := HealthHealthy
		if (h.Healthy != nil && !*h.Healthy) || h.Status == "unhealthy" {
			st = HealthUnhealthy
		}
		return inMsg{kind: inHealth, health: HealthStatus{State: st, Message: h.Message}}, nil
	}
	return inMsg{kind: inIgnore}, nil
}

// DecodeSDKDecision decodes a Go-SDK dialect Decision payload into a
// Response and its numeric request id. Errors name the field.
func DecodeSDKDecision(b []byte) (*Response, uint64, error) {
	var d SDKDecision
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, 0, fmt.Errorf("%w: SDK decision: %v", ErrBadResponse, err)
	}
	r := &Response{Version: ProtocolVersion, RequestHeaders: d.RequestHeaders, ResponseHeaders: d.ResponseHeaders, NeedsMore: d.NeedsMore}
	if len(d.Decision) == 0 {
		return nil, 0, fmt.Errorf("%w: SDK decision: field \"decision\" missing", ErrBadResponse)
	}
	var nm struct {
		NeedsMore bool `json:"needs_more"`
	}
	if json.Unmarshal(d.Decision, &nm) == nil && nm.NeedsMore {
		r.NeedsMore = true
	}
	if err := json.Unmarshal(d.Decision, &r.Decision); err != nil {
		return nil, 0, fmt.Errorf("%w: SDK decision: field \"decision\": %v", ErrBadResponse, err)
	}
	if d.Audit != nil {
		r.Audit = *d.Audit
	}
	return r, d.RequestID, nil
}

func (t *sdkTransport) close() error { return t.conn.Close() }
