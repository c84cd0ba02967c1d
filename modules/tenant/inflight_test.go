package tenant

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func provisionInFlight(t *testing.T, h *InFlight) *InFlight {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// TestInFlightSharedZone: two handlers of one zone (two routes of a
// namespace) share its count; another zone is not affected.
func TestInFlightSharedZone(t *testing.T) {
	r1 := provisionInFlight(t, &InFlight{Zone: "namespace:a", Max: 2})
	r2 := provisionInFlight(t, &InFlight{Zone: "namespace:a", Max: 2})
	other := provisionInFlight(t, &InFlight{Zone: "namespace:b", Max: 2})
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	blocking := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	var wg sync.WaitGroup
	for _, h := range []*InFlight{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), blocking)
		}()
	}
	<-entered
	<-entered
	ok := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(204); return nil })
	w := httptest.NewRecorder()
	if err := r1.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), ok); err != nil {
		t.Fatal(err)
	}
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "too many requests in flight for namespace:a") {
		t.Errorf("third request: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	_ = other.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), ok)
	if w.Code != 204 {
		t.Errorf("other zone: %d", w.Code)
	}
	close(release)
	wg.Wait()
	w = httptest.NewRecorder()
	_ = r2.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), ok)
	if w.Code != 204 || r2.count.n.Load() != 0 {
		t.Errorf("after release: %d, count %d", w.Code, r2.count.n.Load())
	}
}

func TestInFlightValidate(t *testing.T) {
	for _, h := range []InFlight{{Max: 1}, {Zone: "z"}, {Zone: "z", Max: 1, Status: 200}} {
		if h.Validate() == nil {
			t.Errorf("%+v accepted", h)
		}
	}
	h := provisionInFlight(t, &InFlight{Zone: "z", Max: 1, Status: 429})
	if h.Status != 429 {
		t.Error(h.Status)
	}
	if err := (&InFlight{}).Cleanup(); err != nil {
		t.Error(err)
	}
}
