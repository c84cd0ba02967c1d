package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cacheControl is a parsed Cache-Control header (RFC 9111 §5.2): the
// directives present, with their arguments ("" when none).
type cacheControl map[string]string

// parseCacheControl parses every Cache-Control field line of h. Directive
// names are case-insensitive; quoted arguments are unquoted. The first of
// a repeated directive wins.
func parseCacheControl(h http.Header) cacheControl {
	lines := h.Values("Cache-Control")
	if len(lines) == 0 {
		return nil
	}
	cc := make(cacheControl, 4)
	for _, line := range lines {
		for line != "" {
			var part string
			part, line = nextDirective(line)
			name, arg, _ := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			if _, dup := cc[name]; !dup {
				cc[name] = arg
			}
		}
	}
	return cc
}

// nextDirective splits s at the first comma outside a quoted string.
func nextDirective(s string) (string, string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// has reports whether the directive is present.
func (cc cacheControl) has(name string) bool {
	_, ok := cc[name]
	return ok
}

// seconds is the delta-seconds argument of the directive; ok is false
// when the directive is absent or its argument is not a non-negative
// integer (RFC 9111 §1.2.2: an invalid value makes the directive
// ineffective, here as if absent, except that a too large one is the
// largest).
func (cc cacheControl) seconds(name string) (time.Duration, bool) {
	v, ok := cc[name]
	if !ok || v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange && v[0] != '-' {
			return 1<<31 - 1, true // RFC 9111 §1.2.2: 2^31 as the largest
		}
		return 0, false
	}
	if n < 0 {
		return 0, false
	}
	if n > 1<<31-1 {
		n = 1<<31 - 1
	}
	return time.Duration(n) * time.Second, true
}

// freshness is what the cache knows about a stored response's age and
// lifetime.
type freshness struct {
	// lifetime is the freshness lifetime (RFC 9111 §4.2.1); 0 when the
	// response must be revalidated before each use.
	lifetime time.Duration
	// initialAge is the corrected initial age (§4.2.3).
	initialAge time.Duration
	// swr and sie are the stale-while-revalidate and stale-if-error
	// windows (RFC 5861), 0 when the response forbids serving stale.
	swr, sie time.Duration
	// noStale is set by must-revalidate, proxy-revalidate or s-maxage:
	// a stale response is never served without revalidation.
	noStale bool
}

