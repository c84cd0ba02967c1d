package l4

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// bytesConn is a client connection whose bytes are data (what the fuzzer
// gives); writes are dropped.
type bytesConn struct{ r io.Reader }

func (c *bytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// clientHello is the ClientHello a real crypto/tls client sends for name.
func clientHello(t testing.TB, name string) []byte {
	a, b := net.Pipe()
	go func() {
		_ = tls.Client(a, &tls.Config{ServerName: name, InsecureSkipVerify: name == ""}).Handshake()
	}()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	name2, read, err := peekServerName(b, maxClientHello)
	a.Close()
	b.Close()
	if err != nil || name2 != name {
		t.Fatalf("peek %q: %q, %v", name, name2, err)
	}
	return read
}

func TestPeekServerName(t *testing.T) {
	hello := clientHello(t, "a.example.com")
	if hello[0] != 22 {
		t.Fatalf("recorded bytes start with %d, want a handshake record (22)", hello[0])
	}
	clientHello(t, "")
	// Bounded: a record larger than the bound fails, having read no more.
	big := append([]byte{22, 3, 1, 0xff, 0xff}, bytes.Repeat([]byte{1}, 70000)...)
	r := bytes.NewReader(big)
	if _, _, err := peekServerName(&bytesConn{r: r}, maxClientHello); err == nil {
		t.Fatal("oversized record accepted")
	}
	if read := len(big) - r.Len(); read > maxClientHello {
		t.Fatalf("read %d bytes, bound %d", read, maxClientHello)
	}
	// Not TLS.
	if _, _, err := peekServerName(&bytesConn{r: bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n"))}, maxClientHello); err == nil {
		t.Fatal("HTTP accepted as a ClientHello")
	}
}

// FuzzPeekServerName feeds arbitrary client bytes to the ClientHello
// reader: it must not panic, must read no more than its bound, and the
// bytes it returns must be a prefix of the input.
func FuzzPeekServerName(f *testing.F) {
	f.Add(clientHello(f, "a.example.com"))
	f.Add([]byte{22, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		_, read, err := peekServerName(&bytesConn{r: r}, 4096)
		if len(data)-r.Len() > 4096 {
			t.Fatalf("read %d bytes", len(data)-r.Len())
		}
		if err == nil && !bytes.HasPrefix(data, read) {
			t.Fatal("returned bytes are not the input's prefix")
		}
	})
}
