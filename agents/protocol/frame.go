// Package protocol implements the Sentinel/Zentinel external agent protocol
// v2: the UDS binary framing with JSON payloads (two dialects: the Rust
// proxy / agent-server code, and the official Go SDK), the gRPC transport
// (packages sentinel.agent.v2 and zentinel.agent.v2), every message type
// as a Go struct with the exact JSON keys, and the proxy-side Client that
// multiplexes many concurrent calls over one agent connection.
//
// See docs/agents-protocol.md and the shared reference (shared/reference/sentinel-agent-protocol.md).
package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrameLength is the largest accepted value of the 4-byte length prefix
// (type byte + payload): 16 MiB, as MAX_UDS_MESSAGE_SIZE in the Rust code.
const MaxFrameLength = 16 * 1024 * 1024

// MaxPayloadSize is the largest payload WriteFrame emits, so that the
// resulting length (payload + 1) is still accepted by every reader.
const MaxPayloadSize = MaxFrameLength - 1

// MessageType is the type byte of a UDS v2 frame.
type MessageType byte

// Message types of the Rust dialect (v2/uds.rs MessageType).
const (
	MsgHandshakeRequest    MessageType = 0x01
	MsgHandshakeResponse   MessageType = 0x02
	MsgRegistration        MessageType = 0x03 // Sentinel extension: RegistrationHello (agent → proxy, first frame of a registered connection)
	MsgRequestHeaders      MessageType = 0x10
	MsgRequestBodyChunk    MessageType = 0x11
	MsgResponseHeaders     MessageType = 0x12
	MsgResponseBodyChunk   MessageType = 0x13
	MsgRequestComplete     MessageType = 0x14
	MsgWebSocketFrame      MessageType = 0x15
	MsgGuardrailInspect    MessageType = 0x16
	MsgConfigure           MessageType = 0x17
	MsgAgentResponse       MessageType = 0x20
	MsgHealthStatus        MessageType = 0x30
	MsgMetricsReport       MessageType = 0x31
	MsgConfigUpdateRequest MessageType = 0x32
	MsgFlowControl         MessageType = 0x33
	MsgCancel              MessageType = 0x40
	MsgPing                MessageType = 0x41
	MsgPong                MessageType = 0x42
)

// Message types of the Go-SDK dialect (zentinel-agent-go-sdk v2/protocol.go)
// that differ from the Rust dialect.
const (
	SDKMsgDecision        MessageType = 0x20
	SDKMsgBodyMutation    MessageType = 0x21
	SDKMsgCancelRequest   MessageType = 0x30
	SDKMsgCancelAll       MessageType = 0x31
	SDKMsgRegistrationAck MessageType = 0x04
	SDKMsgHealthRequest   MessageType = 0xE0
	SDKMsgHealthResponse  MessageType = 0xE1
	SDKMsgMetricsRequest  MessageType = 0xE2
	SDKMsgMetricsResponse MessageType = 0xE3
	SDKMsgPing            MessageType = 0xF0
	SDKMsgPong            MessageType = 0xF1
)

// String names the type (Rust dialect names; SDK-only ids get SDK names).
func (t MessageType) String() string {
	switch t {
	case MsgHandshakeRequest:
		return "HandshakeRequest"
	case MsgHandshakeResponse:
		return "HandshakeResponse"
	case MsgRegistration:
		return "Registration"
	case SDKMsgRegistrationAck:
		return "RegistrationAck"
	case MsgRequestHeaders:
		return "RequestHeaders"
	case MsgRequestBodyChunk:
		return "RequestBodyChunk"
	case MsgResponseHeaders:
		return "ResponseHeaders"
	case MsgResponseBodyChunk:
		return "ResponseBodyChunk"
	case MsgRequestComplete:
		return "RequestComplete"
	case MsgWebSocketFrame:
		return "WebSocketFrame"
	case MsgGuardrailInspect:
		return "GuardrailInspect"
	case MsgConfigure:
		return "Configure"
	case MsgAgentResponse:
		return "AgentResponse"
	case SDKMsgBodyMutation:
		return "BodyMutation"
	case MsgHealthStatus:
		return "HealthStatus"
	case MsgMetricsReport:
		return "MetricsReport"
	case MsgConfigUpdateRequest:
		return "ConfigUpdateRequest"
	case MsgFlowControl:
		return "FlowControl"
	case MsgCancel:
		return "Cancel"
	case MsgPing:
		return "Ping"
	case MsgPong:
		return "Pong"
	case SDKMsgHealthRequest:
		return "HealthRequest"
	case SDKMsgHealthResponse:
		return "HealthResponse"
	case SDKMsgMetricsRequest:
		return "MetricsRequest"
	case SDKMsgMetricsResponse:
		return "MetricsResponse"
	case SDKMsgPing:
		return "SDKPing"
	case SDKMsgPong:
		return "SDKPong"
	}
	return fmt.Sprintf("Unknown(0x%02X)", byte(t))
}