// storable decides whether a response may be stored (RFC 9111 §3) and how
// long it is fresh. req is the request's Cache-Control, res the
// response's. The reason is the Cache-Status `detail` when it may not be
// stored.
func (h *Handler) storable(r *http.Request, status int, hdr http.Header, reqCC cacheControl, now, requestTime time.Time) (freshness, string) {
	var f freshness
	if !h.statusOK(status) {
		return f, "status"
	}
	if reqCC.has("no-store") {
		return f, "request-no-store"
	}
	cc := parseCacheControl(hdr)
	if cc.has("no-store") {
		return f, "no-store"
	}
	if cc.has("private") && !h.CachePrivate {
		return f, "private"
	}
	// RFC 9110 §12.5.5: a Vary with "*" anywhere in it (`Vary:
	// Accept, *`, or on a second field line) never matches another
	// request.
	if slices.Contains(varyNames(hdr), "*") {
		return f, "vary-star"
	}
	// Set-Cookie belongs to one client: a shared cache does not hand it
	// to others.
	if len(hdr.Values("Set-Cookie")) > 0 {
		return f, "set-cookie"
	}
	// §3.5: a request with credentials is stored only when the response
	// says it may be shared.
	// Any Authorization or Cookie field counts, also an empty one
	// before the one with the credentials.
	if len(r.Header.Values("Authorization")) > 0 && !cc.has("public") && !cc.has("s-maxage") && !cc.has("must-revalidate") {
		return f, "authorization"
	}
	// A request with cookies usually gets a response made for its
	// session: stored only when the response says it may be shared (or
	// the route caches private responses).
	if len(r.Header.Values("Cookie")) > 0 && !h.CachePrivate && !cc.has("public") && !cc.has("s-maxage") {
		return f, "cookie"
	}

	date, dateErr := http.ParseTime(hdr.Get("Date"))
	switch {
	case cc.has("no-cache"):
		f.lifetime = 0
	case cc.has("s-maxage") && !h.CachePrivate:
		f.lifetime, _ = cc.seconds("s-maxage")
		f.noStale = true // §5.2.2.10: s-maxage implies proxy-revalidate
	case cc.has("max-age"):
		if d, ok := cc.seconds("max-age"); ok {
			f.lifetime = d
		}
	case hdr.Get("Expires") != "":
		exp, err := http.ParseTime(hdr.Get("Expires"))
		base := date
		if dateErr != nil {
			base = now
		}
		if err == nil && exp.After(base) {
			f.lifetime = exp.Sub(base)
		} // an invalid or past Expires: already stale
	default:
		// Heuristic freshness (§4.2.2): the configured default TTL, for
		// the configured (heuristically cacheable) status codes.
		f.lifetime = time.Duration(h.DefaultTTL)
	}

	// Corrected initial age (§4.2.3).
	apparent := time.Duration(0)
	if dateErr == nil && now.After(date) {
		apparent = now.Sub(date)
	}
	ageValue := time.Duration(0)
	if a, err := strconv.ParseInt(strings.TrimSpace(hdr.Get("Age")), 10, 64); err == nil && a > 0 {
		ageValue = time.Duration(a) * time.Second
	}
	corrected := ageValue + now.Sub(requestTime)
	f.initialAge = max(apparent, corrected)

	f.swr, f.sie = time.Duration(h.StaleWhileRevalidate), time.Duration(h.StaleIfError)
	if d, ok := cc.seconds("stale-while-revalidate"); ok {
		f.swr = d
	}
	if d, ok := cc.seconds("stale-if-error"); ok {
		f.sie = d
	}
	if cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("no-cache") {
		f.noStale = true
	}
	if f.noStale {
		f.swr, f.sie = 0, 0
	}
	if f.lifetime == 0 && hdr.Get("ETag") == "" && hdr.Get("Last-Modified") == "" {
		// Never fresh and nothing to revalidate with: useless to store.
		return f, "no-freshness"
	}
	return f, ""
}

// statusOK reports whether the status is cacheable by configuration. 206
// is never stored: a partial response is not the resource.
func (h *Handler) statusOK(status int) bool {
	if status == http.StatusPartialContent {
		return false
	}
	for _, s := range h.Statuses {
		if s == status {
			return true
		}
	}
	return false
}

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1) and the
// headers a cache must not store with a response.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate",
}

// storedHeader is the header of a response as it is stored: without
// hop-by-hop fields, the headers Connection names, and the response's
// Age (the entry computes its own).
func storedHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, c := range out.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		out.Del(name)
	}
	out.Del("Age")
	return out
}

// mergeNotModified updates a stored header with the fields of a 304
// response (RFC 9111 §4.3.4): every field the 304 carries replaces the
// stored one, except Content-Length and the framing fields.
func mergeNotModified(stored, fresh http.Header) http.Header {
	out := stored.Clone()
	for name, vals := range fresh {
		switch name {
		case "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding", "Age", "Cache-Status":
			continue
		}
		out[name] = append([]string(nil), vals...)
	}
	for _, name := range hopHeaders {
		out.Del(name)
	}
	return out
}

// etagMatch reports whether the If-None-Match list matches etag by weak
// comparison (RFC 9110 §13.1.2).
func etagMatch(list, etag string) bool {
	if etag == "" {
		return false
	}
	if strings.TrimSpace(list) == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == want {
			return true
		}
	}
	return false
}

// notModified reports whether a client's conditional GET is satisfied by
// the stored 200 response with header h (RFC 9110 §13.2.2).
func notModified(r *http.Request, status int, h http.Header) bool {
	if status != http.StatusOK || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagMatch(inm, h.Get("ETag"))
	}
	ims, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	return err == nil && !lm.After(ims)
}
