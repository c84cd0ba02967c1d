package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// provision provisions h as Caddy would and cleans it up after the test.
func provision(t *testing.T, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// okHandler is the next handler: 200 "ok".
var okHandler = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	_, err := w.Write([]byte("ok"))
	return err
})

// do sends one request through h from client ip to path, with the
// headers hdr.
func do(t *testing.T, h *Handler, ip, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://example.com"+path, nil)
	r.RemoteAddr = ip + ":12345"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, okHandler); err != nil {
		if he, ok := err.(caddyhttp.HandlerError); ok {
			w.Code = he.StatusCode
		} else {
			t.Fatal(err)
		}
	}
	return w
}

func TestRejectHeadersAndBody(t *testing.T) {
	h := provision(t, &Handler{MaxRPS: 2, Burst: 2, Message: "slow down"})
	for i, want := range []string{"1", "0"} {
		w := do(t, h, "192.0.2.1", "/", nil)
		if w.Code != 200 || w.Header().Get("X-RateLimit-Remaining") != want || w.Header().Get("X-RateLimit-Limit") != "2" {
			t.Fatalf("request %d: %d %v", i, w.Code, w.Header())
		}
		if w.Header().Get("X-RateLimit-Reset") == "" || w.Header().Get("Retry-After") != "" {
			t.Fatalf("request %d: headers %v", i, w.Header())
		}
	}
	w := do(t, h, "192.0.2.1", "/", nil)
	if w.Code != 429 || w.Body.String() != "slow down" || w.Header().Get("Retry-After") != "1" || w.Header().Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("over the limit: %d %q %v", w.Code, w.Body, w.Header())
	}
	// Another client has its own bucket.
	if w := do(t, h, "192.0.2.2", "/", nil); w.Code != 200 {
		t.Fatalf("other client: %d", w.Code)
	}
}

