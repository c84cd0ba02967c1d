package headerrename

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// responseWriter applies the response renamings when the response
// header is written. Flushing and reading from readers write the header
// too; hijacking and other optional interfaces are reached through Unwrap,
// so streaming and WebSockets keep working.
type responseWriter struct {
	*caddyhttp.ResponseWriterWrapper
	apply       func(http.Header)
	wroteHeader bool
}

// WriteHeader renames the response fields before writing a final (or
// 101 Switching Protocols) response header.
func (rw *responseWriter) WriteHeader(status int) {
	if !rw.wroteHeader && (status >= 200 || status == http.StatusSwitchingProtocols) {
		rw.wroteHeader = true
		rw.apply(rw.Header())
	}
	rw.ResponseWriterWrapper.WriteHeader(status)
}

// Write writes the header first if needed.
func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriterWrapper.Write(p)
}

// ReadFrom writes the header first if needed.
func (rw *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError writes the header first if needed, then flushes the
// underlying writer.
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(rw.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() {
	_ = rw.FlushError()
}

// Interface guards
var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
	_ io.ReaderFrom       = (*responseWriter)(nil)
)
