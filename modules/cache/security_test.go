package cache

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
)

// startCookieOrigin is an origin whose responses are fresh for a minute
// and carry an ETag; it answers a matching conditional request with a
// 304 that sets a new session cookie for whoever asked (as session
// frameworks do on every response).
func startCookieOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{hits: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = l.Addr().String()
	var sessions atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "max-age=60")
		h.Set("ETag", `"v1"`)
		switch r.URL.Path {
		case "/cookie-on-304":
			if r.Header.Get("If-None-Match") == `"v1"` {
				h.Set("Set-Cookie", fmt.Sprintf("session=victim-%d", sessions.Add(1)))
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/private-on-304":
			if r.Header.Get("If-None-Match") == `"v1"` {
				h.Set("Cache-Control", "private, max-age=60")
				h.Set("X-User", "victim")
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprint(w, "public page")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return o
}

// TestRevalidationDoesNotStoreSetCookie: a 304 that answers the cache's
// revalidation and sets a cookie (the requesting client's session) must
// not be merged into the shared entry: the next client would get the
// first one's session. Likewise a 304 that makes the response private.
func TestRevalidationDoesNotStoreSetCookie(t *testing.T) {
	o := startCookieOrigin(t)
	base := proxy(t, o, `, "stale_while_revalidate": -1`)
	for _, path := range []string{"/cookie-on-304", "/private-on-304"} {
		expectStatus(t, do(t, "GET", base+path), "sentinel; fwd=uri-miss; stored")
		// The victim's request revalidates (no-cache); the origin's 304
		// carries its session / marks the response private.
		victim := do(t, "GET", base+path, "Cache-Control", "no-cache")
		expectStatus(t, victim, "sentinel; fwd=stale; fwd-status=304")
		if path == "/cookie-on-304" && !strings.HasPrefix(victim.header.Get("Set-Cookie"), "session=victim-") {
			t.Fatalf("%s: the revalidating client did not get its own cookie: %q", path, victim.header.Get("Set-Cookie"))
		}
		// Another client must not get it from the cache.
		other := do(t, "GET", base+path)
		if c := other.header.Get("Set-Cookie"); c != "" {
			t.Errorf("%s: another client got the revalidating client's cookie %q (Cache-Status %q)", path, c, other.cacheStatus())
		}
		if u := other.header.Get("X-User"); u != "" {
			t.Errorf("%s: another client got the private response's header X-User=%q (Cache-Status %q)", path, u, other.cacheStatus())
		}
		if strings.HasPrefix(other.cacheStatus(), "sentinel; hit") {
			t.Errorf("%s: a response made unstorable by its 304 is still served from the cache: %q", path, other.cacheStatus())
		}
	}
}

// TestRedisEntryWithBadStatus: an entry in the shared Redis whose status
// is not an HTTP status (written by something else than a Sentinel, or
// damaged) is a miss: serving it would panic in WriteHeader (the client
// got a reset connection, on every request for the URL until it
// expired).
func TestRedisEntryWithBadStatus(t *testing.T) {
	srv := storetest.Redis(t)
	s := openRedisStore(t, srv, "bad:")
	rc := redisClient(t, srv)
	key := "GET http://h/x"
	name, _ := s.entryName(key)
	for _, status := range []int{0, 42, 1000, 1 << 40} {
		e := freshEntry("poisoned")
		e.Status = status
		if err := rc.Set(context.Background(), name, encodeEntry(key, e), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got := s.Get(key); got != nil {
			t.Errorf("status %d: the entry was used (status %d)", status, got.Status)
		}
	}
	e := freshEntry("fine")
	if err := rc.Set(context.Background(), name, encodeEntry(key, e), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got := s.Get(key); got == nil || string(got.Body) != "fine" {
		t.Fatalf("a good entry was not used: %+v", got)
	}
}

// startAuthOrigin is an origin that lets shared caches store an
// authenticated document on condition that every reuse is revalidated
// with the requester's credentials (RFC 9111 §3.5: `public, no-cache`),
// and one that forbids serving it stale (`must-revalidate`): a requester
// without the right token gets 403, also on a conditional request.
func startAuthOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{hits: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hits[r.URL.Path]++
		o.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		h := w.Header()
		switch r.URL.Path {
		case "/nocache":
			h.Set("Cache-Control", "public, no-cache")
		case "/mustrevalidate":
			h.Set("Cache-Control", "public, max-age=1, must-revalidate")
		}
		h.Set("ETag", `"d1"`)
		if r.Header.Get("If-None-Match") == `"d1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "confidential document")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return o
}

// TestOnlyIfCachedDoesNotSkipRequiredRevalidation: a client's
// `only-if-cached` must not get a stored response that may only be
// reused after revalidation (no-cache, or must-revalidate once stale):
// the origin checks the requester on each revalidation, so an
// unauthenticated client would read the document without it.
func TestOnlyIfCachedDoesNotSkipRequiredRevalidation(t *testing.T) {
	o := startAuthOrigin(t)
	base := proxy(t, o, `, "stale_while_revalidate": -1`)
	for _, path := range []string{"/nocache", "/mustrevalidate"} {
		if r := do(t, "GET", base+path, "Authorization", "Bearer good"); r.status != 200 || !strings.Contains(r.cacheStatus(), "stored") {
			t.Fatalf("%s: the authorised request: %d %q", path, r.status, r.cacheStatus())
		}
	}
	time.Sleep(1100 * time.Millisecond) // /mustrevalidate is stale now
	for _, path := range []string{"/nocache", "/mustrevalidate"} {
		// Without only-if-cached, the reuse is revalidated: 403.
		if r := do(t, "GET", base+path); r.status != http.StatusForbidden || strings.Contains(r.body, "confidential") {
			t.Errorf("%s: an unauthenticated reuse: %d %q", path, r.status, r.body)
		}
		// The 403 dropped the entry: store it again.
		do(t, "GET", base+path, "Authorization", "Bearer good")
		if path == "/mustrevalidate" {
			time.Sleep(1100 * time.Millisecond)
		}
		r := do(t, "GET", base+path, "Cache-Control", "only-if-cached")
		if r.status != http.StatusGatewayTimeout || strings.Contains(r.body, "confidential") {
			t.Errorf("%s: only-if-cached got %d %q (Cache-Status %q), want 504", path, r.status, r.body, r.cacheStatus())
		}
	}
}

// TestUncacheableLeaderDoesNotHoldOthers: coalescing makes concurrent
// misses of a key wait for the one request that went upstream. When its
// response turns out not to be storable (here a no-store event stream
// that stays open), the others must go upstream at once, not wait for
// it to end (up to lock_timeout): one client holding such a request
// open delayed every other client of the URL.
func TestUncacheableLeaderDoesNotHoldOthers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "data: hello\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { close(release); srv.Close() })
	base := proxy(t, &origin{addr: l.Addr().String()}, "")

	first := func() (*http.Response, time.Duration) {
		start := time.Now()
		res, err := http.Get(base + "/events")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("data: hello\n\n"))
		if _, err := io.ReadFull(res.Body, buf); err != nil {
			t.Fatal(err)
		}
		return res, time.Since(start)
	}
	a, _ := first() // the stream stays open
	defer a.Body.Close()
	b, took := first()
	defer b.Body.Close()
	if took > 2*time.Second {
		t.Fatalf("a second client of an uncacheable stream waited %s for the first one (lock_timeout)", took)
	}
}

// startCallbackOrigin is an origin whose JSONP-style answer, fresh for a
// minute, wraps a `callback` parameter read from wherever frameworks
// read parameters: the query (split at '&' and ';', as PHP and older
// servlets do), or the body whatever the method; and that answers a
// method override header as that method.
func startCallbackOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{hits: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cb := "cb"
		for _, p := range strings.FieldsFunc(r.URL.RawQuery, func(c rune) bool { return c == '&' || c == ';' }) {
			if v, ok := strings.CutPrefix(p, "callback="); ok {
				cb = v
			}
		}
		body, _ := io.ReadAll(r.Body)
		if v, ok := strings.CutPrefix(string(body), "callback="); ok {
			cb = v
		}
		w.Header().Set("Cache-Control", "max-age=60")
		if m := r.Header.Get("X-HTTP-Method-Override"); m != "" {
			fmt.Fprintf(w, "%s done", m)
			return
		}
		if u := r.Header.Get("X-Original-URL"); u != "" {
			fmt.Fprintf(w, "page of %s", u) // as served for that URL
			return
		}
		fmt.Fprintf(w, "%s({})", cb)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return o
}

// TestUnkeyedRequestInputNotCached: input the cache key does not hold
// must not decide a stored response. A GET with a body ("fat GET",
// Content-Length or chunked), a method override header, or an ignored
// query parameter cloaking another one behind a ';' made the origin
// answer `evil({})` (or "DELETE done"), which was stored under the plain
// URL and served to every later client of it (cache poisoning).
func TestUnkeyedRequestInputNotCached(t *testing.T) {
	o := startCallbackOrigin(t)
	base := proxy(t, o, "")
	attacks := []struct {
		name, path string
		req        func(url string) *http.Request
	}{
		{"fat GET", "/fat", func(url string) *http.Request {
			r, _ := http.NewRequest("GET", url, strings.NewReader("callback=evil"))
			return r
		}},
		{"chunked fat GET", "/chunked", func(url string) *http.Request {
			r, _ := http.NewRequest("GET", url, io.MultiReader(strings.NewReader("callback=evil")))
			r.ContentLength = -1 // sent chunked
			return r
		}},
		{"method override", "/override", func(url string) *http.Request {
			r, _ := http.NewRequest("GET", url, nil)
			r.Header.Set("X-HTTP-Method-Override", "DELETE")
			return r
		}},
		{"URL override", "/rewrite", func(url string) *http.Request {
			r, _ := http.NewRequest("GET", url, nil)
			r.Header.Set("X-Original-URL", "/admin")
			return r
		}},
		{"parameter cloaking", "/cloak", func(url string) *http.Request {
			r, _ := http.NewRequest("GET", url+"?utm_source=x;callback=evil", nil)
			return r
		}},
	}
	for _, a := range attacks {
		res, err := http.DefaultClient.Do(a.req(base + a.path))
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if s := string(b); !strings.Contains(s, "evil") && !strings.Contains(s, "DELETE") && !strings.Contains(s, "/admin") {
			t.Fatalf("%s: the origin did not take the attack's input: %q", a.name, s)
		}
		victim := do(t, "GET", base+a.path)
		if victim.body != "cb({})" {
			t.Errorf("%s: a later plain GET got %q (Cache-Status %q), want the origin's own cb({})", a.name, victim.body, victim.cacheStatus())
		}
	}
	// A plain GET is still cached.
	expectStatus(t, do(t, "GET", base+"/plain"), "sentinel; fwd=uri-miss; stored")
	expectStatus(t, do(t, "GET", base+"/plain"), "sentinel; hit")
}

// TestVaryStarAnywhere: a Vary that lists "*" among other names, or on a
// second field line, matches no other request (RFC 9110 §12.5.5); only
// a lone "Vary: *" used to keep the response out of the cache. Likewise
// an empty Authorization or Cookie field before the one with the
// credentials used to hide them.
func TestVaryStarAnywhere(t *testing.T) {
	h := &Handler{DefaultTTL: caddy.Duration(time.Hour), Statuses: DefaultStatuses}
	now := time.Now()
	r := &http.Request{Header: http.Header{}}
	for _, hdr := range []http.Header{
		{"Vary": {"Accept-Encoding, *"}},
		{"Vary": {"Accept-Encoding", "*"}},
	} {
		if _, reason := h.storable(r, 200, hdr, nil, now, now); reason != "vary-star" {
			t.Errorf("%v: reason %q, want vary-star", hdr, reason)
		}
	}
	for name, want := range map[string]string{"Authorization": "authorization", "Cookie": "cookie"} {
		r := &http.Request{Header: http.Header{name: {"", "secret"}}}
		if _, reason := h.storable(r, 200, http.Header{"Cache-Control": {"max-age=60"}}, nil, now, now); reason != want {
			t.Errorf("%s with an empty first field: reason %q, want %q", name, reason, want)
		}
	}
}

// TestBodyOfUnknownLength: an HTTP/2 or HTTP/3 GET without
// Content-Length has a body of unknown length (most are empty). One with
// content keeps the response out of the cache, as a GET with a
// Content-Length does; an empty one is cached as usual. (Over h2c here:
// the body is known only once read, and the proxy never waits for it.)
func TestBodyOfUnknownLength(t *testing.T) {
	o := startCallbackOrigin(t)
	base := proxy(t, o, "")
	h2c := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return p
	}()}}
	send := func(path string, body io.Reader) (string, string) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.ContentLength = -1 // no Content-Length: DATA frames
		}
		res, err := h2c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.ProtoMajor != 2 {
			t.Fatalf("HTTP/%d, want h2c", res.ProtoMajor)
		}
		b, _ := io.ReadAll(res.Body)
		return string(b), res.Header.Get("Cache-Status")
	}
	if b, _ := send("/h2fat", io.MultiReader(strings.NewReader("callback=evil"))); b != "evil({})" {
		t.Fatalf("the origin did not take the body: %q", b)
	}
	if b, cs := send("/h2fat", nil); b != "cb({})" {
		t.Errorf("a later GET got %q (Cache-Status %q), want the origin's own cb({})", b, cs)
	}
	if _, cs := send("/h2plain", nil); !strings.Contains(cs, "stored") {
		t.Errorf("an h2 GET without a body: Cache-Status %q, want stored", cs)
	}
	if _, cs := send("/h2plain", nil); !strings.HasPrefix(cs, "sentinel; hit") {
		t.Errorf("an h2 GET without a body: Cache-Status %q, want a hit", cs)
	}
}
