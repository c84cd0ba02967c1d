package timeout

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestResponseWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter) error
		want  bool
	}{
		{"nothing", func(http.ResponseWriter) error { return nil }, false},
		{"informational", func(w http.ResponseWriter) error { w.WriteHeader(http.StatusEarlyHints); return nil }, false},
		{"switching protocols", func(w http.ResponseWriter) error { w.WriteHeader(http.StatusSwitchingProtocols); return nil }, true},
		{"final status", func(w http.ResponseWriter) error { w.WriteHeader(http.StatusNotFound); return nil }, true},
		{"write", func(w http.ResponseWriter) error { _, err := w.Write([]byte("x")); return err }, true},
		{"read from", func(w http.ResponseWriter) error {
			_, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("x"))
			return err
		}, true},
		{"response controller flush", func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() }, true},
		{"flusher", func(w http.ResponseWriter) error { w.(http.Flusher).Flush(); return nil }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := &responseWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: rec}}
			if err := tc.write(w); err != nil {
				t.Fatal(err)
			}
			if w.wroteHeader != tc.want {
				t.Errorf("wroteHeader = %v, want %v", w.wroteHeader, tc.want)
			}
			if w.Unwrap() != rec {
				t.Error("Unwrap does not return the wrapped writer")
			}
		})
	}
}
