package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteRegistrationHello sends the RegistrationHello frame (type 0x03).
func WriteRegistrationHello(w io.Writer, h RegistrationHello) error {
	if h.ProtocolVersion == 0 {
		h.ProtocolVersion = ProtocolVersion
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding registration hello: %w", err)
	}
	return WriteFrame(w, MsgRegistration, b)
}

// MaxRegistrationHelloLength is the largest accepted length prefix of a
// RegistrationHello frame. The hello comes before any authentication
// (its token is in it): a peer that is not an agent could otherwise make
// the proxy read up to MaxFrameLength (16 MiB) per connection. A hello
// (an id, a token, a few capabilities) is a few hundred bytes.
const MaxRegistrationHelloLength = 64 << 10

// ReadRegistrationHello reads the first frame of a registered connection;
// it must be a RegistrationHello (type 0x03) with a non-empty agent_id.
// The caller sets a read deadline and checks the token (constant time).
func ReadRegistrationHello(r io.Reader) (RegistrationHello, error) {
	var h RegistrationHello
	f, err := readFrame(r, DialectAuto, MaxRegistrationHelloLength)
	if err != nil {
		return h, fmt.Errorf("reading registration hello: %w", err)
	}
	if f.Type != MsgRegistration {
		return h, fmt.Errorf("reading registration hello: got %s, want Registration (0x03)", f.Type)
	}
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		return h, fmt.Errorf("decoding registration hello: %w", err)
	}
	if h.AgentID == "" {
		return h, fmt.Errorf("registration hello: field \"agent_id\" empty")
	}
	if h.ProtocolVersion != 0 && h.ProtocolVersion != ProtocolVersion {
		return h, fmt.Errorf("registration hello: protocol_version %d unsupported", h.ProtocolVersion)
	}
	return h, nil
}

// RegistrationResponse is the proxy's answer to a refused registration:
// frame type 0x02 with the keys of the original's reverse-connection
// RegistrationResponse (reference §4). An accepted registration gets no
// RegistrationResponse: the proxy goes on with its HandshakeRequest.
type RegistrationResponse struct {
	// Success is false for a refusal.
	Success bool `json:"success"`
	// Error is the reason of the refusal.
	Error OptString `json:"error"`
	// ProxyID names the proxy.
	ProxyID string `json:"proxy_id"`
	// ProxyVersion is the proxy's version ("" when not told).
	ProxyVersion string `json:"proxy_version"`
	// ConnectionID is empty on failure.
	ConnectionID string `json:"connection_id"`
}

// ErrRegistrationRefused is returned (wrapped, with the proxy's reason)
// by an agent whose registration the proxy refused.
var ErrRegistrationRefused = errors.New("registration refused by the proxy")

// WriteRegistrationRefusal tells a registering agent why it is refused.
func WriteRegistrationRefusal(w io.Writer, reason string) error {
	b, err := json.Marshal(RegistrationResponse{Error: OptString(reason), ProxyID: "sentinel-proxy"})
	if err != nil {
		return fmt.Errorf("encoding registration response: %w", err)
	}
	return WriteFrame(w, MsgHandshakeResponse, b)
}

// RegistrationRefusal decodes the frame a registering agent got instead
// of the proxy's HandshakeRequest: an error wrapping
// ErrRegistrationRefused with the proxy's reason.
func RegistrationRefusal(f Frame) error {
	var r RegistrationResponse
	if err := json.Unmarshal(f.Payload, &r); err != nil || r.Success {
		return fmt.Errorf("%w: unexpected %s before the handshake", ErrRegistrationRefused, f.Type)
	}
	reason := string(r.Error)
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Errorf("%w: %s", ErrRegistrationRefused, reason)
}
