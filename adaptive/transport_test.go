package adaptive

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

func newTransport(t *testing.T) *Transport {
	t.Helper()
	tr := &Transport{}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTransportCountsInFlight sends real requests to a real backend: a
// request is in flight until its body is closed; errors and 5xx count as
// failures; a refused connection is released at once.
func TestTransportCountsInFlight(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "done")
	}))
	defer backend.Close()
	addr := strings.TrimPrefix(backend.URL, "http://")
	st := registry.Default.Stats(addr)
	before := st.Requests()
	tr := newTransport(t)

	res, err := tr.RoundTrip(mustReq(t, backend.URL+"/slow"))
	if err != nil {
		t.Fatal(err)
	}
	if st.InFlight() != 1 {
		t.Fatalf("in flight %d while the body streams", st.InFlight())
	}
	close(release)
	io.ReadAll(res.Body)
	res.Body.Close()
	res.Body.Close() // twice: released once
	if st.InFlight() != 0 || st.Requests() != before+1 {
		t.Fatalf("after close: in flight %d, requests %d", st.InFlight(), st.Requests())
	}
	failures := st.Failures()
	res, err = tr.RoundTrip(mustReq(t, backend.URL+"/fail"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if st.Failures() != failures+1 {
		t.Error("5xx not counted as a failure")
	}
	if _, err := res.Body.(*releasingBody).Write([]byte("x")); err == nil {
		t.Error("write to a plain body must fail")
	}

	// A refused connection.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	deadStats := registry.Default.Stats(strings.TrimPrefix(deadURL, "http://"))
	if _, err := tr.RoundTrip(mustReq(t, deadURL+"/")); err == nil {
		t.Fatal("expected a dial error")
	}
	if deadStats.InFlight() != 0 || deadStats.Failures() != 1 {
		t.Errorf("dial error: in flight %d failures %d", deadStats.InFlight(), deadStats.Failures())
	}
}

// TestTransportClientCancel: a client that gives up mid-stream releases
// the request.
func TestTransportClientCancel(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer backend.Close()
	st := registry.Default.Stats(strings.TrimPrefix(backend.URL, "http://"))
	tr := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", backend.URL+"/", nil).WithContext(ctx)
	req.RequestURI = ""
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	deadline := time.Now().Add(2 * time.Second)
	for st.InFlight() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st.InFlight() != 0 {
		t.Errorf("canceled request still in flight")
	}
}

func mustReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
