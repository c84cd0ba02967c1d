package adaptive

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func newTransport(t *testing.T) *Transport {
	t.Helper()
	tr := &Transport{}
	ctx, cancel := caddy.NewContext(testCtx)
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
	st := testReg.Stats(addr)
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
	deadStats := testReg.Stats(strings.TrimPrefix(deadURL, "http://"))
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
	st := testReg.Stats(strings.TrimPrefix(backend.URL, "http://"))
	tr := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req := proxied(httptest.NewRequest("GET", backend.URL+"/", nil).WithContext(ctx))
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

// mustReq makes a request as the proxy sends it (with its server in the
// context).
func mustReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return proxied(req)
}

func proxied(req *http.Request) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), caddyhttp.ServerCtxKey, new(caddyhttp.Server)))
}

// TestTransportFeedback: each outcome reaches the target's estimators:
// the time to response headers (not to the end of the body), the status,
// the Retry-After of a 503; a connection error is a failure with no
// status; a client that cancels is not held against the target but a
// deadline is; health checks (no server in the context) are not counted.
func TestTransportFeedback(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(30 * time.Millisecond)
		case "/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
			return
		case "/stream":
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-release
		case "/hang":
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	addr := strings.TrimPrefix(backend.URL, "http://")
	tr := newTransport(t)
	rec := &recorder{}
	tg := testFeedback.target(addr)
	tg.attach("test-recorder", func() observer { return rec })

	do := func(req *http.Request) {
		t.Helper()
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	do(mustReq(t, backend.URL+"/slow"))
	if s := rec.last(); s.status != 200 || s.rtt < int64(30*time.Millisecond) {
		t.Fatalf("slow: %+v", s)
	}
	do(mustReq(t, backend.URL+"/busy"))
	if s := rec.last(); s.status != 503 || s.retryAfter != int64(7*time.Second) || !s.failed() {
		t.Fatalf("busy: %+v", s)
	}
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	do(mustReq(t, backend.URL+"/stream"))
	if s := rec.last(); s.rtt > int64(40*time.Millisecond) {
		t.Fatalf("stream: latency %v counts the body", time.Duration(s.rtt))
	}

	// A health check: passes through, not counted.
	n := rec.count()
	requests := tg.stats.Requests()
	req, _ := http.NewRequest("GET", backend.URL+"/", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if rec.count() != n || tg.stats.Requests() != requests {
		t.Fatal("health check counted")
	}

	// The client cancels: released, not a failure, no sample.
	failures := tg.stats.Failures()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	req = proxied(httptest.NewRequest("GET", backend.URL+"/hang", nil).WithContext(ctx))
	req.RequestURI = ""
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("expected an error")
	}
	if rec.count() != n || tg.stats.Failures() != failures || tg.stats.InFlight() != 0 {
		t.Fatalf("client cancel: samples %d→%d failures %d→%d", n, rec.count(), failures, tg.stats.Failures())
	}
	// A deadline: a failure, with no status.
	ctx, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	req = proxied(httptest.NewRequest("GET", backend.URL+"/hang", nil).WithContext(ctx))
	req.RequestURI = ""
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("expected an error")
	}
	if s := rec.last(); rec.count() != n+1 || s.status != 0 || !s.failed() || tg.stats.Failures() != failures+1 {
		t.Fatalf("deadline: %+v", s)
	}
	if lat, errs := tg.base.read(); lat <= 0 || errs <= 0 {
		t.Fatalf("baseline not fed: %v %v", lat, errs)
	}
}

// recorder is an observer that keeps the samples.
type recorder struct {
	mu sync.Mutex
	s  []sample
}

func (r *recorder) observe(_ int64, s sample) { r.mu.Lock(); r.s = append(r.s, s); r.mu.Unlock() }
func (r *recorder) count() int                { r.mu.Lock(); defer r.mu.Unlock(); return len(r.s) }
func (r *recorder) last() sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.s) == 0 {
		return sample{}
	}
	return r.s[len(r.s)-1]
}

