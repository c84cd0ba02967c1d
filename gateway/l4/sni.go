package l4

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// errPeeked stops the handshake once the ClientHello is parsed.
var errPeeked = errors.New("client hello read")

// peekServerName reads the TLS ClientHello from c (at most max bytes) and
// returns its server name (lower case, "" when the client sent none) and
// every byte read, to be replayed to the backend. The ClientHello is
// parsed by crypto/tls (a server handshake stopped by GetConfigForClient
// on a connection that records what is read and writes nothing).
func peekServerName(c net.Conn, max int) (string, []byte, error) {
	rc := &recordingConn{conn: c, r: io.LimitReader(c, int64(max))}
	var name string
	var got bool
	err := tls.Server(rc, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name, got = h.ServerName, true
			return nil, errPeeked
		},
	}).Handshake()
	if !got {
		if err == nil {
			err = errors.New("handshake ended without a ClientHello")
		}
		return "", nil, fmt.Errorf("reading the TLS ClientHello: %w", err)
	}
	return strings.TrimSuffix(strings.ToLower(name), "."), rc.buf.Bytes(), nil
}

// recordingConn is the client connection as crypto/tls sees it while the
// ClientHello is read: reads are recorded (and bounded), writes (the
// alert sent when the handshake is stopped) are dropped, Close does not
// close the client.
type recordingConn struct {
	conn net.Conn
	r    io.Reader
	buf  bytes.Buffer
}

func (rc *recordingConn) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.buf.Write(p[:n])
	return n, err
}
func (rc *recordingConn) Write(p []byte) (int, error)      { return len(p), nil }
func (rc *recordingConn) Close() error                     { return nil }
func (rc *recordingConn) LocalAddr() net.Addr              { return rc.conn.LocalAddr() }
func (rc *recordingConn) RemoteAddr() net.Addr             { return rc.conn.RemoteAddr() }
func (rc *recordingConn) SetDeadline(time.Time) error      { return nil }
func (rc *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (rc *recordingConn) SetWriteDeadline(time.Time) error { return nil }

// Interface guards.
var _ net.Conn = (*recordingConn)(nil)
