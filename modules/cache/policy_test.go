package cache

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestParseCacheControl(t *testing.T) {
	h := http.Header{"Cache-Control": {`Max-Age=60, private="Set-Cookie, X", no-cache`, "max-age=5, s-maxage=99999999999, stale-if-error=-1"}}
	cc := parseCacheControl(h)
	if d, ok := cc.seconds("max-age"); !ok || d != time.Minute {
		t.Errorf("max-age: %v %v (the first wins)", d, ok)
	}
	if cc["private"] != "Set-Cookie, X" || !cc.has("no-cache") {
		t.Errorf("quoted argument: %q", cc)
	}
	if d, ok := cc.seconds("s-maxage"); !ok || d != (1<<31-1)*time.Second {
		t.Errorf("a too large value is the largest: %v %v", d, ok)
	}
	if _, ok := cc.seconds("stale-if-error"); ok {
		t.Error("a negative value is valid")
	}
	if _, ok := cc.seconds("no-cache"); ok {
		t.Error("no argument is a number")
	}
	if parseCacheControl(http.Header{}) != nil {
		t.Error("no header")
	}
}

func TestValidators(t *testing.T) {
	for _, c := range []struct {
		list, etag string
		want       bool
	}{
		{`"a"`, `"a"`, true}, {`W/"a"`, `"a"`, true}, {`"b", "a"`, `W/"a"`, true}, {`*`, `"x"`, true}, {`"a"`, "", false}, {`"b"`, `"a"`, false},
	} {
		if got := etagMatch(c.list, c.etag); got != c.want {
			t.Errorf("etagMatch(%s, %s) = %v", c.list, c.etag, got)
		}
	}
	lm := http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}}
	r := &http.Request{Method: "GET", Header: http.Header{"If-Modified-Since": {"Mon, 02 Jan 2006 15:04:05 GMT"}}}
	if !notModified(r, 200, lm) {
		t.Error("If-Modified-Since at Last-Modified")
	}
	r.Header.Set("If-Modified-Since", "Sun, 01 Jan 2006 15:04:05 GMT")
	if notModified(r, 200, lm) || notModified(r, 404, lm) {
		t.Error("modified since")
	}
	r.Header.Set("If-Modified-Since", "junk")
	if notModified(r, 200, lm) {
		t.Error("bad date")
	}
	merged := mergeNotModified(http.Header{"Etag": {`"1"`}, "Content-Length": {"5"}, "X-A": {"old"}}, http.Header{"X-A": {"new"}, "Content-Length": {"0"}, "Connection": {"close"}})
	if merged.Get("X-A") != "new" || merged.Get("Content-Length") != "5" || merged.Get("Connection") != "" {
		t.Errorf("merge: %v", merged)
	}
	stored := storedHeader(http.Header{"Connection": {"X-Hop"}, "X-Hop": {"1"}, "Age": {"3"}, "Keep-Alive": {"x"}, "X-Keep": {"1"}})
	if len(stored) != 1 || stored.Get("X-Keep") != "1" {
		t.Errorf("stored header: %v", stored)
	}
}

func TestStorable(t *testing.T) {
	h := &Handler{DefaultTTL: caddy.Duration(time.Hour), StaleWhileRevalidate: caddy.Duration(time.Minute), StaleIfError: caddy.Duration(time.Minute), Statuses: DefaultStatuses}
	now := time.Now()
	r := &http.Request{Header: http.Header{}}
	date := now.Add(-10 * time.Second).UTC().Format(http.TimeFormat)
	f, reason := h.storable(r, 200, http.Header{"Date": {date}, "Expires": {now.Add(time.Minute).UTC().Format(http.TimeFormat)}}, nil, now, now)
	if reason != "" || f.lifetime < 69*time.Second || f.lifetime > 71*time.Second || f.initialAge < 9*time.Second {
		t.Errorf("Expires: %+v %q", f, reason)
	}
	f, _ = h.storable(r, 200, http.Header{"Expires": {"0"}, "Etag": {`"x"`}}, nil, now, now)
	if f.lifetime != 0 {
		t.Errorf("an invalid Expires is stale: %+v", f)
	}
	f, _ = h.storable(r, 200, http.Header{"Cache-Control": {"s-maxage=5, max-age=50, stale-while-revalidate=9"}}, nil, now, now)
	if f.lifetime != 5*time.Second || !f.noStale || f.swr != 0 {
		t.Errorf("s-maxage: %+v", f)
	}
	f, _ = h.storable(r, 200, http.Header{"Cache-Control": {"max-age=5, stale-while-revalidate=9, stale-if-error=8"}, "Age": {"2"}}, nil, now, now)
	if f.swr != 9*time.Second || f.sie != 8*time.Second || f.initialAge != 2*time.Second {
		t.Errorf("response windows: %+v", f)
	}
	for want, hdr := range map[string]http.Header{
		"no-freshness": {"Cache-Control": {"no-cache"}},
		"vary-star":    {"Vary": {"*"}},
		"status":       {},
	} {
		status := 200
		if want == "status" {
			status = 206
		}
		if _, reason := h.storable(r, status, hdr, nil, now, now); reason != want {
			t.Errorf("%v: %q, want %q", hdr, reason, want)
		}
	}
	if _, reason := h.storable(r, 200, http.Header{}, cacheControl{"no-store": ""}, now, now); reason != "request-no-store" {
		t.Errorf("request no-store: %q", reason)
	}
	r.Header.Set("Authorization", "x")
	if _, reason := h.storable(r, 200, http.Header{"Cache-Control": {"public, max-age=5"}}, nil, now, now); reason != "" {
		t.Errorf("public with Authorization: %q", reason)
	}
}

