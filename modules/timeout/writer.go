package timeout

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// responseWriter records whether a response has been started. Flushing
// and hijacking keep working: Flush is forwarded, and other optional
// interfaces are reached through Unwrap (http.ResponseController).
type responseWriter struct {
	*caddyhttp.ResponseWriterWrapper
	wroteHeader bool
}

// WriteHeader records that a final (or 101 Switching Protocols) response
// header has been written.
func (rw *responseWriter) WriteHeader(status int) {
	if status >= 200 || status == http.StatusSwitchingProtocols {
		rw.wroteHeader = true
	}
	rw.ResponseWriterWrapper.WriteHeader(status)
}

// Write records that the response has started.
func (rw *responseWriter) Write(p []byte) (int, error) {
	rw.wroteHeader = true
	return rw.ResponseWriterWrapper.Write(p)
}

// ReadFrom records that the response has started.
func (rw *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	rw.wroteHeader = true
	return rw.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError flushes the underlying writer, which starts the response.
func (rw *responseWriter) FlushError() error {
	rw.wroteHeader = true
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
