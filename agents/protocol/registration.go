package protocol

import (
	"encoding/json"
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

// ReadRegistrationHello reads the first frame of a registered connection;
// it must be a RegistrationHello (type 0x03) with a non-empty agent_id.
// The caller sets a read deadline and checks the token (constant time).
func ReadRegistrationHello(r io.Reader) (RegistrationHello, error) {
	var h RegistrationHello
	f, err := ReadFrame(r, DialectAuto)
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
