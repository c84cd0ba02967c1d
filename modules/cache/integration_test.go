package cache

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// adminPort is this package's own Caddy admin port.
const adminPort = 2983

// purgeToken is the test's purge token.
const purgeToken = "purge-secret-token"

// origin is a real HTTP server on loopback whose paths exercise the
// cache's rules; it counts the requests it gets per path.
type origin struct {
	addr     string
	mu       sync.Mutex
	hits     map[string]int
	notMod   atomic.Int64
	failing  atomic.Bool
	version  atomic.Int64
	slowHits atomic.Int64
}

func (o *origin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

func startOrigin(t testing.TB) *origin {
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
		n := o.hits[r.URL.Path]
		o.mu.Unlock()
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/fresh", "/other", "/a/b", "/a/c":
			h.Set("Cache-Control", "max-age=60")
		case "/default":
			// no freshness information: the default TTL
		case "/etag":
			h.Set("Cache-Control", "max-age=1")
			h.Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				o.notMod.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/swr":
			h.Set("Cache-Control", "max-age=1, stale-while-revalidate=30")
		case "/sie":
			if o.failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.Set("Cache-Control", "max-age=1, stale-if-error=60")
		case "/mustrev":
			if o.failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.Set("Cache-Control", "max-age=1, must-revalidate, stale-if-error=60")
		case "/vary":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "Accept-Language")
			fmt.Fprintf(w, "lang=%s n=%d", r.Header.Get("Accept-Language"), n)
			return
		case "/private":
			h.Set("Cache-Control", "private, max-age=60")
		case "/nostore":
			h.Set("Cache-Control", "no-store")
		case "/cookie":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Set-Cookie", "session=abc")
		case "/slow":
			h.Set("Cache-Control", "max-age=60")
			o.slowHits.Add(1)
			time.Sleep(300 * time.Millisecond)
		case "/big":
			h.Set("Cache-Control", "max-age=60")
			_, _ = w.Write([]byte(strings.Repeat("x", 4096)))
			return
		case "/teapot":
			h.Set("Cache-Control", "max-age=60")
			w.WriteHeader(http.StatusTeapot)
		}
		fmt.Fprintf(w, "%s?%s n=%d", r.URL.Path, r.URL.RawQuery, n)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return o
}

// proxy loads a Caddy config with a cached route to the origin, a purge
// route (method PURGE) and a stats route, and returns its address.
func proxy(t testing.TB, o *origin, extra string) string {
	t.Helper()
	return proxyStorage(t, o, t.Name(), extra)
}