// Known reports whether t is a message type of dialect d. DialectAuto
// accepts the union of both dialects (used before the handshake told which
// one the peer speaks).
func (t MessageType) Known(d Dialect) bool {
	rust := false
	switch t {
	case MsgHandshakeRequest, MsgHandshakeResponse, MsgRegistration,
		MsgRequestHeaders, MsgRequestBodyChunk, MsgResponseHeaders, MsgResponseBodyChunk,
		MsgRequestComplete, MsgWebSocketFrame, MsgGuardrailInspect, MsgConfigure,
		MsgAgentResponse, MsgHealthStatus, MsgMetricsReport, MsgConfigUpdateRequest,
		MsgFlowControl, MsgCancel, MsgPing, MsgPong:
		rust = true
	}
	sdk := false
	switch t {
	case MsgHandshakeRequest, MsgHandshakeResponse, MsgRegistration, SDKMsgRegistrationAck,
		MsgRequestHeaders, MsgRequestBodyChunk, MsgResponseHeaders, MsgResponseBodyChunk,
		SDKMsgDecision, SDKMsgBodyMutation, SDKMsgCancelRequest, SDKMsgCancelAll,
		SDKMsgHealthRequest, SDKMsgHealthResponse, SDKMsgMetricsRequest, SDKMsgMetricsResponse,
		SDKMsgPing, SDKMsgPong:
		sdk = true
	}
	switch d {
	case DialectRust:
		return rust
	case DialectSDK:
		return sdk
	default:
		return rust || sdk
	}
}

// Frame is one UDS v2 message: a type byte and its payload.
type Frame struct {
	// Type is the message type id.
	Type MessageType
	// Payload is the message body (JSON in every dialect this package speaks).
	Payload []byte
}

// Framing errors. ReadFrame wraps them with the offending values.
var (
	// ErrZeroLength is a frame whose length prefix is 0.
	ErrZeroLength = errors.New("zero-length message")
	// ErrFrameTooLarge is a frame whose length prefix exceeds MaxFrameLength,
	// or a payload WriteFrame refuses.
	ErrFrameTooLarge = errors.New("message too large")
	// ErrUnknownType is a frame whose type byte is not a known message type.
	ErrUnknownType = errors.New("unknown message type")
)

// ReadFrame reads one frame. A clean EOF before the first length byte is
// returned as io.EOF (the peer closed); EOF inside a frame is
// io.ErrUnexpectedEOF. Zero length, length > MaxFrameLength and a type byte
// unknown to dialect d are errors (ErrZeroLength, ErrFrameTooLarge,
// ErrUnknownType) naming the offending value. The payload is not read for
// an invalid frame.
func ReadFrame(r io.Reader, d Dialect) (Frame, error) {
	return readFrame(r, d, MaxFrameLength)
}

// readFrame is ReadFrame with a length limit of its own.
func readFrame(r io.Reader, d Dialect, maxLen uint32) (Frame, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("reading frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 {
		return Frame{}, fmt.Errorf("reading frame: %w", ErrZeroLength)
	}
	if n > maxLen {
		return Frame{}, fmt.Errorf("reading frame: length %d exceeds maximum %d: %w", n, maxLen, ErrFrameTooLarge)
	}
	if _, err := io.ReadFull(r, hdr[4:5]); err != nil {
		return Frame{}, fmt.Errorf("reading frame type: %w", unexpected(err))
	}
	t := MessageType(hdr[4])
	if !t.Known(d) {
		return Frame{}, fmt.Errorf("reading frame: type 0x%02X (%s dialect): %w", byte(t), d, ErrUnknownType)
	}
	// Grow the buffer as bytes arrive instead of trusting the length
	// prefix with a 16 MiB allocation up front.
	var buf bytes.Buffer
	buf.Grow(int(min(n-1, 64<<10)))
	if _, err := io.CopyN(&buf, r, int64(n-1)); err != nil {
		return Frame{}, fmt.Errorf("reading %s payload of %d bytes: %w", t, n-1, unexpected(err))
	}
	return Frame{Type: t, Payload: buf.Bytes()}, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends the encoding of one frame to dst.
func AppendFrame(dst []byte, t MessageType, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayloadSize {
		return dst, fmt.Errorf("writing %s: payload of %d bytes exceeds %d: %w", t, len(payload), MaxPayloadSize, ErrFrameTooLarge)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+1))
	dst = append(dst, byte(t))
	return append(dst, payload...), nil
}

// WriteFrame writes one frame with a single Write call. Payloads larger
// than MaxPayloadSize are refused with ErrFrameTooLarge.
func WriteFrame(w io.Writer, t MessageType, payload []byte) error {
	buf, err := AppendFrame(make([]byte, 0, 5+len(payload)), t, payload)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing %s frame: %w", t, err)
	}
	return nil
}
