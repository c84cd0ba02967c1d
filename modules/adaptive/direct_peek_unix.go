//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package adaptive

import (
	"errors"
	"syscall"
	"time"
)

// peekSupported: the pool can check an idle connection without reading
// from it.
const peekSupported = true

// peekState is what a connection needs for alive.
type peekState struct {
	raw    syscall.RawConn
	peekFn func(fd uintptr) bool
	peekE  error
	peekB  [1]byte
}

// errNoRawConn: the dialed connection does not give its descriptor.
var errNoRawConn = errors.New("sentinel transport: direct round trip: connection without a file descriptor")

// initPeek prepares alive; an error when the connection is not a socket.
func (c *directConn) initPeek() error {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return errNoRawConn
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	c.raw = raw
	c.peekFn = c.peek
	return nil
}

func (c *directConn) peek(fd uintptr) bool {
	_, _, c.peekE = syscall.Recvfrom(int(fd), c.peekB[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true
}

// alive reports whether an idle connection is still usable: the upstream
// has neither closed it (a read would give the end of the stream) nor
// sent anything on it (an unsolicited response, which must not be taken
// for the next request's).
func (c *directConn) alive() bool {
	if c.d.rwTimeouts {
		// Caddy's read timeout left the last read's deadline, which
		// the peek would take for its own.
		_ = c.conn.SetReadDeadline(time.Time{})
	}
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	return c.peekE == syscall.EAGAIN || c.peekE == syscall.EWOULDBLOCK
}
