package framing

import (
	"io"
	"net"
	"sync/atomic"
)

// Connection modes.
const (
	modeCheck uint8 = iota // requests are checked
	modePass               // everything passes (HTTP/2, a tunnel)
	modeEnd                // the rest of buf, then final, then EOF
)

// rejectLine is what the server reads instead of a refused head: a
// request line without spaces, which Go answers "400 Bad Request" with
// Connection: close, and closes.
var rejectLine = []byte("BAD\r\n\r\n")

// Buffer sizes.
const (
	minDirect  = 1024     // a Read this large reads into the caller's buffer
	readChunk  = 4096     // what a buffered read asks for at least
	maxIdleBuf = 64 << 10 // a larger buffer is dropped once empty
)

// conn checks the request framing of what the server reads.
//
// buf holds what was read from the client and not yet returned:
// buf[r:ready] is checked and goes to the server next, buf[ready:] is an
// unfinished request head. When nothing is held, a large enough Read
// reads into the caller's buffer, which is checked in place.
type conn struct {
	net.Conn
	fr     *Framing
	stater connectionStater // the TLS state, nil on cleartext

	f         framer
	mode      uint8
	alpnKnown bool
	buf       []byte
	r, ready  int
	final     []byte

	// watch is written by Read (a request that may switch protocols
	// was accepted) and Write (its response's status was seen).
	watch atomic.Int32
}

// Read returns the client's bytes once they are checked.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r < c.ready {
			n := copy(p, c.buf[c.r:c.ready])
			c.r += n
			if c.r == len(c.buf) {
				c.resetBuf()
			}
			return n, nil
		}
		switch c.mode {
		case modePass:
			if c.r < len(c.buf) {
				c.ready = len(c.buf)
				continue
			}
			return c.Conn.Read(p)
		case modeEnd:
			if len(c.final) > 0 {
				n := copy(p, c.final)
				c.final = c.final[n:]
				return n, nil
			}
			return 0, io.EOF
		}
		if c.watch.Load() == watchSwitched {
			c.mode = modePass
			continue
		}
		if len(c.buf) == 0 && len(p) >= minDirect {
			n, err := c.Conn.Read(p)
			if n > 0 {
				if k := c.direct(p[:n]); k > 0 {
					return k, nil
				}
			}
			if err != nil || n == 0 {
				return 0, err
			}
			continue
		}
		n, err := c.fill()
		if (err != nil || n == 0) && c.mode == modeCheck && c.r == c.ready {
			return 0, err
		}
	}
}

// direct checks d, read into the caller's buffer, and returns how much
// of it the caller may have; the rest is held or dropped.
func (c *conn) direct(d []byte) int {
	if c.switchedToH2() || c.switched() {
		c.mode = modePass
		return len(d)
	}
	k, v := c.advance(d)
	switch v {
	case more:
		if k < len(d) {
			c.buf = append(c.buf[:0], d[k:]...)
			c.r, c.ready = 0, 0
		}
	case pass:
		c.mode = modePass
		k = len(d)
	case tooLarge:
		c.mode = modeEnd
		k = len(d)
	case reject:
		c.mode, c.final = modeEnd, rejectLine
	case broken:
		c.mode = modeEnd
	}
	return k
}

// fill reads more into buf and checks it.
func (c *conn) fill() (int, error) {
	if c.ready > 0 && c.r == c.ready {
		// Move the unfinished head to the front.
		n := copy(c.buf, c.buf[c.ready:])
		c.buf = c.buf[:n]
		c.r, c.ready = 0, 0
	}
	if cap(c.buf)-len(c.buf) < readChunk {
		nb := make([]byte, len(c.buf), max(2*cap(c.buf), len(c.buf)+readChunk))
		copy(nb, c.buf)
		c.buf = nb
	}
	start := len(c.buf)
	n, err := c.Conn.Read(c.buf[start:cap(c.buf)])
	c.buf = c.buf[:start+n]
	if n == 0 {
		return 0, err
	}
	if c.switchedToH2() || c.switched() {
		c.mode = modePass
		c.ready = len(c.buf)
		return n, err
	}
	k, v := c.advance(c.buf[c.ready:])
	switch v {
	case more:
		c.ready += k
	case pass:
		c.mode = modePass
		c.ready = len(c.buf)
	case tooLarge:
		c.mode = modeEnd
		c.ready = len(c.buf)
	case reject, broken:
		c.mode = modeEnd
		c.ready += k
		c.buf = c.buf[:c.ready]
		if v == reject {
			c.final = rejectLine
		}
	}
	return n, err
}

// advance runs the framer and records what it found.
func (c *conn) advance(d []byte) (int, verdict) {
	k, v := c.f.advance(d)
	if c.f.watch != watchNone {
		c.watch.Store(c.f.watch)
		c.f.watch = watchNone
	}
	if v == reject || v == broken {
		c.fr.count(c.Conn, c.f.reason)
	}
	return k, v
}

// switched reports whether the connection became a tunnel (its
// response "101 Switching Protocols" was written) while
// a Read was waiting: Go's server reads in the background while a
// handler runs, so the tunnel's first bytes can arrive in a Read that
// started before the switch. They are the tunnel's, not a request.
func (c *conn) switched() bool { return c.watch.Load() == watchSwitched }

// switchedToH2 reports, on the first bytes of a TLS connection, whether
// ALPN chose HTTP/2.
func (c *conn) switchedToH2() bool {
	if c.alpnKnown {
		return false
	}
	c.alpnKnown = true
	return c.stater != nil && c.stater.ConnectionState().NegotiatedProtocol == "h2"
}

// resetBuf empties buf, dropping it when large.
func (c *conn) resetBuf() {
	c.r, c.ready = 0, 0
	if cap(c.buf) > maxIdleBuf {
		c.buf = nil
		return
	}
	c.buf = c.buf[:0]
}

// Write writes to the client; while a request that may switch protocols
// waits for its response, it reads the response's status.
func (c *conn) Write(b []byte) (int, error) {
	if w := c.watch.Load(); w == watchUpgrade {
		c.observe(w, b)
	}
	return c.Conn.Write(b)
}

// observe reads a status line that starts b: 101 to an Upgrade request
// makes the connection a tunnel, other final statuses keep it HTTP/1.
func (c *conn) observe(w int32, b []byte) {
	if len(b) < len("HTTP/1.1 200") || string(b[:7]) != "HTTP/1." || b[8] != ' ' {
		return
	}
	code := b[9:12]
	switch {
	case code[0] == '1' && string(code) != "101":
		return // informational: the final status follows
	case w == watchUpgrade && string(code) == "101":
		c.watch.CompareAndSwap(w, watchSwitched)
	default:
		c.watch.CompareAndSwap(w, watchNone)
	}
}
