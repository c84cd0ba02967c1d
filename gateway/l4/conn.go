package l4

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// handle routes one client connection and splices it to a backend.
func (a *App) handle(s *Server, c net.Conn) {
	defer c.Close()
	log := a.logger.With(zap.String("remote", c.RemoteAddr().String()), zap.String("local", c.LocalAddr().String()))
	var prefix []byte
	route := firstRoute(s.Routes)
	if s.TLSPassthrough {
		timeout := time.Duration(s.HandshakeTimeout)
		if timeout <= 0 {
			timeout = defaultHandshakeTimeout
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		name, read, err := peekServerName(c, maxClientHello)
		_ = c.SetReadDeadline(time.Time{})
		if err != nil {
			log.Debug("no TLS ClientHello", zap.Error(err))
			return
		}
		prefix = read
		route = matchRoute(s.Routes, name)
		if route == nil {
			log.Debug("no route for the server name", zap.String("sni", name))
			return
		}
	}
	if route == nil {
		return
	}
	u := route.pick()
	if u == nil || u.Reject {
		log.Debug("route without usable upstream")
		return
	}
	dt := time.Duration(s.DialTimeout)
	if dt <= 0 {
		dt = defaultDialTimeout
	}
	b, err := net.DialTimeout("tcp", u.Dial, dt)
	if err != nil {
		log.Warn("dialing the upstream", zap.String("upstream", u.Dial), zap.Error(err))
		return
	}
	defer b.Close()
	if len(prefix) > 0 {
		if _, err := b.Write(prefix); err != nil {
			return
		}
	}
	idle := time.Duration(s.IdleTimeout)
	if idle == 0 {
		idle = defaultIdleTimeout
	}
	splice(c, b, idle)
}

// splice copies both ways until both directions are done, passing a
// half-close on. With idle > 0, both sides are closed once no byte has
// been read either way for idle, or a write has been blocked that long.
func splice(c, b net.Conn, idle time.Duration) {
	var wg sync.WaitGroup
	wg.Add(2)
	var last atomic.Int64 // unix nanoseconds of the last byte read
	last.Store(time.Now().UnixNano())
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		if idle > 0 {
			copyIdle(dst, src, idle, &last)
		} else {
			_, _ = io.Copy(dst, src)
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go cp(b, c)
	go cp(c, b)
	wg.Wait()
}

// copyIdle copies src to dst until EOF, an error, or idleness: a read
// that times out while the other direction has not read for idle either
// closes both connections (which ends the other direction's copy too).
func copyIdle(dst, src net.Conn, idle time.Duration, last *atomic.Int64) {
	buf := make([]byte, 32*1024)
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			_ = dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_ = src.Close()
				_ = dst.Close()
				return
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if since := time.Since(time.Unix(0, last.Load())); since < idle {
				continue // the other direction is busy: wait on
			}
			_ = src.Close()
			_ = dst.Close()
		}
		return
	}
}

func firstRoute(rs []*Route) *Route {
	if len(rs) == 0 {
		return nil
	}
	return rs[0]
}

// matchRoute is the first route whose server names match name.
func matchRoute(rs []*Route, name string) *Route {
	for _, r := range rs {
		if len(r.ServerNames) == 0 {
			return r
		}
		for _, n := range r.ServerNames {
			if nameMatches(n, name) {
				return r
			}
		}
	}
	return nil
}

// nameMatches reports whether the server name matches pattern: equal
// (case-insensitive), or pattern "*.suffix" and name one label or more
// before ".suffix".
func nameMatches(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	if name == "" {
		return false
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix) && !strings.HasPrefix(name, ".")
	}
	return pattern == name
}

// pick is the next upstream by smooth weighted round robin (nil: none
// usable).
func (r *Route) pick() *Upstream {
	r.mu.Lock()
	defer r.mu.Unlock()
	total, best := 0, -1
	for i, u := range r.Upstreams {
		w := 1
		if u.Weight != nil {
			w = *u.Weight
		}
		if w == 0 {
			continue
		}
		total += w
		r.current[i] += w
		if best < 0 || r.current[i] > r.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	r.current[best] -= total
	return r.Upstreams[best]
}
