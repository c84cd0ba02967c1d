package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestWriteFrameReferenceExample(t *testing.T) {
	var buf bytes.Buffer
	payload := []byte(`{"sequence":0,"timestamp_ms":1}`)
	if err := WriteFrame(&buf, MsgPing, payload); err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(buf.Bytes()[:5]), "0000002041"; got != want {
		t.Fatalf("header = %s, want %s", got, want)
	}
	f, err := ReadFrame(&buf, DialectRust)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != MsgPing || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("round trip: %v %q", f.Type, f.Payload)
	}
	if _, err := ReadFrame(&buf, DialectRust); err != io.EOF {
		t.Fatalf("clean EOF: got %v", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	frame := func(n uint32, rest ...byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), rest...)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		d       Dialect
		is      error
		message string
	}{
		{"zero length", frame(0), DialectRust, ErrZeroLength, "zero-length"},
		{"too large", frame(MaxFrameLength + 1), DialectRust, ErrFrameTooLarge, "16777217"},
		{"unknown type", frame(1, 0x99), DialectRust, ErrUnknownType, "0x99"},
		{"sdk type in rust dialect", frame(1, 0xF0), DialectRust, ErrUnknownType, "0xF0"},
		{"rust type in sdk dialect", frame(1, 0x41), DialectSDK, ErrUnknownType, "0x41"},
		{"truncated length", []byte{0, 0}, DialectRust, io.ErrUnexpectedEOF, "length"},
		{"missing type", frame(3), DialectRust, io.ErrUnexpectedEOF, "type"},
		{"truncated payload", frame(3, 0x20, '{'), DialectRust, io.ErrUnexpectedEOF, "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.in), tc.d)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("got %v, want %v containing %q", err, tc.is, tc.message)
			}
		})
	}
	// The maximum length itself is accepted and an empty payload is fine.
	f, err := ReadFrame(bytes.NewReader(frame(1, byte(MsgPong))), DialectAuto)
	if err != nil || f.Type != MsgPong || len(f.Payload) != 0 {
		t.Fatalf("empty payload: %v %v", f, err)
	}
}

func TestWriteFrameLimits(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, MsgAgentResponse, make([]byte, MaxPayloadSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	if err := WriteFrame(&buf, MsgAgentResponse, make([]byte, MaxPayloadSize)); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(&buf, DialectRust)
	if err != nil || len(f.Payload) != MaxPayloadSize {
		t.Fatalf("max frame: %v", err)
	}
	if err := WriteFrame(failWriter{}, MsgPing, nil); err == nil || !strings.Contains(err.Error(), "Ping") {
		t.Fatalf("write error: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("boom") }

func TestMessageTypeNames(t *testing.T) {
	for b := 0; b < 256; b++ {
		mt := MessageType(b)
		name := mt.String()
		if mt.Known(DialectAuto) == strings.HasPrefix(name, "Unknown") {
			t.Errorf("0x%02X: known=%v name=%s", b, mt.Known(DialectAuto), name)
		}
	}
	for _, d := range []Dialect{DialectAuto, DialectRust, DialectSDK, DialectGRPC} {
		if d.String() == "" {
			t.Fatal("empty dialect name")
		}
	}
	for e := EventType(0); e <= 9; e++ {
		if e.String() == "" {
			t.Fatal("empty event name")
		}
		if (e >= 1 && e <= 8) != (e.MessageType() != 0) {
			t.Errorf("event %d → %v", e, e.MessageType())
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x20, 0x41})
	f.Add([]byte{0, 0, 0, 1, 0x20})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x20})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, d := range []Dialect{DialectAuto, DialectRust, DialectSDK} {
			fr, err := ReadFrame(bytes.NewReader(in), d)
			if err != nil {
				continue
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, fr.Type, fr.Payload); err != nil {
				t.Fatalf("rewrite: %v", err)
			}
			if !bytes.HasPrefix(in, buf.Bytes()) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}
