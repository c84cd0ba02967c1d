package shadow_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2978

// received is a request as a backend got it.
type received struct {
	method, uri, host string
	header            http.Header
	body              []byte
	contentLength     int64
}

// backend is a real HTTP server on loopback that records the requests it
// gets. The primary answers with the SHA-256 of the body it read.
type backend struct {
	addr string
	got  chan received
	// hold, when set, is called before answering (a slow target).
	hold func(*http.Request)
}

func startBackend(t *testing.T, hold func(*http.Request)) *backend {
	t.Helper()
	b := &backend{addr: testutil.FreeAddr(t), got: make(chan received, 10000), hold: hold}
	l, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if b.hold != nil {
			b.hold(r)
		}
		b.got <- received{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), body: body, contentLength: r.ContentLength}
		sum := sha256.Sum256(body)
		w.Header().Set("X-Body-Length", strconv.Itoa(len(body)))
		io.WriteString(w, hex.EncodeToString(sum[:]))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// next returns the next request the backend got, failing after 5s.
func (b *backend) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-b.got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the backend got no request")
		return received{}
	}
}

// none checks that the backend gets no request within d.
func (b *backend) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-b.got:
		t.Fatalf("unexpected request %s %s", r.method, r.uri)
	case <-time.After(d):
	}
}

// proxy is a running Sentinel with route "api" (path /api) to upstream
// "primary" and a shadow block to upstream "canary".
type proxy struct {
	url, metrics string
}