func TestStatusCodeAndDefaultMessage(t *testing.T) {
	h := provision(t, &Handler{MaxRPS: 1, Burst: 1, StatusCode: 503})
	do(t, h, "192.0.2.1", "/", nil)
	w := do(t, h, "192.0.2.1", "/", nil)
	if w.Code != 503 || w.Body.String() != "Service Unavailable" {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		a, b [3]string // ip, path, X-Api-Key of two requests
		same bool      // whether they share a bucket
	}{
		{"client-ip", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.1", "/b", ""}, true},
		{"client_ip", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.2", "/a", ""}, false},
		{"path", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.2", "/a", ""}, true},
		{"path", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.1", "/b", ""}, false},
		{"route", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.2", "/b", ""}, true},
		{"global", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.2", "/b", ""}, true},
		{"client-ip-and-path", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.1", "/b", ""}, false},
		{"client-ip-and-path", [3]string{"192.0.2.1", "/a", ""}, [3]string{"192.0.2.1", "/a", ""}, true},
		// Other spellings of a path are the same bucket (route matching
		// and the upstream see the same resource): each used to be a
		// fresh bucket, a way around a limit on /login.
		{"path", [3]string{"192.0.2.1", "/login", ""}, [3]string{"192.0.2.1", "//login", ""}, true},
		{"path", [3]string{"192.0.2.1", "/login", ""}, [3]string{"192.0.2.1", "/./login", ""}, true},
		{"path", [3]string{"192.0.2.1", "/login", ""}, [3]string{"192.0.2.1", "/x/../login", ""}, true},
		{"client-ip-and-path", [3]string{"192.0.2.1", "/login", ""}, [3]string{"192.0.2.1", "/%2e/login", ""}, true},
		{"header:x-api-key", [3]string{"192.0.2.1", "/", "k1"}, [3]string{"192.0.2.2", "/", "k1"}, true},
		{"header:X-Api-Key", [3]string{"192.0.2.1", "/", "k1"}, [3]string{"192.0.2.1", "/", "k2"}, false},
		// Without the header: by client IP.
		{"header:X-Api-Key", [3]string{"192.0.2.1", "/", ""}, [3]string{"192.0.2.1", "/", ""}, true},
		{"header:X-Api-Key", [3]string{"192.0.2.1", "/", ""}, [3]string{"192.0.2.2", "/", ""}, false},
	} {
		t.Run(tc.key, func(t *testing.T) {
			h := provision(t, &Handler{MaxRPS: 0.001, Burst: 1, Key: tc.key})
			send := func(r [3]string) int {
				hdr := map[string]string{}
				if r[2] != "" {
					hdr["X-Api-Key"] = r[2]
				}
				return do(t, h, r[0], r[1], hdr).Code
			}
			if c := send(tc.a); c != 200 {
				t.Fatalf("first: %d", c)
			}
			if c := send(tc.b); (c == 429) != tc.same {
				t.Fatalf("second: %d, same bucket %v", c, tc.same)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	h := provision(t, &Handler{MaxRPS: 10, Burst: 1, OnLimit: "delay", MaxDelay: caddy.Duration(150 * time.Millisecond)})
	// Three at once: the first goes at once, the second waits 100ms, the
	// third would wait 200ms > 150ms and is rejected.
	start := time.Now()
	codes := make(chan int, 3)
	for range 3 {
		go func() { codes <- do(t, h, "192.0.2.1", "/", nil).Code }()
	}
	got := map[int]int{}
	for range 3 {
		got[<-codes]++
	}
	if got[200] != 2 || got[429] != 1 {
		t.Fatalf("statuses %v, want two 200 and one 429", got)
	}
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("the second request was not delayed (%s)", el)
	}
}

func TestDelayEndsWithTheClient(t *testing.T) {
	h := provision(t, &Handler{MaxRPS: 0.1, Burst: 1, OnLimit: "delay", MaxDelay: caddy.Duration(time.Minute)})
	do(t, h, "192.0.2.1", "/", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	r.RemoteAddr = "192.0.2.1:1"
	start := time.Now()
	if err := h.ServeHTTP(httptest.NewRecorder(), r, okHandler); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
}

func TestLogOnly(t *testing.T) {
	h := provision(t, &Handler{MaxRPS: 1, Burst: 1, OnLimit: "log-only"})
	for range 5 {
		if w := do(t, h, "192.0.2.1", "/", nil); w.Code != 200 {
			t.Fatalf("log-only rejected: %d", w.Code)
		}
	}
}

// TestZoneShared: handlers of one zone (a route copied into every
// listener's server) share the buckets; a different zone does not.
func TestZoneShared(t *testing.T) {
	a := provision(t, &Handler{Zone: "z", MaxRPS: 0.001, Burst: 1})
	b := provision(t, &Handler{Zone: "z", MaxRPS: 0.001, Burst: 1})
	c := provision(t, &Handler{Zone: "other", MaxRPS: 0.001, Burst: 1})
	if do(t, a, "192.0.2.1", "/", nil).Code != 200 || do(t, b, "192.0.2.1", "/", nil).Code != 429 {
		t.Fatal("handlers of one zone do not share buckets")
	}
	if do(t, c, "192.0.2.1", "/", nil).Code != 200 {
		t.Fatal("another zone shares buckets")
	}
}

func TestBadSettings(t *testing.T) {
	f := false
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{MaxRPS: -1}, "max_rps -1"},
		{Handler{Burst: -3}, "burst -3"},
		{Handler{Key: "cookie"}, `key "cookie"`},
		{Handler{Key: "header:"}, "needs a header name"},
		{Handler{OnLimit: "drop"}, `on_limit "drop"`},
		{Handler{StatusCode: 200}, "status_code 200"},
		{Handler{MaxDelay: -1}, "max_delay"},
		{Handler{MaxKeys: -1}, "max_keys -1"},
		// A bucket's span overflowing int64 nanoseconds (an interval
		// wrapped to a negative number admitted everything).
		{Handler{MaxRPS: 1e-12}, "would span more than 73 years"},
		{Handler{MaxRPS: 1e-3, Burst: 1 << 40}, "would span more than"},
		{Handler{OnLimit: "delay", MaxDelay: caddy.Duration(1<<62 + 1)}, "would span more than"},
		{Handler{Backend: "etcd"}, `backend "etcd"`},
		{Handler{Backend: "memcached", Memcached: nil, FallbackLocal: &f, MemcachedTTL: 1}, ""},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := tc.h.Provision(ctx)
		cancel()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.h, err)
			}
			_ = tc.h.Cleanup()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.h, err, tc.want)
		}
	}
}

func TestStoreZoneName(t *testing.T) {
	if got := storeZoneName("route:a b/filter:\x01x"); got != "route:a_b/filter:_x" {
		t.Errorf("got %q", got)
	}
	long := storeZoneName(strings.Repeat("x", 100))
	if len(long) > 20 || strings.Contains(long, "xxxx") {
		t.Errorf("long zone name: %q", long)
	}
}

// TestHeaderKeyRepeated: with `header:X-Api-Key`, a request with the
// header twice counted in the bucket of its first value, while an
// upstream may use the last: a fresh first value per request was a
// fresh bucket for the same key (no limit). Such requests count by
// client address.
func TestHeaderKeyRepeated(t *testing.T) {
	h := provision(t, &Handler{MaxRPS: 0.001, Burst: 1, Key: "header:X-Api-Key"})
	send := func(ip string, values ...string) int {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.RemoteAddr = ip + ":12345"
		for _, v := range values {
			r.Header.Add("X-Api-Key", v)
		}
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, okHandler); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	if c := send("192.0.2.1", "fresh-1", "victim-key"); c != 200 {
		t.Fatalf("first: %d", c)
	}
	if c := send("192.0.2.1", "fresh-2", "victim-key"); c != 429 {
		t.Errorf("a second request with a fresh first value: %d, want 429", c)
	}
	// Another client, and the key used alone, have their own buckets.
	if c := send("192.0.2.2", "fresh-3", "victim-key"); c != 200 {
		t.Errorf("another client: %d", c)
	}
	if c := send("192.0.2.1", "victim-key"); c != 200 {
		t.Errorf("the key alone: %d", c)
	}
}
