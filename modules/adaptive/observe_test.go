package adaptive

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestTransportObservesUpstream: the attempts of a request whose upstream
// source gave a duration observer (UpstreamsObserved) are observed on it,
// each with its time to the response headers (not to the end of the
// body); a refused connection is observed too; a request the client
// cancels before an answer is not; a request without an observer (a
// static upstream) is sent as before.
func TestTransportObservesUpstream(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			<-r.Context().Done()
			return
		case "/slow-body":
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	addr := strings.TrimPrefix(backend.URL, "http://")
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: []float64{.25, 10}})
	tr := newTransport(t)

	send := func(ctx context.Context, url string, obs prometheus.Observer) (*http.Response, error) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req = proxied(req.WithContext(context.WithValue(req.Context(), caddyhttp.VarsCtxKey, map[string]any{})))
		if obs != nil {
			UpstreamsObserved(req, []string{addr}, obs)
		}
		res, err := tr.RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return res, err
	}
	read := func() *dto.Histogram {
		var m dto.Metric
		if err := hist.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram()
	}

	for range 2 {
		if _, err := send(context.Background(), backend.URL+"/", hist); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := send(context.Background(), backend.URL+"/slow-body", hist); err != nil {
		t.Fatal(err)
	}
	h := read()
	if h.GetSampleCount() != 3 {
		t.Fatalf("observed %d attempts, want 3", h.GetSampleCount())
	}
	if under := h.GetBucket()[0].GetCumulativeCount(); under != 3 {
		t.Errorf("%d of 3 attempts under 250 ms: the slow body's 300 ms must not count (time to headers)", under)
	}

	// The client cancels while the target has not answered.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { <-ctx.Done(); ccancel() }()
	if _, err := send(cctx, backend.URL+"/hang", hist); err == nil {
		t.Fatal("a canceled request answered")
	}
	if n := read().GetSampleCount(); n != 3 {
		t.Errorf("a canceled attempt was observed: %d", n)
	}

	// A refused connection is the target's failure: observed.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := send(context.Background(), dead.URL+"/", hist); err == nil {
		t.Fatal("expected a dial error")
	}
	if n := read().GetSampleCount(); n != 4 {
		t.Errorf("a refused attempt was not observed: %d", n)
	}

	// No observer: nothing observed, and the request goes through.
	if _, err := send(context.Background(), backend.URL+"/", nil); err != nil {
		t.Fatal(err)
	}
	if n := read().GetSampleCount(); n != 4 {
		t.Errorf("a request without an observer was observed: %d", n)
	}
}

// TestObservedAllocs: observing an attempt allocates nothing.
func TestObservedAllocs(t *testing.T) {
	a := &attempts{observe: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"})}
	var none *attempts
	if n := testing.AllocsPerRun(100, func() { a.observed(1234567); none.observed(1) }); n != 0 {
		t.Errorf("%.1f allocations per observation", n)
	}
}
