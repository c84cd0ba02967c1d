package routeguard

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// statusWriter passes a response through and records its status code,
// for the route's metrics. Unlike caddyhttp.NewResponseRecorder (two
// allocations per request), it is recycled through a pool: the guard
// takes it before the route's handlers run and puts it back when they
// have returned, after which no handler may use the writer (net/http's
// rule for a ResponseWriter).
type statusWriter struct {
	caddyhttp.ResponseWriterWrapper
	status      int
	wroteHeader bool
}

// statusWriters is a pool of *statusWriter.
type statusWriters struct{ pool sync.Pool }

// get returns a statusWriter wrapping w.
func (p *statusWriters) get(w http.ResponseWriter) *statusWriter {
	sw, _ := p.pool.Get().(*statusWriter)
	if sw == nil {
		sw = new(statusWriter)
	}
	sw.ResponseWriter = w
	return sw
}

// put recycles sw; sw must not be used afterwards.
func (p *statusWriters) put(sw *statusWriter) {
	*sw = statusWriter{}
	p.pool.Put(sw)
}

// WriteHeader records the status code (the last informational one until
// a final one is written, as caddyhttp's recorder does) and writes it.
func (sw *statusWriter) WriteHeader(code int) {
	if sw.wroteHeader {
		return
	}
	sw.status = code
	if code < 100 || code > 199 {
		sw.wroteHeader = true
	}
	sw.ResponseWriterWrapper.WriteHeader(code)
}

// Write writes the body, with a 200 status when none was written.
func (sw *statusWriter) Write(p []byte) (int, error) {
	sw.WriteHeader(http.StatusOK)
	return sw.ResponseWriterWrapper.Write(p)
}

// ReadFrom copies the body from r, with a 200 status when none was
// written.
func (sw *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	sw.WriteHeader(http.StatusOK)
	return sw.ResponseWriterWrapper.ReadFrom(r)
}

// Hijack hands the connection over (upgraded connections).
func (sw *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	//nolint:bodyclose
	return http.NewResponseController(sw.ResponseWriter).Hijack()
}

// Status is the status code written, 0 when none.
func (sw *statusWriter) Status() int { return sw.status }

// Interface guards
var (
	_ http.ResponseWriter = (*statusWriter)(nil)
	_ io.ReaderFrom       = (*statusWriter)(nil)
	_ http.Hijacker       = (*statusWriter)(nil)
)
