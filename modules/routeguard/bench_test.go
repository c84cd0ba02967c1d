package routeguard

import (
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/registry"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the guard's
// own allocations and time are what is measured.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

// guardOnly provisions a guard of route with its metrics, and a request
// and next handler that do no work of their own.
func guardOnly(tb testing.TB, route string) (*Guard, http.ResponseWriter, *http.Request, caddyhttp.Handler) {
	testReg.Reconcile(nil, []string{route})
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: tb.Context()}, testReg))
	tb.Cleanup(cancel)
	g := &Guard{Route: route}
	if err := g.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if g.metrics == nil {
		tb.Fatal("the guard has no metrics: the measure would leave them out")
	}
	r, err := http.NewRequest("GET", "http://example.com/", nil)
	if err != nil {
		tb.Fatal(err)
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	return g, discardWriter{http.Header{}}, r, next
}

// TestGuardAllocations: the route guard (switch, status capture and the
// route's metrics) allocates nothing per request (issue 25: the route
// switch costs nothing measurable).
func TestGuardAllocations(t *testing.T) {
	g, w, r, next := guardOnly(t, "allocs")
	if n := testing.AllocsPerRun(1000, func() { _ = g.ServeHTTP(w, r, next) }); n != 0 {
		t.Errorf("the route guard allocates %v per request, want 0", n)
	}
}

// BenchmarkGuard is the guard's own time per request, around a next
// handler that only writes a status.
//
//	go test ./modules/routeguard -run '^$' -bench Guard -benchmem
func BenchmarkGuard(b *testing.B) {
	g, w, r, next := guardOnly(b, "bench")
	b.ReportAllocs()
	for b.Loop() {
		_ = g.ServeHTTP(w, r, next)
	}
}