// proxyStorage is proxy with the storage's name (tests keep to their own
// storage: stores outlive configs).
func proxyStorage(t testing.TB, o *origin, name, extra string) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	storage := fmt.Sprintf(`{"name":%q,"max_size":1048576}`, name)
	tc.InitServer(fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d", "config": {"persist": false}},
	"apps": {"http": {"servers": {"s": {
		"listen": [%q],
		"protocols": ["h1", "h2", "h2c"],
		"automatic_https": {"disable": true},
		"routes": [
			{"match": [{"method": ["PURGE"]}], "handle": [{"handler": "sentinel_cache_admin", "action": "purge", "storage": %s, "tokens": [{"token": %q}]}], "terminal": true},
			{"match": [{"path": ["/_cache/stats"]}], "handle": [{"handler": "sentinel_cache_admin", "action": "stats", "storage": %s}], "terminal": true},
			{"handle": [
				{"handler": "sentinel_cache", "storage": %s, "status_header": "sentinel", "max_entry_bytes": 1024, "ignore_query_params": ["utm_source"], "exclude_paths": ["/excluded"], "exclude_extensions": ["php"] %s},
				{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
			]}
		]
	}}}}
}`, adminPort, addr, storage, purgeToken, storage, storage, extra, o.addr), "json")
	return "http://" + addr
}

type result struct {
	status int
	body   string
	header http.Header
}

func do(t testing.TB, method, url string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return result{res.StatusCode, string(b), res.Header}
}

func (r result) cacheStatus() string { return r.header.Get("Cache-Status") }

func expectStatus(t *testing.T, r result, want string) {
	t.Helper()
	if !strings.HasPrefix(r.cacheStatus(), want) {
		t.Errorf("Cache-Status = %q, want prefix %q (body %q)", r.cacheStatus(), want, r.body)
	}
}

func TestHitMissAndKey(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")

	first := do(t, "GET", base+"/fresh?x=1")
	expectStatus(t, first, "sentinel; fwd=uri-miss; stored")
	second := do(t, "GET", base+"/fresh?x=1")
	expectStatus(t, second, "sentinel; hit; ttl=")
	if second.body != first.body || o.count("/fresh") != 1 {
		t.Fatalf("second request not served from the cache: %q vs %q, origin saw %d", second.body, first.body, o.count("/fresh"))
	}
	if second.header.Get("Age") == "" {
		t.Error("a hit has no Age header")
	}
	// The query string is part of the key.
	other := do(t, "GET", base+"/fresh?x=2")
	expectStatus(t, other, "sentinel; fwd=uri-miss")
	if o.count("/fresh") != 2 || !strings.Contains(other.body, "x=2") {
		t.Fatalf("?x=2 was served ?x=1's entry: %q", other.body)
	}
	// Ignored parameters are not.
	if r := do(t, "GET", base+"/fresh?x=1&utm_source=mail"); !strings.HasPrefix(r.cacheStatus(), "sentinel; hit") {
		t.Errorf("utm_source made a new key: %q", r.cacheStatus())
	}
	// HEAD is answered from GET's entry, without a body.
	if r := do(t, "HEAD", base+"/fresh?x=1"); !strings.HasPrefix(r.cacheStatus(), "sentinel; hit") || r.body != "" {
		t.Errorf("HEAD: %q %q", r.cacheStatus(), r.body)
	}
	// The default TTL applies without freshness information.
	do(t, "GET", base+"/default")
	expectStatus(t, do(t, "GET", base+"/default"), "sentinel; hit; ttl=35")
	// Not cacheable: POST, excluded paths and extensions, a status not
	// in the list, a body over max_entry_bytes.
	expectStatus(t, do(t, "POST", base+"/fresh"), "sentinel; fwd=bypass")
	expectStatus(t, do(t, "GET", base+"/excluded/x"), "sentinel; fwd=bypass")
	expectStatus(t, do(t, "GET", base+"/index.php"), "sentinel; fwd=bypass")
	do(t, "GET", base+"/teapot")
	expectStatus(t, do(t, "GET", base+"/teapot"), "sentinel; fwd=uri-miss; detail=status")
	big := do(t, "GET", base+"/big")
	if len(big.body) != 4096 {
		t.Fatalf("big body cut: %d bytes", len(big.body))
	}
	// Its length was unknown when the header went: "stored" was not
	// claimed, and it was not stored.
	if r := do(t, "GET", base+"/big"); r.cacheStatus() != "sentinel; fwd=uri-miss" {
		t.Errorf("big body: Cache-Status %q", r.cacheStatus())
	}
	// A Range request passes through.
	expectStatus(t, do(t, "GET", base+"/fresh?x=1", "Range", "bytes=0-1"), "sentinel; fwd=bypass")
}

func TestPrivateNoStoreCookie(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")
	for path, detail := range map[string]string{"/private": "private", "/nostore": "no-store", "/cookie": "set-cookie"} {
		do(t, "GET", base+path)
		r := do(t, "GET", base+path)
		expectStatus(t, r, "sentinel; fwd=uri-miss; detail="+detail)
		if o.count(path) != 2 {
			t.Errorf("%s: origin saw %d requests, want 2", path, o.count(path))
		}
	}
	// A request's no-store neither serves nor stores.
	do(t, "GET", base+"/other")
	expectStatus(t, do(t, "GET", base+"/other", "Cache-Control", "no-store"), "sentinel; fwd=request")
	// A request with credentials is not stored for others.
	expectStatus(t, do(t, "GET", base+"/a/b", "Authorization", "Bearer x"), "sentinel; fwd=uri-miss; detail=authorization")
	expectStatus(t, do(t, "GET", base+"/a/b"), "sentinel; fwd=uri-miss; stored")
	// Nor one to a request with cookies (its session's page), unless
	// the response is public.
	expectStatus(t, do(t, "GET", base+"/a/c", "Cookie", "session=1"), "sentinel; fwd=uri-miss; detail=cookie")
	expectStatus(t, do(t, "GET", base+"/a/c"), "sentinel; fwd=uri-miss; stored")
	expectStatus(t, do(t, "GET", base+"/a/c", "Cookie", "session=2"), "sentinel; hit")
}

func TestCachePrivateOption(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, `, "cache_private": true`)
	do(t, "GET", base+"/private")
	expectStatus(t, do(t, "GET", base+"/private"), "sentinel; hit")
}

func TestVary(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")
	en := do(t, "GET", base+"/vary", "Accept-Language", "en")
	de := do(t, "GET", base+"/vary", "Accept-Language", "de")
	if !strings.Contains(en.body, "lang=en") || !strings.Contains(de.body, "lang=de") {
		t.Fatalf("variants mixed up: %q %q", en.body, de.body)
	}
	en2 := do(t, "GET", base+"/vary", "Accept-Language", "en")
	de2 := do(t, "GET", base+"/vary", "Accept-Language", "de")
	if en2.body != en.body || de2.body != de.body {
		t.Fatalf("variants not served from the cache: %q %q", en2.body, de2.body)
	}
	expectStatus(t, en2, "sentinel; hit")
	expectStatus(t, de2, "sentinel; hit")
	if o.count("/vary") != 2 {
		t.Fatalf("origin saw %d requests, want 2", o.count("/vary"))
	}
}

func TestRevalidate(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, `, "stale_while_revalidate": -1`)
	do(t, "GET", base+"/etag")
	// A client's conditional request on a fresh entry: 304 from the cache.
	if r := do(t, "GET", base+"/etag", "If-None-Match", `"v1"`); r.status != http.StatusNotModified {
		t.Fatalf("conditional hit: %d", r.status)
	}
	time.Sleep(2100 * time.Millisecond)
	r := do(t, "GET", base+"/etag")
	expectStatus(t, r, "sentinel; fwd=stale; fwd-status=304")
	if r.status != http.StatusOK || !strings.HasPrefix(r.body, "/etag") {
		t.Fatalf("revalidated response: %d %q", r.status, r.body)
	}
	if o.notMod.Load() != 1 {
		t.Fatalf("origin answered %d conditional requests, want 1", o.notMod.Load())
	}
	expectStatus(t, do(t, "GET", base+"/etag"), "sentinel; hit")
}

func TestStaleWhileRevalidate(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")
	first := do(t, "GET", base+"/swr")
	time.Sleep(1100 * time.Millisecond)
	stale := do(t, "GET", base+"/swr")
	expectStatus(t, stale, "sentinel; hit; ttl=-")
	if stale.body != first.body {
		t.Fatalf("stale-while-revalidate did not serve the stale entry: %q", stale.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.count("/swr") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if o.count("/swr") != 2 {
		t.Fatal("no background revalidation")
	}
	var fresh result
	for time.Now().Before(deadline) {
		if fresh = do(t, "GET", base+"/swr"); fresh.body != first.body {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	expectStatus(t, fresh, "sentinel; hit; ttl=")
	if !strings.Contains(fresh.body, "n=2") {
		t.Fatalf("the entry was not refreshed: %q", fresh.body)
	}
}

func TestStaleIfError(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, `, "stale_while_revalidate": -1`)
	first := do(t, "GET", base+"/sie")
	do(t, "GET", base+"/mustrev")
	o.failing.Store(true)
	time.Sleep(1100 * time.Millisecond)
	r := do(t, "GET", base+"/sie")
	if r.status != http.StatusOK || r.body != first.body {
		t.Fatalf("stale-if-error: %d %q", r.status, r.body)
	}
	expectStatus(t, r, "sentinel; fwd=stale; fwd-status=503")
	// must-revalidate forbids it.
	if r := do(t, "GET", base+"/mustrev"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("must-revalidate served stale: %d", r.status)
	}
}

func TestStaleIfErrorUpstreamDown(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, `, "stale_while_revalidate": -1`)
	first := do(t, "GET", base+"/sie", "Host", "example.com")
	time.Sleep(1100 * time.Millisecond)
	// A config whose upstream is down, with the same storage.
	dead := testutil.FreeAddr(t)
	o2 := &origin{addr: dead}
	base2 := proxyStorage(t, o2, t.Name(), `, "stale_while_revalidate": -1`)
	r := do(t, "GET", base2+"/sie", "Host", "example.com")
	if r.status != http.StatusOK || r.body != first.body {
		t.Fatalf("stale-if-error with the upstream down: %d %q", r.status, r.body)
	}
	expectStatus(t, r, "sentinel; fwd=stale; ttl=-")
	_ = base
}

func TestPurgeAndStats(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")
	for _, p := range []string{"/fresh", "/fresh?x=1", "/other", "/a/b", "/a/c"} {
		do(t, "GET", base+p)
	}
	// Purging needs the token.
	if r := do(t, "PURGE", base+"/fresh"); r.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated purge: %d", r.status)
	}
	if r := do(t, "PURGE", base+"/fresh", "Authorization", "Bearer wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("purge with a wrong token: %d", r.status)
	}
	expectStatus(t, do(t, "GET", base+"/fresh"), "sentinel; hit")
	auth := "Bearer " + purgeToken
	r := do(t, "PURGE", base+"/fresh", "Authorization", auth)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"purged":2`) {
		t.Fatalf("exact purge: %d %s", r.status, r.body)
	}
	expectStatus(t, do(t, "GET", base+"/fresh"), "sentinel; fwd=uri-miss")
	expectStatus(t, do(t, "GET", base+"/other"), "sentinel; hit")
	r = do(t, "PURGE", base+"/a/*", "Authorization", auth, "X-Purge-Wildcard", "true")
	if !strings.Contains(r.body, `"purged":2`) {
		t.Fatalf("wildcard purge: %s", r.body)
	}
	expectStatus(t, do(t, "GET", base+"/a/b"), "sentinel; fwd=uri-miss")
	expectStatus(t, do(t, "GET", base+"/other"), "sentinel; hit")

	s := do(t, "GET", base+"/_cache/stats")
	var st Stats
	if err := json.Unmarshal([]byte(s.body), &st); err != nil {
		t.Fatalf("stats: %v %q", err, s.body)
	}
	if st.Storage != t.Name() || st.Hits < 2 || st.Purged != 4 || st.Entries == 0 || st.Stores < 5 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestCoalescing(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i] = do(t, "GET", base+"/slow").body
		}()
	}
	wg.Wait()
	if n := o.slowHits.Load(); n != 1 {
		t.Fatalf("8 concurrent misses sent %d requests upstream, want 1", n)
	}
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("coalesced responses differ: %q %q", b, bodies[0])
		}
	}
}

