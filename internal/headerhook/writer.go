// Package headerhook wraps an http.ResponseWriter so that a function edits
// the response header right before it is written: the handlers that change
// response headers produced further down the chain (CORS, header renaming,
// agents' response header operations) share it.
package headerhook

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Writer calls Apply on the response header when the final (or 101
// Switching Protocols) response header is written — by WriteHeader, or
// implied by Write, ReadFrom or Flush. Informational 1xx headers pass
// untouched. Hijacking and the other optional interfaces are reached
// through Unwrap, so streaming and WebSockets keep working.
type Writer struct {
	*caddyhttp.ResponseWriterWrapper
	apply       func(http.Header)
	wroteHeader bool
}

// Wrap returns w wrapped so that apply edits the header before it is
// written.
func Wrap(w http.ResponseWriter, apply func(http.Header)) *Writer {
	return &Writer{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, apply: apply}
}

// WroteHeader reports whether the final header was written (and apply
// called): when a handler returns an error without it, the server writes
// the error response to the unwrapped writer, and the caller may apply
// the edit to that header itself.
func (rw *Writer) WroteHeader() bool { return rw.wroteHeader }

// WriteHeader applies the edit before writing a final (or 101) header.
func (rw *Writer) WriteHeader(status int) {
	if !rw.wroteHeader && (status >= 200 || status == http.StatusSwitchingProtocols) {
		rw.wroteHeader = true
		rw.apply(rw.Header())
	}
	rw.ResponseWriterWrapper.WriteHeader(status)
}

// Write writes the header first if needed.
func (rw *Writer) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriterWrapper.Write(p)
}

// ReadFrom writes the header first if needed.
func (rw *Writer) ReadFrom(r io.Reader) (int64, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError writes the header first if needed, then flushes the
// underlying writer.
func (rw *Writer) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(rw.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (rw *Writer) Flush() {
	_ = rw.FlushError()
}

// Interface guards
var (
	_ http.ResponseWriter = (*Writer)(nil)
	_ http.Flusher        = (*Writer)(nil)
	_ io.ReaderFrom       = (*Writer)(nil)
)
