package cache

import (
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/sentinel-proxy/sentinel/modules/routematch"
)

// Keys. A primary key names a URL (and the configured vary headers):
//
//	<method> <scheme>://<host><path>[?<query>][\x00<header>=<value>…]
//
// with HEAD stored as GET. A response that varies is stored under its
// variant key, the primary key followed by "\x01" and the values of the
// request headers its Vary names; the primary key then holds a marker
// listing those names.

// primaryKey is the cache key of r.
func (h *Handler) primaryKey(r *http.Request) string {
	var b strings.Builder
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	b.WriteString(method)
	b.WriteByte(' ')
	if r.TLS != nil {
		b.WriteString("https://")
	} else {
		b.WriteString("http://")
	}
	b.WriteString(strings.ToLower(r.Host))
	b.WriteString(r.URL.EscapedPath())
	if q := h.query(r.URL); q != "" {
		b.WriteByte('?')
		b.WriteString(q)
	}
	for _, name := range h.VaryHeaders {
		b.WriteByte(0)
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strings.Join(r.Header.Values(name), ","))
	}
	return b.String()
}

// query is the request's query string without the ignored parameters.
func (h *Handler) query(u *url.URL) string {
	if len(h.IgnoreQueryParams) == 0 || u.RawQuery == "" {
		return u.RawQuery
	}
	parts := strings.Split(u.RawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		// A parameter with a ';' stays in the key: origins that split
		// the query at ';' as well (PHP's arg_separator, older Rails and
		// Java servlets) would read `utm_source=x;callback=evil` as two
		// parameters, one of them not ignored (parameter cloaking).
		if !slices.Contains(h.IgnoreQueryParams, name) || strings.IndexByte(p, ';') >= 0 {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "&")
}

// variantKey is the key of the variant of primary that r selects, for a
// response varying on names.
func variantKey(primary string, names []string, r *http.Request) string {
	var b strings.Builder
	b.WriteString(primary)
	b.WriteByte(1)
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strings.Join(r.Header.Values(name), ","))
		b.WriteByte(0)
	}
	return b.String()
}

// varyNames is the canonical, sorted, deduplicated list of header names
// in the Vary fields of h.
func varyNames(h http.Header) []string {
	var names []string
	for _, line := range h.Values("Vary") {
		for _, n := range strings.Split(line, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// keyTarget is the request target (path and query) of a key.
func keyTarget(key string) string {
	_, rest, _ := strings.Cut(key, " ")
	if i := strings.IndexAny(rest, "\x00\x01"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return "/"
}

// purgeMatcher returns the matcher of a purge: exact, the keys whose
// target (path and query) is pattern, or, with a pattern without a
// query, whose path is pattern; wildcard, the keys whose target matches
// the pattern where `*` stands for any characters (slashes included).
func purgeMatcher(pattern string, wildcard bool) func(string) bool {
	if !wildcard {
		return func(key string) bool {
			t := keyTarget(key)
			if t == pattern {
				return true
			}
			p, _, hasQuery := strings.Cut(t, "?")
			return hasQuery && !strings.Contains(pattern, "?") && p == pattern
		}
	}
	return func(key string) bool { return globMatch(pattern, keyTarget(key)) }
}

// globMatch matches s against pattern, where `*` matches any run of
// characters; other characters match themselves.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// excluded reports whether the request's path is excluded from caching by
// exclude_paths or exclude_extensions. The path is the normalised one
// route matching sees: `//admin`, `/./admin` or `/x/../admin` is
// `/admin` (the upstream serves it as such), not a way around the
// exclusion.
func (h *Handler) excluded(r *http.Request) bool {
	if len(h.ExcludePaths) == 0 && len(h.ExcludeExtensions) == 0 {
		return false
	}
	p := routematch.RequestPath(r)
	for _, x := range h.ExcludePaths {
		if strings.Contains(x, "*") {
			if globMatch(x, p) {
				return true
			}
		} else if base := strings.TrimSuffix(x, "/"); p == x || p == base || strings.HasPrefix(p, base+"/") {
			return true
		}
	}
	if len(h.ExcludeExtensions) > 0 {
		ext := strings.TrimPrefix(path.Ext(p), ".")
		for _, x := range h.ExcludeExtensions {
			if ext != "" && strings.EqualFold(strings.TrimPrefix(x, "."), ext) {
				return true
			}
		}
	}
	return false
}

// hasOverrideHeader reports whether h has a request header with which
// frameworks let a client ask for another method than the request
// line's (X-HTTP-Method-Override and kin) or another URL (X-Original-URL,
// X-Rewrite-URL: IIS, Symfony, Zend).
func hasOverrideHeader(h http.Header) bool {
	return len(h["X-Http-Method-Override"]) > 0 || len(h["X-Http-Method"]) > 0 || len(h["X-Method-Override"]) > 0 ||
		len(h["X-Original-Url"]) > 0 || len(h["X-Rewrite-Url"]) > 0
}

// unkeyedInput reports whether the request carries input that the key
// does not hold and an origin may build its response from: a body (a
// GET with a body, a "fat GET": frameworks that read parameters from the
// body whatever the method would answer from it, and the answer would be
// stored under the URL for every client), or a method or URL override
// header (the origin would answer as for another method, e.g. DELETE, or
// another URL, e.g. /admin).
// Such a request is neither answered from the cache nor stored. A body of
// unknown length (HTTP/2 and HTTP/3 requests without Content-Length, a
// GET included) is only known once read: watchBody keeps the response to
// one that had content out of the cache.
func unkeyedInput(r *http.Request) bool {
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		return true
	}
	return hasOverrideHeader(r.Header)
}

// watchedBody is a request body of unknown length that records whether
// it had content.
type watchedBody struct {
	io.ReadCloser
	seen *atomic.Bool
}

// Read implements io.Reader.
func (b watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.seen.Store(true)
	}
	return n, err
}

// watchBody wraps a body of unknown length of r (HTTP/2 and HTTP/3
// requests without Content-Length have one, even a GET; most are empty)
// and returns whether it has had content so far; nil when r's body is
// known to be empty. An origin whose response depends on the body has
// read it, through the proxy, before it answers: the flag is set by the
// time the response's header arrives.
func watchBody(r *http.Request) *atomic.Bool {
	if r.ContentLength >= 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	seen := new(atomic.Bool)
	r.Body = watchedBody{ReadCloser: r.Body, seen: seen}
	return seen
}
