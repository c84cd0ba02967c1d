//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package adaptive

import "errors"

// peekSupported: the pool cannot check an idle connection without
// reading from it here; the direct round trip is off.
const peekSupported = false

type peekState struct{}

func (c *directConn) initPeek() error {
	return errors.New("sentinel transport: direct round trip unsupported on this platform")
}

func (c *directConn) alive() bool { return false }
