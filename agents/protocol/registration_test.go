package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestRegistrationRefusal: the proxy's refusal reaches the agent as an
// error with the reason; a hello round-trips.
func TestRegistrationRefusal(t *testing.T) {
	var b bytes.Buffer
	if err := WriteRegistrationRefusal(&b, "agent \"waf\" is a configured agent"); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(&b, DialectRust)
	if err != nil || f.Type != MsgHandshakeResponse {
		t.Fatalf("%v %v", f.Type, err)
	}
	if !strings.Contains(string(f.Payload), `"success":false`) || !strings.Contains(string(f.Payload), `"proxy_id":"sentinel-proxy"`) {
		t.Fatalf("payload %s", f.Payload)
	}
	err = RegistrationRefusal(f)
	if !errors.Is(err, ErrRegistrationRefused) || !strings.Contains(err.Error(), `agent "waf" is a configured agent`) {
		t.Fatalf("refusal: %v", err)
	}
	for _, p := range []string{`{"success":false}`, `nope`, `{"success":true}`} {
		err := RegistrationRefusal(Frame{Type: MsgHandshakeResponse, Payload: []byte(p)})
		if !errors.Is(err, ErrRegistrationRefused) {
			t.Errorf("%s: %v", p, err)
		}
	}
	b.Reset()
	if err := WriteRegistrationHello(&b, RegistrationHello{AgentID: "a", AuthToken: "t"}); err != nil {
		t.Fatal(err)
	}
	if h, err := ReadRegistrationHello(&b); err != nil || h.AgentID != "a" || h.ProtocolVersion != ProtocolVersion {
		t.Fatalf("%+v %v", h, err)
	}
}

// TestRegistrationHelloBounded: the hello comes before any
// authentication; a length prefix over MaxRegistrationHelloLength is
// refused before its payload is read (a peer that is not an agent used
// to make the proxy read and hold up to 16 MiB per connection).
func TestRegistrationHelloBounded(t *testing.T) {
	var b bytes.Buffer
	b.Write([]byte{0, 0x10, 0, 0, byte(MsgRegistration)}) // 1 MiB
	b.Write(bytes.Repeat([]byte("x"), 1<<20))
	_, err := ReadRegistrationHello(&b)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("a 1 MiB hello: %v, want ErrFrameTooLarge", err)
	}
	if b.Len() < 1<<20 {
		t.Errorf("%d payload bytes read, want none", 1<<20-b.Len())
	}
}
