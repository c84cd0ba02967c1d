package routeguard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestStatusWriter: the status recorded is the final one (informational
// ones pass through), a body without a status is a 200, later status
// codes are dropped, and a recycled writer starts clean.
func TestStatusWriter(t *testing.T) {
	var p statusWriters
	codes := &nopWriter{h: http.Header{}}
	sw := p.get(codes)
	sw.WriteHeader(http.StatusEarlyHints)
	if sw.Status() != http.StatusEarlyHints || sw.wroteHeader {
		t.Fatalf("after 103: %d %v", sw.Status(), sw.wroteHeader)
	}
	sw.WriteHeader(http.StatusAccepted)
	sw.WriteHeader(http.StatusTeapot)
	if _, err := sw.Write([]byte("x")); err != nil || sw.Status() != http.StatusAccepted || fmt.Sprint(codes.codes) != "[103 202]" {
		t.Fatalf("final: %d %v %v", sw.Status(), codes.codes, err)
	}
	p.put(sw)

	rec := httptest.NewRecorder()
	if sw.ResponseWriter != nil || sw.Status() != 0 || sw.wroteHeader {
		t.Fatal("recycled writer not reset")
	}

	sw = p.get(rec)
	if n, err := sw.ReadFrom(strings.NewReader("body")); err != nil || n != 4 || sw.Status() != http.StatusOK || rec.Body.String() != "body" {
		t.Fatalf("ReadFrom: %d %v %d %q", n, err, sw.Status(), rec.Body)
	}
	// httptest's recorder cannot be hijacked: the error is passed on.
	if _, _, err := sw.Hijack(); err == nil {
		t.Error("Hijack of a writer that cannot be hijacked succeeded")
	}
	if sw.Unwrap() != rec {
		t.Error("Unwrap does not return the wrapped writer")
	}
}

// nopWriter is a ResponseWriter that keeps the status codes written
// (when codes is not nil) and nothing else.
type nopWriter struct {
	h     http.Header
	codes []int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int) {
	if w.codes != nil || code != http.StatusOK {
		w.codes = append(w.codes, code)
	}
}

// TestGuardAllocs: on an enabled route with metrics, the guard allocates
// nothing per request (issue 25: Sentinel adds no allocation to a plain
// proxy route).
func TestGuardAllocs(t *testing.T) {
	testReg.Reconcile(nil, []string{"allocs"})
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: t.Context()}, testReg))
	defer cancel()
	g := &Guard{Route: "allocs"}
	if err := g.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if g.metrics == nil {
		t.Fatal("no metrics")
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	w, r := &nopWriter{h: http.Header{}}, httptest.NewRequest("GET", "/", nil)
	g.ServeHTTP(w, r, next) // the metrics' label values
	if n := testing.AllocsPerRun(200, func() { g.ServeHTTP(w, r, next) }); n != 0 {
		t.Errorf("%.1f allocations per request", n)
	}
}
