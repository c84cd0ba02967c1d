// Package framing is the listener wrapper caddy.listeners.sentinel_framing.
// It refuses HTTP/1.x requests with malformed framing before Go's HTTP
// server reads them: a header folded onto the previous line (obs-fold,
// RFC 9112 §5.2), both Content-Length and Transfer-Encoding, a
// Transfer-Encoding other than a single "chunked" (or on HTTP/1.0), and
// invalid or differing Content-Length values (RFC 9112 §6). Go cannot be
// told after parsing: textproto joins folded lines itself, and with both
// length headers net/http drops Content-Length and keeps the connection.
//
// The wrapper goes after the tls wrapper, so it reads the decrypted
// stream. For each request it checks the head and skips the body
// (Content-Length or chunked), so it knows where a pipelined request
// starts. A refused head is replaced by a request line that Go answers
// "400 Bad Request" and Connection: close, after the responses to the
// requests before it; nothing after it is read from the client. HTTP/2
// (TLS ALPN h2 or the h2c preface) and connections switched to another
// protocol (101 to an Upgrade request) pass unchecked; an HTTP/1.x
// CONNECT is refused (Caddy's reverse proxy does not tunnel it).
package framing

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(Framing{})
}

// defaultMaxHeaderBytes is Go's (and Caddy's) default header limit.
const defaultMaxHeaderBytes = 1 << 20

// Framing is the listener wrapper module.
type Framing struct {
	// MaxHeaderBytes is the server's max_header_bytes (default 1 MiB, as
	// the server's). A head still unfinished beyond it (plus the 4 KiB Go
	// reads ahead) is passed to the server unchecked, which answers 431,
	// and nothing after it is read. Set it to the server's value.
	MaxHeaderBytes int `json:"max_header_bytes,omitempty"`

	logger   *zap.Logger
	rejected [numReasons]prometheus.Counter
}

// CaddyModule returns the Caddy module information.
func (Framing) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.listeners.sentinel_framing",
		New: func() caddy.Module { return new(Framing) },
	}
}

// Provision sets up the logger and the metrics.
func (fr *Framing) Provision(ctx caddy.Context) error {
	if fr.MaxHeaderBytes < 0 {
		return errors.New("sentinel_framing: max_header_bytes must not be negative")
	}
	fr.logger = ctx.Logger()
	counters, err := newMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	fr.rejected = counters
	return nil
}

// WrapListener wraps ln: its connections check HTTP/1.x request framing.
func (fr *Framing) WrapListener(ln net.Listener) net.Listener {
	limit := fr.MaxHeaderBytes
	if limit == 0 {
		limit = defaultMaxHeaderBytes
	}
	// Go reads up to max header bytes + 4096 for a head, plus what its
	// 4 KiB buffer holds.
	return &listener{Listener: ln, fr: fr, limit: limit + 8192}
}

// UnmarshalCaddyfile reads `sentinel_framing [<max_header_bytes>]`.
func (fr *Framing) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		n, err := strconv.Atoi(d.Val())
		if err != nil || n < 0 {
			return d.Errf("sentinel_framing: max_header_bytes %q is not a byte count", d.Val())
		}
		fr.MaxHeaderBytes = n
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// count records a refused request.
func (fr *Framing) count(c net.Conn, r reason) {
	if fr.rejected[r] != nil {
		fr.rejected[r].Inc()
	}
	if fr.logger == nil {
		return
	}
	if ce := fr.logger.Check(zapcore.DebugLevel, "malformed request framing"); ce != nil {
		ce.Write(zap.String("reason", reasonNames[r]), zap.Stringer("remote_addr", c.RemoteAddr()))
	}
}

// listener wraps accepted connections.
type listener struct {
	net.Listener
	fr    *Framing
	limit int
}

// Accept returns the next connection, wrapped. A connection that reports
// a TLS state (the tls wrapper's) keeps reporting it, so that Caddy sets
// r.TLS and serves HTTP/2 on it; a cleartext one does not.
func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, fr: l.fr}
	c.f.limit = l.limit
	if s, ok := nc.(connectionStater); ok {
		c.stater = s
		return tlsConn{c}, nil
	}
	return c, nil
}

// connectionStater is a connection with a TLS state.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// tlsConn is a conn over TLS: it reports the TLS state.
type tlsConn struct {
	*conn
}

// ConnectionState returns the TLS connection's state.
func (c tlsConn) ConnectionState() tls.ConnectionState {
	return c.stater.ConnectionState()
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Framing)(nil)
	_ caddy.ListenerWrapper = (*Framing)(nil)
	_ caddyfile.Unmarshaler = (*Framing)(nil)
	_ net.Conn              = (*conn)(nil)
	_ connectionStater      = tlsConn{}
)