// start loads the config: shadow is the body of the route's shadow
// block, canary the shadow upstream's target.
func start(t *testing.T, primary, canary, shadow string) *proxy {
	t.Helper()
	listen, ops := testutil.FreeAddr(t), testutil.FreeAddr(t)
	src := fmt.Sprintf(`system { caddy-admin "localhost:%d"; }
listeners {
    listener "main" { address "%s"; }
    listener "ops" { address "%s"; }
}
routes {
    route "api" {
        matches { path-prefix "/api"; }
        upstream "primary"
        shadow {
            upstream "canary"
            %s
        }
    }
}
upstreams {
    upstream "primary" { target "%s"; }
    upstream "canary" { target "%s"; }
}
observability { metrics { enabled #true; address "%s"; path "/metrics"; } }
`, adminPort, listen, ops, shadow, primary, canary, ops)
	out, _, err := kdladapter.Adapt("test.kdl", []byte(src), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(string(out), "json")
	return &proxy{url: "http://" + listen, metrics: "http://" + ops + "/metrics"}
}

// do sends a request and returns the response status and body.
func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// metric returns the value of the series of name with the labels (k, v
// pairs) in a scrape of the proxy's metrics, 0 when absent.
func (p *proxy) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	res, err := http.Get(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	re := regexp.MustCompile(`(?m)^` + name + `\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		ok := strings.Contains(m[1], `route="api"`) && strings.Contains(m[1], `upstream="canary"`)
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(m[1], labels[i]+`="`+labels[i+1]+`"`)
		}
		if ok {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

// waitMetric waits until the series has the value want.
func (p *proxy) waitMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := p.metric(t, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShadowCopiesTheRequest checks that the shadow upstream gets a copy
// with the same method, path, query, headers and body as the primary,
// marked X-Shadow-Request: true and addressed to the shadow target, while
// the client's response is the primary's.
func TestShadowCopiesTheRequest(t *testing.T) {
	primary, canary := startBackend(t, nil), startBackend(t, nil)
	p := start(t, primary.addr, canary.addr, `buffer-body #true`)

	body := []byte(`{"item":"shadowed","n":42}`)
	req := newReq(t, http.MethodPost, p.url+"/api/items?x=1&y=two", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Custom", "abc")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	req.Header.Set("Authorization", "Bearer t0ken")
	status, got := do(t, req)
	if status != http.StatusOK || got != sum(body) {
		t.Fatalf("client got %d %q, want 200 and the primary's answer %q", status, got, sum(body))
	}
	pr, cr := primary.next(t), canary.next(t)
	if !bytes.Equal(pr.body, body) || !bytes.Equal(cr.body, body) {
		t.Errorf("bodies: primary %q, copy %q, want %q", pr.body, cr.body, body)
	}
	if cr.method != http.MethodPost || cr.uri != "/api/items?x=1&y=two" {
		t.Errorf("copy is %s %s", cr.method, cr.uri)
	}
	if cr.header.Get("X-Shadow-Request") != "true" || pr.header.Get("X-Shadow-Request") != "" {
		t.Errorf("X-Shadow-Request: copy %q, primary %q", cr.header.Get("X-Shadow-Request"), pr.header.Get("X-Shadow-Request"))
	}
	if cr.host != canary.addr {
		t.Errorf("copy's Host = %q, want the shadow target %q", cr.host, canary.addr)
	}
	if cr.contentLength != int64(len(body)) {
		t.Errorf("copy's Content-Length = %d", cr.contentLength)
	}
	// Every header the primary got, the copy got with the same values.
	for k, v := range pr.header {
		if strings.Join(cr.header[k], ",") != strings.Join(v, ",") {
			t.Errorf("header %s: copy %q, primary %q", k, cr.header[k], v)
		}
	}
	for k := range cr.header {
		if pr.header[k] == nil && k != "X-Shadow-Request" {
			t.Errorf("the copy has header %s the primary has not", k)
		}
	}

	// A GET is copied without a body.
	if status, _ := do(t, newReq(t, http.MethodGet, p.url+"/api/get", nil)); status != http.StatusOK {
		t.Fatalf("GET: %d", status)
	}
	primary.next(t)
	if cr := canary.next(t); cr.method != http.MethodGet || cr.uri != "/api/get" || len(cr.body) != 0 {
		t.Errorf("GET copy: %s %s %q", cr.method, cr.uri, cr.body)
	}
	p.waitMetric(t, 2, "sentinel_shadow_sent_total")
	p.waitMetric(t, 0, "sentinel_shadow_in_flight")
}

// TestShadowWithoutBufferBody checks the original's default: the copy of
// a request with a body has no body, the primary gets it all.
func TestShadowWithoutBufferBody(t *testing.T) {
	primary, canary := startBackend(t, nil), startBackend(t, nil)
	p := start(t, primary.addr, canary.addr, ``)
	body := bytes.Repeat([]byte("b"), 5000)
	if status, got := do(t, newReq(t, http.MethodPut, p.url+"/api/put", bytes.NewReader(body))); status != http.StatusOK || got != sum(body) {
		t.Fatalf("client got %d %q", status, got)
	}
	if pr := primary.next(t); !bytes.Equal(pr.body, body) {
		t.Errorf("primary got %d bytes, want %d", len(pr.body), len(body))
	}
	if cr := canary.next(t); cr.method != http.MethodPut || len(cr.body) != 0 || cr.contentLength != 0 {
		t.Errorf("copy: %s, %d bytes, Content-Length %d; want PUT without a body", cr.method, len(cr.body), cr.contentLength)
	}
}

// TestShadowPercentage checks that about the configured share of the
// requests is copied.
func TestShadowPercentage(t *testing.T) {
	primary, canary := startBackend(t, nil), startBackend(t, nil)
	p := start(t, primary.addr, canary.addr, `percentage 25`)
	const n = 400
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				res, err := http.Get(fmt.Sprintf("%s/api/p/%d", p.url, i))
				if err != nil {
					t.Error(err)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	// Let the copies in flight land.
	deadline := time.Now().Add(5 * time.Second)
	for p.metric(t, "sentinel_shadow_in_flight") != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sent := p.metric(t, "sentinel_shadow_sent_total")
	// 25 % of 400 is 100, standard deviation 8.7: 60..140 is ±4.6 σ.
	if sent < 60 || sent > 140 {
		t.Errorf("%v of %d requests copied at 25 %%", sent, n)
	}
	if got := float64(len(canary.got)); got != sent {
		t.Errorf("the canary got %v copies, the metric says %v", got, sent)
	}
	if got := len(primary.got); got != n {
		t.Errorf("the primary got %d of %d requests", got, n)
	}
	t.Logf("%v of %d requests copied at 25 %%", sent, n)
}

// TestShadowSampleHeader checks that only requests carrying the sample
// header with exactly its value are copied.
func TestShadowSampleHeader(t *testing.T) {
	primary, canary := startBackend(t, nil), startBackend(t, nil)
	p := start(t, primary.addr, canary.addr, `sample-header "X-Canary" "yes"`)
	for _, v := range []string{"", "no", "YES", "yes, please"} {
		req := newReq(t, http.MethodGet, p.url+"/api/s", nil)
		if v != "" {
			req.Header.Set("X-Canary", v)
		}
		if status, _ := do(t, req); status != http.StatusOK {
			t.Fatalf("X-Canary %q: status %d", v, status)
		}
	}
	req := newReq(t, http.MethodGet, p.url+"/api/sampled", nil)
	req.Header.Set("x-canary", "yes")
	do(t, req)
	if cr := canary.next(t); cr.uri != "/api/sampled" || cr.header.Get("X-Canary") != "yes" {
		t.Errorf("copy of %s with X-Canary %q, want only /api/sampled", cr.uri, cr.header.Get("X-Canary"))
	}
	canary.none(t, 200*time.Millisecond)
	if got := len(primary.got); got != 5 {
		t.Errorf("the primary got %d requests, want 5", got)
	}
}

// TestShadowBodyLimit checks that a body above max-body-bytes is not
// copied, with or without Content-Length, while the primary gets it
// whole; a body at the limit is copied.
func TestShadowBodyLimit(t *testing.T) {
	primary, canary := startBackend(t, nil), startBackend(t, nil)
	p := start(t, primary.addr, canary.addr, `buffer-body #true; max-body-bytes 1024`)

	atLimit := bytes.Repeat([]byte("a"), 1024)
	if status, got := do(t, newReq(t, http.MethodPost, p.url+"/api/at", bytes.NewReader(atLimit))); status != 200 || got != sum(atLimit) {
		t.Fatalf("at the limit: %d %q", status, got)
	}
	if cr := canary.next(t); !bytes.Equal(cr.body, atLimit) {
		t.Errorf("copy of a body at the limit: %d bytes", len(cr.body))
	}
	primary.next(t)

	large := make([]byte, 64<<10)
	for i := range large {
		large[i] = byte(i * 7)
	}
	// With Content-Length.
	if status, got := do(t, newReq(t, http.MethodPost, p.url+"/api/large", bytes.NewReader(large))); status != 200 || got != sum(large) {
		t.Fatalf("large body with Content-Length: %d %q, want the primary's hash of all %d bytes", status, got, len(large))
	}
	// Chunked: the limit is found by reading.
	req := newReq(t, http.MethodPost, p.url+"/api/chunked", io.MultiReader(bytes.NewReader(large[:1000]), bytes.NewReader(large[1000:])))
	req.ContentLength = -1
	if status, got := do(t, req); status != 200 || got != sum(large) {
		t.Fatalf("large chunked body: %d %q", status, got)
	}
	for range 2 {
		if pr := primary.next(t); !bytes.Equal(pr.body, large) {
			t.Errorf("primary got %d bytes of %d", len(pr.body), len(large))
		}
	}
	canary.none(t, 200*time.Millisecond)
	p.waitMetric(t, 2, "sentinel_shadow_dropped_total", "reason", "body_too_large")
	p.waitMetric(t, 1, "sentinel_shadow_sent_total")
}

// TestShadowStreamsBodyBeyondLimit checks that the primary gets a body
// above max-body-bytes as it comes: the first bytes reach it while the
// client still holds the rest (a handler buffering the whole body would
// deadlock here).
func TestShadowStreamsBodyBeyondLimit(t *testing.T) {
	firstPart := make(chan struct{})
	primaryAddr := testutil.FreeAddr(t)
	l, err := net.Listen("tcp", primaryAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 4096)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		close(firstPart)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d", len(buf)+len(rest))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	canary := startBackend(t, nil)
	p := start(t, primaryAddr, canary.addr, `buffer-body #true; max-body-bytes 1024`)

	pr, pw := io.Pipe()
	req := newReq(t, http.MethodPost, p.url+"/api/stream", pr)
	req.ContentLength = -1
	go func() {
		pw.Write(bytes.Repeat([]byte("s"), 4096))
		select {
		case <-firstPart:
			pw.Write(bytes.Repeat([]byte("t"), 4096))
			pw.Close()
		case <-time.After(5 * time.Second):
			pw.CloseWithError(fmt.Errorf("the primary did not get the first part while the client held the rest"))
		}
	}()
	status, got := do(t, req)
	if status != 200 || got != "8192" {
		t.Fatalf("client got %d %q, want 200 \"8192\"", status, got)
	}
	canary.none(t, 200*time.Millisecond)
}

// TestShadowSlowTargetDoesNotSlowPrimary checks, with a shadow target
// that never answers, that the primary's latency stays low, that no more
// than max-in-flight copies are held, and that the others are dropped
// and counted.
func TestShadowSlowTargetDoesNotSlowPrimary(t *testing.T) {
	testutil.Exclusive(t)
	release := make(chan struct{})
	primary := startBackend(t, nil)
	canary := startBackend(t, func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	p := start(t, primary.addr, canary.addr, `max-in-flight 4; timeout-ms 30000`)

	const n = 60
	c := &http.Client{Timeout: 5 * time.Second}
	var worst time.Duration
	before := runtime.NumGoroutine()
	for i := range n {
		start := time.Now()
		res, err := c.Get(fmt.Sprintf("%s/api/slow/%d", p.url, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		worst = max(worst, time.Since(start))
		if d := time.Since(start); d > 10*time.Millisecond {
			t.Logf("request %d took %v", i, d)
		}
	}
	// The primary answers in a millisecond or so here; a proxy waiting
	// for the shadow would take the 30 s timeout.
	if worst > 300*time.Millisecond {
		t.Errorf("slowest primary request took %v with a hung shadow target", worst)
	}
	t.Logf("slowest of %d primary requests with a hung shadow target: %v", n, worst)
	// The copies held are four: a copy's goroutines (the handler's, the
	// transport's connection, the target's) do not pile up per request.
	if grown := runtime.NumGoroutine() - before; grown > 40 {
		t.Errorf("%d more goroutines after %d requests with 4 copies in flight", grown, n)
	} else {
		t.Logf("%d more goroutines after %d requests with 4 copies in flight", grown, n)
	}
	p.waitMetric(t, 4, "sentinel_shadow_in_flight")
	p.waitMetric(t, n-4, "sentinel_shadow_dropped_total", "reason", "limit")
	if got := len(primary.got); got != n {
		t.Errorf("primary got %d of %d", got, n)
	}
	// Released, the four copies complete.
	release <- struct{}{}
	release <- struct{}{}
	release <- struct{}{}
	release <- struct{}{}
	p.waitMetric(t, 4, "sentinel_shadow_sent_total")
	p.waitMetric(t, 0, "sentinel_shadow_in_flight")
}

// TestShadowDeadAndTimingOutTargets checks that copies to a target that
// refuses connections, or answers after timeout-ms, fail and are
// counted, while the primary answers at once.
func TestShadowDeadAndTimingOutTargets(t *testing.T) {
	testutil.Exclusive(t)
	primary := startBackend(t, nil)
	t.Run("dead", func(t *testing.T) {
		dead := testutil.FreeAddr(t) // nothing listens
		p := start(t, primary.addr, dead, ``)
		for i := range 10 {
			start := time.Now()
			if status, _ := do(t, newReq(t, http.MethodGet, fmt.Sprintf("%s/api/dead/%d", p.url, i), nil)); status != 200 {
				t.Fatalf("status %d", status)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("primary took %v with a dead shadow target", d)
			}
		}
		p.waitMetric(t, 10, "sentinel_shadow_failed_total", "reason", "error")
		p.waitMetric(t, 0, "sentinel_shadow_sent_total")
	})
	t.Run("timeout", func(t *testing.T) {
		slow := startBackend(t, func(r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		})
		p := start(t, primary.addr, slow.addr, `timeout-ms 200`)
		for i := range 3 {
			start := time.Now()
			if status, _ := do(t, newReq(t, http.MethodGet, fmt.Sprintf("%s/api/late/%d", p.url, i), nil)); status != 200 {
				t.Fatalf("status %d", status)
			}
			if d := time.Since(start); d > 150*time.Millisecond {
				t.Errorf("primary took %v with a slow shadow target", d)
			}
		}
		p.waitMetric(t, 3, "sentinel_shadow_failed_total", "reason", "timeout")
		p.waitMetric(t, 0, "sentinel_shadow_in_flight")
	})
}
