package headerhook

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// acao is the header the tests' edit sets.
const acao = "Access-Control-Allow-Origin"

func newTestWriter(rec *httptest.ResponseRecorder, applied *int) *Writer {
	return Wrap(rec, func(h http.Header) {
		*applied++
		h.Set(acao, "https://app.example.com")
	})
}

func TestResponseWriter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		write      func(w http.ResponseWriter) error
		wantStatus int
		wantBody   string
	}{
		{
			name:       "write implies 200",
			write:      func(w http.ResponseWriter) error { _, err := w.Write([]byte("body")); return err },
			wantStatus: http.StatusOK,
			wantBody:   "body",
		},
		{
			name: "explicit status, written once",
			write: func(w http.ResponseWriter) error {
				w.WriteHeader(http.StatusCreated)
				w.WriteHeader(http.StatusAccepted)
				_, err := w.Write([]byte("x"))
				return err
			},
			wantStatus: http.StatusCreated,
			wantBody:   "x",
		},
		{
			name:       "switching protocols counts",
			write:      func(w http.ResponseWriter) error { w.WriteHeader(http.StatusSwitchingProtocols); return nil },
			wantStatus: http.StatusSwitchingProtocols,
		},
		{
			name:       "flush through a response controller implies 200",
			write:      func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() },
			wantStatus: http.StatusOK,
		},
		{
			name:       "flusher interface",
			write:      func(w http.ResponseWriter) error { w.(http.Flusher).Flush(); return nil },
			wantStatus: http.StatusOK,
		},
		{
			name: "read from",
			write: func(w http.ResponseWriter) error {
				_, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("streamed"))
				return err
			},
			wantStatus: http.StatusOK,
			wantBody:   "streamed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			applied := 0
			w := newTestWriter(rec, &applied)
			if err := tc.write(w); err != nil {
				t.Fatal(err)
			}
			if applied != 1 {
				t.Errorf("headers applied %d times, want 1", applied)
			}
			if rec.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if rec.Body.String() != tc.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tc.wantBody)
			}
			if got := rec.Result().Header.Get(acao); got != "https://app.example.com" {
				t.Errorf("%s = %q in the written header", acao, got)
			}
			if w.Unwrap() != rec {
				t.Error("Unwrap does not return the wrapped writer")
			}
		})
	}
}

// statusLog is a ResponseWriter recording every status written and the
// Access-Control-Allow-Origin header at that moment.
type statusLog struct {
	header   http.Header
	statuses []int
	acao     []string
}

func (s *statusLog) Header() http.Header         { return s.header }
func (s *statusLog) Write(p []byte) (int, error) { return len(p), nil }
func (s *statusLog) WriteHeader(status int) {
	s.statuses = append(s.statuses, status)
	s.acao = append(s.acao, s.header.Get(acao))
}

func TestResponseWriterInformational(t *testing.T) {
	log := &statusLog{header: http.Header{}}
	applied := 0
	w := Wrap(log, func(h http.Header) { applied++; h.Set(acao, "o") })
	w.WriteHeader(http.StatusEarlyHints)
	w.WriteHeader(http.StatusTeapot)
	if applied != 1 {
		t.Errorf("applied %d times, want 1", applied)
	}
	if got := fmt.Sprint(log.statuses, log.acao); got != "[103 418] [ o]" {
		t.Errorf("statuses and %s: %s", acao, got)
	}
}