func TestTargetAddress(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"http://10.0.0.1:8080/x", "10.0.0.1:8080"},
		{"http://backend/x", "backend:80"},
		{"https://backend/x", "backend:443"},
	} {
		req, _ := http.NewRequest("GET", c.url, nil)
		if got := targetAddress(req); got != c.want {
			t.Errorf("%s: %s, want %s", c.url, got, c.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "12": 12 * time.Second, "soon": 0,
		"99999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := retryAfter(v, now); got != int64(want) {
			t.Errorf("%q: %v, want %v", v, time.Duration(got), want)
		}
	}
}

// TestTargetAddressFromDialInfo: the proxy's dial info names the target
// as the policies know it.
func TestTargetAddressFromDialInfo(t *testing.T) {
	key := caddy.CtxKey("reverse_proxy.dial_info")
	req, _ := http.NewRequest("GET", "http://ignored/", nil)
	up := &reverseproxy.Upstream{Dial: "10.9.9.9:81"}
	r1 := req.WithContext(context.WithValue(req.Context(), key, reverseproxy.DialInfo{Upstream: up, Address: "x:1"}))
	if got := targetAddress(r1); got != "10.9.9.9:81" {
		t.Errorf("upstream dial: %s", got)
	}
	r2 := req.WithContext(context.WithValue(req.Context(), key, reverseproxy.DialInfo{Address: "10.9.9.9:82"}))
	if got := targetAddress(r2); got != "10.9.9.9:82" {
		t.Errorf("dial address: %s", got)
	}
}

// TestTransportShared checks that the transports of one configuration
// with the same settings share one http transport (issue 13.8: 10,000
// routes made 10,000 of them), that other settings or another
// configuration get their own, and that the last Cleanup releases it
// while the others keep working until then.
func TestTransportShared(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	ctx, cancel := caddy.NewContext(testCtx)
	defer cancel()
	other, cancelOther := caddy.NewContext(testCtx)
	defer cancelOther()
	provision := func(ctx caddy.Context, dial time.Duration) *Transport {
		t.Helper()
		tr := &Transport{HTTPTransport: reverseproxy.HTTPTransport{DialTimeout: caddy.Duration(dial)}}
		if err := tr.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b := provision(ctx, 2*time.Second), provision(ctx, 2*time.Second)
	c := provision(ctx, 3*time.Second)
	d := provision(other, 2*time.Second)
	if a.Transport == nil || a.Transport != b.Transport {
		t.Fatal("two routes with the same transport settings do not share the http transport")
	}
	if c.Transport == a.Transport || d.Transport == a.Transport {
		t.Fatal("a transport is shared with other settings or another configuration")
	}
	if n, ok := testFeedback.transports.References(a.key); !ok || n != 2 {
		t.Fatalf("references = %d, %v; want 2", n, ok)
	}
	get := func(tr *Transport) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, backend.URL, nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	get(a)
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil { // a second Cleanup releases nothing more
		t.Fatal(err)
	}
	if n, ok := testFeedback.transports.References(b.key); !ok || n != 1 {
		t.Fatalf("after one Cleanup: references = %d, %v; want 1", n, ok)
	}
	get(b)
	for _, tr := range []*Transport{b, c, d} {
		if err := tr.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := testFeedback.transports.References(b.key); ok {
		t.Fatal("the shared transport is still held after every route's Cleanup")
	}
}

// TestTransportAttemptBodies: the first attempt of a request gets the
// body wrapper held by its attempts (no allocation), a retry a new one;
// each releases its own attempt, once.
func TestTransportAttemptBodies(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	st := testReg.Stats(strings.TrimPrefix(backend.URL, "http://"))
	tr := newTransport(t)
	req := mustReq(t, backend.URL+"/")
	req = req.WithContext(context.WithValue(req.Context(), caddyhttp.VarsCtxKey, map[string]any{}))

	first, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	a := triedOf(req)
	if a.len() != 2 || first.Body != &a.body || second.Body == &a.body {
		t.Fatalf("attempts %d, first body held: %v, second body held: %v", a.len(), first.Body == &a.body, second.Body == &a.body)
	}
	if st.InFlight() != 2 {
		t.Fatalf("in flight %d", st.InFlight())
	}
	second.Body.Close()
	second.Body.Close()
	if st.InFlight() != 1 {
		t.Fatalf("after the retry's close: in flight %d", st.InFlight())
	}
	first.Body.Close()
	if st.InFlight() != 0 {
		t.Fatalf("after both: in flight %d", st.InFlight())
	}
}