func TestRequestDirectives(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, `, "stale_while_revalidate": -1`)
	// only-if-cached on a miss: 504.
	if r := do(t, "GET", base+"/etag", "Cache-Control", "only-if-cached"); r.status != http.StatusGatewayTimeout {
		t.Fatalf("only-if-cached miss: %d", r.status)
	}
	do(t, "GET", base+"/etag")
	// no-cache revalidates a fresh entry; Pragma: no-cache too.
	expectStatus(t, do(t, "GET", base+"/etag", "Cache-Control", "no-cache"), "sentinel; fwd=stale; fwd-status=304")
	expectStatus(t, do(t, "GET", base+"/etag", "Pragma", "no-cache"), "sentinel; fwd=stale; fwd-status=304")
	expectStatus(t, do(t, "GET", base+"/etag", "Cache-Control", "max-age=0"), "sentinel; fwd=stale; fwd-status=304")
	if o.notMod.Load() != 3 {
		t.Fatalf("origin answered %d conditional requests, want 3", o.notMod.Load())
	}
	// A stale entry and only-if-cached: served as it is.
	time.Sleep(1100 * time.Millisecond)
	expectStatus(t, do(t, "GET", base+"/etag", "Cache-Control", "only-if-cached"), "sentinel; hit; ttl=-")
	// A client's own conditional request on a stale entry passes, and
	// its 304 does not drop the entry.
	if r := do(t, "GET", base+"/etag", "If-None-Match", `"v1"`); r.status != http.StatusNotModified {
		t.Fatalf("client's conditional request: %d", r.status)
	}
	expectStatus(t, do(t, "GET", base+"/etag"), "sentinel; fwd=stale; fwd-status=304")
}

