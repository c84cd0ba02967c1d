// Package handoff is the listener wrapper caddy.listeners.sentinel_handoff.
// It removes a race of config reloads: while a new config starts, the old
// and the new server both accept on the shared socket, and Go's HTTP server
// closes, without an answer, a connection whose first request it reads
// after its shutdown began. With this wrapper, a connection accepted on
// behalf of an older config once a newer one listens on the same address
// is handed to the newer one, so no new connection is lost to a reload.
package handoff

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	caddy.RegisterModule(Handoff{})
}

// groups maps a listen address to the wrappers listening on it (a
// documented process-level registry, like Caddy's listener pool).
var groups sync.Map // address → *group

// group is the set of wrappers of one address; newest is the last one
// started, which receives handed-off connections.
type group struct {
	newest atomic.Pointer[listener]
}

// Handoff is the listener wrapper module. It has no settings.
type Handoff struct{}

// CaddyModule returns the Caddy module information.
func (Handoff) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.listeners.sentinel_handoff",
		New: func() caddy.Module { return new(Handoff) },
	}
}

// WrapListener wraps ln and makes it the newest listener of its address.
func (Handoff) WrapListener(ln net.Listener) net.Listener {
	g, _ := groups.LoadOrStore(ln.Addr().Network()+"/"+ln.Addr().String(), &group{})
	l := &listener{
		Listener: ln,
		group:    g.(*group),
		accepted: make(chan net.Conn),
		handed:   make(chan net.Conn, 64),
		errs:     make(chan error, 1),
		done:     make(chan struct{}),
	}
	l.group.newest.Store(l)
	go l.pump()
	return l
}

// UnmarshalCaddyfile reads `sentinel_handoff` (no arguments).
func (*Handoff) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// listener is one config's view of the socket.
type listener struct {
	net.Listener
	group    *group
	accepted chan net.Conn // from this listener's own accept loop
	handed   chan net.Conn // from older listeners of the same address
	errs     chan error
	done     chan struct{}
	closed   atomic.Bool
	once     sync.Once
}

// pump accepts connections and routes each to the newest listener of the
// address (this one, unless a newer config started since).
func (l *listener) pump() {
	delay := 5 * time.Millisecond
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if l.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// A sibling config's Close set a deadline on the shared
				// socket (Caddy clears it): try again.
				time.Sleep(delay)
				continue
			}
			select {
			case l.errs <- err:
			case <-l.done:
			}
			return
		}
		l.route(conn)
	}
}

// route gives a connection to the newest open listener, or to this one.
func (l *listener) route(conn net.Conn) {
	if n := l.group.newest.Load(); n != nil && n != l && !n.closed.Load() {
		select {
		case n.handed <- conn:
			return
		default: // the newer one is saturated: serve it here
		}
	}
	select {
	case l.accepted <- conn:
	case <-l.done:
		// Closed while delivering: hand it over, or close it.
		if n := l.group.newest.Load(); n != nil && n != l && !n.closed.Load() {
			select {
			case n.handed <- conn:
				return
			default:
			}
		}
		conn.Close()
	}
}

// Accept returns the next connection of this listener or one handed over.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handed:
		return &conn{Conn: c, l: l, recording: true}, nil
	case c := <-l.accepted:
		return &conn{Conn: c, l: l, recording: true}, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops this listener: its server gets no more connections;
// connections handed to it but not accepted yet are passed on or closed.
// (Caddy binds each config's socket with SO_REUSEPORT: for the
// connections the kernel still queues on this socket when it closes to
// move to the newer socket instead of being reset, Linux needs
// net.ipv4.tcp_migrate_req=1.)
func (l *listener) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.done)
		l.Listener.Close()
		for {
			select {
			case c := <-l.handed:
				if n := l.group.newest.Load(); n != nil && n != l && !n.closed.Load() {
					select {
					case n.handed <- c:
						continue
					default:
					}
				}
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// maxReplay is how much of what a client sent before the server answered
// is kept to replay it on a newer server.
const maxReplay = 64 << 10

// conn records what the client sends until the server first writes. Go's
// HTTP server closes, without an answer, a connection whose first request
// it reads after its shutdown began; when that happens to a connection of
// a closed listener, the connection is handed to the newer config with
// what was read, instead of being closed: the newer server reads the same
// request again and answers it.
type conn struct {
	net.Conn
	l  *listener
	mu sync.Mutex
	// answered is set by the first Write: from then on Read and Write
	// skip the lock (a proxied connection's every read and write would
	// take it otherwise).
	answered  atomic.Bool
	recording bool
	rec       []byte
}

// Read reads and records.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.answered.Load() {
		c.mu.Lock()
		if c.recording {
			if len(c.rec)+n <= maxReplay {
				c.rec = append(c.rec, p[:n]...)
			} else {
				c.recording, c.rec = false, nil
			}
		}
		c.mu.Unlock()
	}
	return n, err
}

// Write ends the recording: once the server answered, nothing is replayed.
func (c *conn) Write(p []byte) (int, error) {
	if !c.answered.Load() {
		c.mu.Lock()
		c.recording, c.rec = false, nil
		c.answered.Store(true)
		c.mu.Unlock()
	}
	return c.Conn.Write(p)
}

// Close hands an unanswered connection of a closed listener over to the
// newest listener of the address, or closes it.
func (c *conn) Close() error {
	c.mu.Lock()
	replay := c.recording && len(c.rec) > 0 && c.l.closed.Load()
	rec := c.rec
	c.recording, c.rec = false, nil
	c.mu.Unlock()
	if replay {
		if n := c.l.group.newest.Load(); n != nil && n != c.l && !n.closed.Load() {
			c.Conn.SetDeadline(time.Time{})
			select {
			case n.handed <- &replayConn{Conn: c.Conn, buf: rec}:
				return nil
			default:
			}
		}
	}
	return c.Conn.Close()
}

// replayConn returns buf before reading from the connection.
type replayConn struct {
	net.Conn
	buf []byte
}

// Read returns the replayed bytes first.
func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.buf) > 0 {
		n := copy(p, r.buf)
		r.buf = r.buf[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// Interface guards
var (
	_ caddy.ListenerWrapper = (*Handoff)(nil)
	_ caddyfile.Unmarshaler = (*Handoff)(nil)
)
