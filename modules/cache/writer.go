package cache

import (
	"net/http"
)

// captureWriter sits between the next handler and the client. When the
// response header is written, decide chooses: pass it to the client
// (capturing the body, up to limit, for storing), or hold it back
// (a 304 to a revalidation, or an error answered with a stale entry),
// capturing it without writing anything to the client.
//
// A passed and captured response may also be buffered (decide sets
// buffer): its body is kept back from the client until drain, so that
// the next handler reads the upstream response at the upstream's pace,
// not the client's, and the entry can be stored (and the requests
// waiting for it released) before the client has received it. A body
// that outgrows limit stops being buffered: what was kept back is
// written and the rest passes through.
type captureWriter struct {
	dst    http.ResponseWriter
	header http.Header
	limit  int64
	decide func(status int, h http.Header) (pass, capture bool)
	// onOverflow, when set, is called once the body turns out larger
	// than limit (it will not be stored).
	onOverflow func()

	status   int
	wrote    bool
	pass     bool
	capture  bool
	overflow bool
	// buffer, set by decide, asks for the body to be kept back from
	// the client until drain; buffering is true while it is.
	buffer    bool
	buffering bool
	// flushed records a Flush asked for while buffering (done by drain).
	flushed bool
	body    []byte
	// snapshot is the response header when it was written, before the
	// cache's own Cache-Status was added.
	snapshot http.Header
}

// newCaptureWriter returns a writer in front of dst.
func newCaptureWriter(dst http.ResponseWriter, limit int64, decide func(int, http.Header) (bool, bool)) *captureWriter {
	return &captureWriter{dst: dst, header: dst.Header(), limit: limit, decide: decide}
}

// Header implements http.ResponseWriter.
func (c *captureWriter) Header() http.Header { return c.header }

// WriteHeader implements http.ResponseWriter. 1xx responses are passed
// on (when passing) and otherwise dropped.
func (c *captureWriter) WriteHeader(status int) {
	if c.wrote {
		return
	}
	if status >= 100 && status < 200 {
		if status != http.StatusSwitchingProtocols {
			return // informational: not part of the stored response
		}
	}
	c.wrote, c.status = true, status
	c.snapshot = c.header.Clone()
	c.pass, c.capture = c.decide(status, c.header)
	c.buffering = c.buffer && c.pass && c.capture
	if c.pass {
		c.dst.WriteHeader(status)
	}
}

// Write implements http.ResponseWriter.
func (c *captureWriter) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.capture && !c.overflow {
		if int64(len(c.body)+len(p)) > c.limit {
			c.overflow = true
			if c.onOverflow != nil {
				c.onOverflow()
			}
			err := c.drain()
			c.body = nil
			if err != nil {
				return 0, err
			}
		} else {
			c.body = append(c.body, p...)
			if c.buffering {
				return len(p), nil
			}
		}
	}
	if c.pass {
		return c.dst.Write(p)
	}
	return len(p), nil
}

// Flush sends what was written to the client when passing; a held
// response is never flushed (that would send its header).
func (c *captureWriter) Flush() {
	if c.buffering {
		c.flushed = true
		return
	}
	if c.pass {
		_ = http.NewResponseController(c.dst).Flush()
	}
}

// Unwrap returns the client's writer (for http.ResponseController's
// deadlines), only once the response passes to it.
func (c *captureWriter) Unwrap() http.ResponseWriter {
	if c.pass {
		return c.dst
	}
	return nil
}

// drain ends buffering: it writes the body kept back to the client (and
// flushes it when a flush was asked for meanwhile).
func (c *captureWriter) drain() error {
	if !c.buffering {
		return nil
	}
	c.buffering = false
	if len(c.body) > 0 {
		if _, err := c.dst.Write(c.body); err != nil {
			return err
		}
	}
	if c.flushed {
		return http.NewResponseController(c.dst).Flush()
	}
	return nil
}

// complete reports whether a whole response was captured.
func (c *captureWriter) complete() bool { return c.wrote && c.capture && !c.overflow }

// nopWriter is the client of a background revalidation: nobody.
type nopWriter struct{ h http.Header }

func (n *nopWriter) Header() http.Header         { return n.h }
func (n *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (n *nopWriter) WriteHeader(int)             {}

// Interface guards
var (
	_ http.ResponseWriter = (*captureWriter)(nil)
	_ http.Flusher        = (*captureWriter)(nil)
)