func TestHybridThroughProxy(t *testing.T) {
	o := startOrigin(t)
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	tc.InitServer(fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d", "config": {"persist": false}},
	"apps": {"http": {"servers": {"s": {
		"listen": [%q], "automatic_https": {"disable": true},
		"routes": [{"handle": [
			{"handler": "sentinel_cache", "storage": {"name": "hybrid", "backend": "hybrid", "max_size": 600, "disk_path": %q}, "status_header": "sentinel"},
			{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
		]}]
	}}}}
}`, adminPort, addr, dir, o.addr), "json")
	base := "http://" + addr
	do(t, "GET", base+"/fresh")
	do(t, "GET", base+"/other") // evicts /fresh from memory (600 bytes)
	r := do(t, "GET", base+"/fresh")
	expectStatus(t, r, "sentinel; hit")
	if o.count("/fresh") != 1 {
		t.Fatal("the disk tier did not serve the entry")
	}
}

func TestAdminErrors(t *testing.T) {
	o := startOrigin(t)
	base := proxy(t, o, "")
	if r := do(t, "GET", base+"/_cache/stats"); r.status != http.StatusOK {
		t.Fatalf("stats: %d", r.status)
	}
	if r := do(t, "POST", base+"/_cache/stats"); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("stats POST: %d %v", r.status, r.header)
	}
	if r := do(t, "PURGE", base+"/x", "Authorization", "Basic abc"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Bearer") {
		t.Fatalf("basic auth: %d %s", r.status, r.body)
	}
	for _, cfg := range []string{
		`{"handler": "sentinel_cache_admin", "action": "purge", "tokens": [{"token_sha256": "zz"}]}`,
		`{"handler": "sentinel_cache_admin", "action": "purge", "tokens": [{}]}`,
		`{"handler": "sentinel_cache_admin", "action": "stats", "storage": {"backend": "tape"}}`,
		`{"handler": "sentinel_cache", "storage": {"backend": "disk"}}`,
	} {
		addr := testutil.FreeAddr(t)
		body := fmt.Sprintf(`{"admin": {"listen": "localhost:%d"}, "apps": {"http": {"servers": {"s": {"listen": [%q], "routes": [{"handle": [%s]}]}}}}}`, adminPort, addr, cfg)
		res, err := http.Post(fmt.Sprintf("http://localhost:%d/load", adminPort), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("%s loaded", cfg)
		} else {
			t.Logf("refused: %s", msg)
		}
	}
}