func TestKeys(t *testing.T) {
	h := &Handler{IgnoreQueryParams: []string{"utm source", "b"}, VaryHeaders: []string{"X-Tenant"}}
	u, _ := url.Parse("http://h/p%20q?a=1&utm+source=2&b=3&c")
	r := &http.Request{Method: "HEAD", Host: "H:80", URL: u, Header: http.Header{"X-Tenant": {"t1"}}}
	key := h.primaryKey(r)
	if key != "GET http://h:80/p%20q?a=1&c\x00X-Tenant=t1" {
		t.Errorf("key %q", key)
	}
	if got := keyTarget(variantKey(key, []string{"Accept"}, r)); got != "/p%20q?a=1&c" {
		t.Errorf("target %q", got)
	}
	if keyTarget("GET http://h") != "/" {
		t.Error("target of a key without a path")
	}
	if names := varyNames(http.Header{"Vary": {"accept-language, Accept", "accept"}}); len(names) != 2 || names[0] != "Accept" {
		t.Errorf("vary names %v", names)
	}
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"/a/*", "/a/b/c", true}, {"*/c", "/a/c", true}, {"/a/*/d*", "/a/b/dx", true}, {"/a/*/d", "/a/b/x", false},
		{"/a*b*c", "/abxc", true}, {"/x*", "/y", false}, {"/a*a", "/a", false}, {"/exact", "/exact", true},
	} {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
	exact := purgeMatcher("/p", false)
	if !exact("GET http://h/p") || !exact("GET http://h/p?x=1") || exact("GET http://h/pp") {
		t.Error("exact purge")
	}
	if purgeMatcher("/p?x=1", false)("GET http://h/p?x=2") {
		t.Error("a purge with a query matched another query")
	}
	x := &Handler{ExcludePaths: []string{"/admin/", "/tmp*x"}, ExcludeExtensions: []string{".PHP"}}
	for p, want := range map[string]bool{
		"/admin": true, "/admin/a": true, "/administrator": false, "/tmp/1x": true, "/a.php": true, "/a.html": false,
		// Other spellings of an excluded path (the upstream serves them
		// as the path) are excluded too: they used to be cached.
		"//admin/a": true, "/./admin": true, "/x/../admin/a": true, "/%2e/admin": true, "/a.php/.": true,
	} {
		u, err := url.ParseRequestURI(p) // as the server parses a request target
		if err != nil {
			t.Fatal(err)
		}
		if got := x.excluded(&http.Request{URL: u}); got != want {
			t.Errorf("excluded(%s) = %v", p, got)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, h := range []Handler{
		{MaxEntryBytes: -1}, {DefaultTTL: -1}, {Statuses: []int{99}}, {Methods: []string{"G T"}}, {StatusHeader: "a;b"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%+v accepted", h)
		}
	}
	for _, a := range []Admin{{}, {Action: "flush"}, {Action: ActionPurge}} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if err := (&Admin{Action: ActionStats}).Validate(); err != nil {
		t.Error(err)
	}
	if (&Handler{}).Cleanup() != nil || (&Admin{}).Cleanup() != nil {
		t.Error("cleanup of an unprovisioned handler")
	}
	if seconds(-1) != -1 || seconds(-time.Second) != -1 || seconds(1500*time.Millisecond) != 1 {
		t.Error("seconds rounding")
	}
}

func TestCaddyfile(t *testing.T) {
	var h Handler
	d := caddyfile.NewTestDispenser(`sentinel_cache {
		storage s {
			backend hybrid
			max_size 100
			disk_path /tmp/x
			disk_shards 4
			disk_max_size 1000
		}
		default_ttl 5m
		max_entry_bytes 2048
		cache_private
		stale_while_revalidate 10s
		stale_if_error 1m
		methods GET
		statuses 200 404
		vary_headers Accept
		ignore_query_params utm
		exclude_extensions php
		exclude_paths /admin
		status_header edge
		lock_timeout 2s
		revalidate_timeout 3s
		route r
	}`)
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if h.Storage.Backend != "hybrid" || h.Storage.DiskShards != 4 || h.DefaultTTL != caddy.Duration(5*time.Minute) || !h.CachePrivate ||
		len(h.Statuses) != 2 || h.StatusHeader != "edge" || h.Route != "r" || h.RevalidateTimeout != caddy.Duration(3*time.Second) {
		t.Errorf("handler %+v", h)
	}
	var a Admin
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sentinel_cache_admin purge {
		storage s
		token_sha256 abc
		route p
	}`)); err != nil {
		t.Fatal(err)
	}
	if a.Action != "purge" || len(a.Tokens) != 1 || a.Storage.Name != "s" || a.Route != "p" {
		t.Errorf("admin %+v", a)
	}
	for _, bad := range []string{
		"sentinel_cache x", "sentinel_cache {\nbogus\n}", "sentinel_cache {\nstatuses ok\n}", "sentinel_cache {\ndefault_ttl forever\n}",
		"sentinel_cache {\nmax_entry_bytes lots\n}", "sentinel_cache {\nstorage\n}", "sentinel_cache {\nstorage s {\nbogus 1\n}\n}", "sentinel_cache {\nroute\n}",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"sentinel_cache_admin", "sentinel_cache_admin purge {\nbogus\n}"} {
		var a Admin
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
