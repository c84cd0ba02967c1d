// Package cache provides Sentinel's HTTP response cache: the
// `sentinel_cache` handler, a shared cache (RFC 9111) in front of the
// rest of a route (usually reverse_proxy), and the `sentinel_cache_admin`
// handler, which purges entries and reports statistics.
//
// Entries live in a Store: memory (size-bounded, least recently used
// evicted), disk (one file per entry, survives restarts) or hybrid
// (memory in front of disk). Handlers with equal storage configurations
// share one store, which outlives config reloads that keep it.
package cache

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
	caddy.RegisterModule(Admin{})
}

// Handler is a shared HTTP cache (RFC 9111) in front of the next
// handlers. It stores the responses to GET and HEAD (by default) that
// may be stored and serves them while fresh:
//
//   - freshness from `s-maxage`, `max-age` or `Expires`, else the
//     default TTL for the cacheable status codes (heuristic freshness);
//   - never stored: `no-store` (request or response), `private` (unless
//     cache_private), `Vary: *`, `Set-Cookie`, responses to requests with
//     `Authorization` unless `public`/`s-maxage`/`must-revalidate`,
//     responses to requests with `Cookie` unless `public`/`s-maxage`
//     (or cache_private),
//     206 responses, bodies over max_entry_bytes;
//   - `Vary`: one entry per variant of the named request headers;
//   - stale entries with a validator (`ETag`, `Last-Modified`) are
//     revalidated with a conditional request; a 304 refreshes them;
//   - `stale-while-revalidate`: a stale entry is served at once and
//     refreshed in the background; `stale-if-error`: when the upstream
//     fails (error or 5xx) a stale entry is served instead;
//     `must-revalidate`, `proxy-revalidate`, `no-cache` and `s-maxage`
//     forbid both;
//   - request `no-cache` (or `max-age=0`) revalidates; request `no-store`
//     neither serves nor stores; `only-if-cached` gets 504 on a miss;
//   - clients' `If-None-Match` / `If-Modified-Since` get 304 from fresh
//     entries;
//   - concurrent misses of one key are coalesced: one request goes
//     upstream, the others wait for its response (up to lock_timeout).
//     That request buffers a storable body (up to max_entry_bytes)
//     before writing it to its client, so that the entry is stored and
//     the others served as soon as the upstream response is read, not
//     at the pace of its client; streams (text/event-stream,
//     `Incremental: ?1`) are not buffered;
//   - `Age` and, when status_header is set, `Cache-Status` (RFC 9211).
//
// Requests with `Range` or `Upgrade` pass through uncached, and so do
// requests carrying input the key does not hold (a body, a method or
// URL override header; see unkeyedInput).
type Handler struct {
	// Storage is where entries are kept. Handlers with equal Storage
	// share one store.
	Storage Storage `json:"storage,omitempty"`

	// DefaultTTL is the freshness lifetime of responses that give none
	// (no s-maxage, max-age or Expires). Default: 1h.
	DefaultTTL caddy.Duration `json:"default_ttl,omitempty"`

	// MaxEntryBytes is the largest response body stored; larger ones
	// pass through. Default: 10 MiB.
	MaxEntryBytes int64 `json:"max_entry_bytes,omitempty"`

	// CachePrivate stores responses marked `private` too (and ignores
	// s-maxage, as a private cache does): only for routes whose
	// responses do not depend on who asks.
	CachePrivate bool `json:"cache_private,omitempty"`

	// StaleWhileRevalidate is how long after expiry a stale entry is
	// served while it is refreshed in the background, unless the
	// response's own stale-while-revalidate says otherwise. Default: 60s;
	// a negative value turns it off.
	StaleWhileRevalidate caddy.Duration `json:"stale_while_revalidate,omitempty"`

	// StaleIfError is how long after expiry a stale entry is served when
	// the upstream fails, unless the response's own stale-if-error says
	// otherwise. Default: 5m; a negative value turns it off.
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`

	// Methods are the cacheable request methods. Default: GET, HEAD
	// (HEAD is answered from GET's entry).
	Methods []string `json:"methods,omitempty"`

	// Statuses are the cacheable status codes. Default: 200, 203, 204,
	// 300, 301, 308, 404, 410 (206 is never stored).
	Statuses []int `json:"statuses,omitempty"`

	// VaryHeaders are request headers that are always part of the key,
	// in addition to those the response's Vary names.
	VaryHeaders []string `json:"vary_headers,omitempty"`

	// IgnoreQueryParams are query parameters left out of the key (e.g.
	// tracking parameters); the rest of the query string is part of it.
	IgnoreQueryParams []string `json:"ignore_query_params,omitempty"`

	// ExcludeExtensions are file extensions (without the dot) whose
	// paths are never cached.
	ExcludeExtensions []string `json:"exclude_extensions,omitempty"`

	// ExcludePaths are paths never cached: a path and everything below
	// it, or a pattern where `*` matches any characters.
	ExcludePaths []string `json:"exclude_paths,omitempty"`

	// StatusHeader, when set, adds a `Cache-Status` header (RFC 9211)
	// with this cache identifier to every response, e.g. `sentinel; hit;
	// ttl=42` or `sentinel; fwd=uri-miss; stored`.
	StatusHeader string `json:"status_header,omitempty"`

	// LockTimeout is how long a request waits for a concurrent request
	// of the same key that went upstream before going itself. The wait
	// ends earlier when that response is stored (once read from the
	// upstream) or turns out not to be. Default: 10s.
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`

	// RevalidateTimeout bounds a background revalidation. Default: 30s.
	RevalidateTimeout caddy.Duration `json:"revalidate_timeout,omitempty"`

	// Route is the Sentinel route this cache serves (logs only).
	Route string `json:"route,omitempty"`

	shared *shared
	logger *zap.Logger
	// ctx ends when the config is unloaded: background revalidations
	// stop with it.
	ctx context.Context
	// now is the clock (tests).
	now func() time.Time
}

// The handler defaults.
const (
	defaultTTL               = time.Hour
	defaultMaxEntryBytes     = 10 << 20
	defaultSWR               = time.Minute
	defaultSIE               = 5 * time.Minute
	defaultLockTimeout       = 10 * time.Second
	defaultRevalidateTimeout = 30 * time.Second
)

// DefaultStatuses are the cacheable status codes by default (the
// original's list without 206, which is never stored).
var DefaultStatuses = []int{200, 203, 204, 300, 301, 308, 404, 410}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_cache",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the defaults and opens (or joins) the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger().With(zap.String("route", h.Route))
	h.ctx = ctx.Context
	h.now = time.Now
	if h.DefaultTTL == 0 {
		h.DefaultTTL = caddy.Duration(defaultTTL)
	}
	if h.MaxEntryBytes == 0 {
		h.MaxEntryBytes = defaultMaxEntryBytes
	}
	switch {
	case h.StaleWhileRevalidate == 0:
		h.StaleWhileRevalidate = caddy.Duration(defaultSWR)
	case h.StaleWhileRevalidate < 0:
		h.StaleWhileRevalidate = 0
	}
	switch {
	case h.StaleIfError == 0:
		h.StaleIfError = caddy.Duration(defaultSIE)
	case h.StaleIfError < 0:
		h.StaleIfError = 0
	}
	if len(h.Methods) == 0 {
		h.Methods = []string{http.MethodGet, http.MethodHead}
	}
	for i, m := range h.Methods {
		h.Methods[i] = strings.ToUpper(m)
	}
	if len(h.Statuses) == 0 {
		h.Statuses = slices.Clone(DefaultStatuses)
	}
	for i, name := range h.VaryHeaders {
		h.VaryHeaders[i] = http.CanonicalHeaderKey(name)
	}
	slices.Sort(h.VaryHeaders)
	if h.LockTimeout == 0 {
		h.LockTimeout = caddy.Duration(defaultLockTimeout)
	}
	if h.RevalidateTimeout == 0 {
		h.RevalidateTimeout = caddy.Duration(defaultRevalidateTimeout)
	}
	h.Storage = h.Storage.withDefaults()
	if err := h.Storage.validate(); err != nil {
		return err
	}
	if h.Storage.Backend == BackendRedis && h.MaxEntryBytes > h.Storage.RedisMaxEntryBytes {
		h.MaxEntryBytes = h.Storage.RedisMaxEntryBytes
	}
	s, err := acquire(h.Storage, ctx.Logger())
	if err != nil {
		return err
	}
	h.shared = s
	return registerMetrics(ctx, h.Storage.Name, s)
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxEntryBytes < 0 {
		return fmt.Errorf("max_entry_bytes may not be negative")
	}
	if h.DefaultTTL < 0 {
		return fmt.Errorf("default_ttl may not be negative")
	}
	for _, s := range h.Statuses {
		if s < 100 || s > 599 {
			return fmt.Errorf("statuses: %d is not an HTTP status code", s)
		}
	}
	for _, m := range h.Methods {
		if m == "" || strings.ContainsAny(m, " \t\r\n") {
			return fmt.Errorf("methods: %q is not a method", m)
		}
	}
	if strings.ContainsAny(h.StatusHeader, ",;=\" \t\r\n") {
		return fmt.Errorf("status_header %q must be a token (no separators or spaces)", h.StatusHeader)
	}
	return nil
}

// Cleanup releases the store.
func (h *Handler) Cleanup() error {
	if h.shared != nil {
		_, err := stores.Delete(h.Storage.poolKey())
		return err
	}
	return nil
}

// ServeHTTP answers from the cache or forwards to next, storing what may
// be stored.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !slices.Contains(h.Methods, r.Method) || r.Header.Get("Range") != "" || r.Header.Get("Upgrade") != "" || unkeyedInput(r) || h.excluded(r) {
		h.shared.stats.bypass.Add(1)
		h.setStatus(w.Header(), "fwd=bypass")
		return next.ServeHTTP(w, r)
	}
	reqCC := parseCacheControl(r.Header)
	if reqCC == nil && r.Header.Get("Pragma") == "no-cache" {
		reqCC = cacheControl{"no-cache": ""}
	}
	if reqCC.has("no-store") {
		h.shared.stats.bypass.Add(1)
		h.setStatus(w.Header(), "fwd=request")
		return next.ServeHTTP(w, r)
	}
	key, e := h.lookup(r)
	now := h.now()
	if e != nil {
		ttl := e.ttl(now)
		mustRevalidate := reqCC.has("no-cache")
		if d, ok := reqCC.seconds("max-age"); ok && e.age(now) > d {
			mustRevalidate = true
		}
		if !mustRevalidate && ttl > 0 {
			h.shared.stats.hits.Add(1)
			return h.serve(w, r, e, now, "hit; ", "")
		}
		if !mustRevalidate && -ttl <= e.SWR && !reqCC.has("only-if-cached") {
			h.shared.stats.hits.Add(1)
			h.shared.stats.stale.Add(1)
			h.revalidateInBackground(r, next, key, e)
			return h.serve(w, r, e, now, "hit; ", "; detail=stale-while-revalidate")
		}
		if reqCC.has("only-if-cached") {
			// RFC 9111 §4.2.4: a response that must be revalidated
			// before reuse (no-cache, must-revalidate, proxy-revalidate,
			// s-maxage; or the client's own no-cache / max-age) is not
			// served unvalidated: the origin may check the requester at
			// each revalidation.
			if mustRevalidate || h.staleForbidden(e) {
				h.setStatus(w.Header(), "fwd=stale; detail=only-if-cached")
				w.WriteHeader(http.StatusGatewayTimeout)
				return nil
			}
			h.shared.stats.hits.Add(1)
			return h.serve(w, r, e, now, "hit; ", "")
		}
		h.shared.stats.misses.Add(1)
		return h.forward(w, r, next, key, e, reqCC, "stale", nil)
	}
	if reqCC.has("only-if-cached") {
		h.setStatus(w.Header(), "fwd=miss; detail=only-if-cached")
		w.WriteHeader(http.StatusGatewayTimeout)
		return nil
	}
	// Coalesce concurrent misses: one request goes upstream; the others
	// wait for it and then look again.
	f, leader := h.shared.join(key)
	if !leader {
		if f.wait(time.Duration(h.LockTimeout), r.Context().Done()) {
			if k2, e2 := h.lookup(r); e2 != nil && e2.ttl(h.now()) > 0 {
				h.shared.stats.hits.Add(1)
				h.shared.stats.coalesced.Add(1)
				return h.serve(w, r, e2, h.now(), "hit; ", "; detail=coalesced")
			} else {
				key = k2
			}
		}
		h.shared.stats.misses.Add(1)
		return h.forward(w, r, next, key, nil, reqCC, "uri-miss", nil)
	}
	land := func() { h.shared.land(key, f) }
	defer land()
	h.shared.stats.misses.Add(1)
	fwd := "uri-miss"
	if strings.IndexByte(key, 1) >= 0 {
		fwd = "vary-miss"
	}
	return h.forward(w, r, next, key, nil, reqCC, fwd, land)
}

// lookup finds r's entry: the key it is (or would be) stored under, and
// the entry or nil. A variant marker leads to the variant.
func (h *Handler) lookup(r *http.Request) (string, *Entry) {
	key := h.primaryKey(r)
	e := h.shared.store.Get(key)
	if e == nil || len(e.Vary) == 0 {
		return key, e
	}
	vkey := variantKey(key, e.Vary, r)
	v := h.shared.store.Get(vkey)
	if v != nil && len(v.Vary) > 0 {
		return vkey, nil // a marker is never a variant
	}
	return vkey, v
}

// serve writes a stored entry to the client; its Cache-Status is pre,
// the entry's ttl, post.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, e *Entry, now time.Time, pre, post string) error {
	hdr := w.Header()
	for k, v := range e.Header {
		hdr[k] = slices.Clone(v)
	}
	age := max(e.age(now), 0)
	hdr.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	if h.StatusHeader != "" {
		h.setStatus(hdr, pre+"ttl="+strconv.FormatInt(seconds(e.ttl(now)), 10)+post)
	}
	if notModified(r, e.Status, e.Header) {
		hdr.Del("Content-Length")
		hdr.Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if e.Status != http.StatusNoContent && e.Status != http.StatusNotModified {
		hdr.Set("Content-Length", strconv.Itoa(len(e.Body)))
	}
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := w.Write(e.Body); err != nil {
		h.logger.Debug("writing cached response", zap.Error(err))
	}
	return nil
}

// staleForbidden reports whether the stored response forbids being
// served stale (without revalidation): its Cache-Control has no-cache,
// must-revalidate, proxy-revalidate or, in a shared cache, s-maxage.
func (h *Handler) staleForbidden(e *Entry) bool {
	cc := parseCacheControl(e.Header)
	return cc.has("no-cache") || cc.has("must-revalidate") || cc.has("proxy-revalidate") ||
		cc.has("s-maxage") && !h.CachePrivate
}

// setStatus adds the cache's Cache-Status entry (RFC 9211) when enabled.
// Entries of caches nearer the origin stay in front of it.
func (h *Handler) setStatus(hdr http.Header, params string) {
	if h.StatusHeader == "" {
		return
	}
	hdr.Add("Cache-Status", h.StatusHeader+"; "+params)
}

// forward sends r to next, storing the response when it may be. With a
// stale entry, the request is conditional (its validators) and a 304
// refreshes the entry; a failure within the entry's stale-if-error
// window is answered with the entry. fwd is the Cache-Status reason.
// release, when not nil, lets the requests waiting for this one go as
// soon as its response is known not to be stored (not storable, or its
// body too large, or a stream), or as soon as it is stored: they would
// otherwise wait for its end (a stream, a slow client) up to
// lock_timeout. With release, a storable response's body is buffered
// (up to max_entry_bytes) before it is written to the client: the entry
// is stored when the upstream response has been read, whatever the pace
// of this request's client.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, key string, stale *Entry, reqCC cacheControl, fwd string, release func()) error {
	requestTime := h.now()
	bodySeen := watchBody(r)
	upstreamReq := r
	if stale != nil {
		upstreamReq = conditional(r, stale)
	}
	canServeStale := func(now time.Time) bool {
		return stale != nil && !reqCC.has("no-cache") && -stale.ttl(now) <= stale.SIE
	}
	var fresh freshness
	var reason string
	var cw *captureWriter
	cw = newCaptureWriter(w, h.MaxEntryBytes, func(status int, hdr http.Header) (bool, bool) {
		now := h.now()
		if status == http.StatusNotModified && upstreamReq != r {
			return false, true // our own conditional request: refresh
		}
		if status >= 500 && canServeStale(now) {
			return false, false // answered with the stale entry
		}
		fresh, reason = h.storable(r, status, hdr, reqCC, now, requestTime)
		if reason == "" && bodySeen != nil && bodySeen.Load() {
			reason = "request-body" // a body of unknown length had content
		}
		if reason == "" && r.Method == http.MethodHead {
			reason = "head" // no body to store; GET fills the entry
		}
		if cl := hdr.Get("Content-Length"); reason == "" && cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > h.MaxEntryBytes {
				reason = "size"
			}
		}
		params := "fwd=" + fwd
		if stale != nil {
			params += "; fwd-status=" + strconv.Itoa(status)
		}
		switch {
		case reason != "":
			params += "; detail=" + reason
		case hdr.Get("Content-Length") != "" || status == http.StatusNoContent:
			// Stored for sure: the body's size is known to fit. (A body
			// of unknown length may turn out too large.)
			params += "; stored"
		}
		h.setStatus(hdr, params)
		if release != nil {
			switch {
			case reason != "" || streaming(hdr):
				// Not stored, or not before the stream ends: the
				// others go upstream themselves.
				release()
			default:
				cw.buffer = true
			}
		}
		return true, reason == ""
	})
	cw.onOverflow = release
	if release != nil {
		defer func() {
			// The next handler aborts the response (a panic, as
			// reverse_proxy does when the upstream fails mid-body): the
			// others go at once; this client gets what was read.
			if v := recover(); v != nil {
				release()
				_ = cw.drain()
				panic(v)
			}
		}()
	}
	err := next.ServeHTTP(cw, upstreamReq)
	now := h.now()
	switch {
	case err != nil && !cw.wrote:
		if canServeStale(now) {
			h.shared.stats.stale.Add(1)
			h.logger.Debug("serving stale entry after upstream error", zap.Error(err))
			return h.serve(w, r, stale, now, "fwd=stale; ", "; detail=stale-if-error")
		}
		return err
	case cw.wrote && !cw.pass && cw.status == http.StatusNotModified:
		refreshed, reason := h.refresh(stale, cw.snapshot, now, requestTime)
		if reason != "" {
			// The 304 made the response unstorable (Set-Cookie, private,
			// no-store, ...): this client gets it, nobody else.
			h.shared.store.Delete(key)
			return h.serve(w, r, refreshed, now, "fwd=stale; fwd-status=304; ", "; detail="+reason)
		}
		h.shared.store.Set(key, refreshed)
		h.shared.stats.revalidated.Add(1)
		return h.serve(w, r, refreshed, now, "fwd=stale; fwd-status=304; ", "")
	case cw.wrote && !cw.pass:
		h.shared.stats.stale.Add(1)
		return h.serve(w, r, stale, now, "fwd=stale; fwd-status="+strconv.Itoa(cw.status)+"; ", "; detail=stale-if-error")
	case cw.complete() && reason == "" && err == nil && wholeBody(cw.snapshot, cw.body) && (bodySeen == nil || !bodySeen.Load()):
		h.store(r, key, cw.status, cw.snapshot, cw.body, fresh, now)
	case stale != nil && reason != "" && reason != "head" && cw.status != http.StatusNotModified:
		// The new response may not be stored: the old one is obsolete.
		h.shared.store.Delete(key)
	}
	if release != nil {
		release() // before this client gets the body kept back
	}
	if derr := cw.drain(); derr != nil {
		h.logger.Debug("writing response", zap.Error(derr))
	}
	return err
}

// streaming reports whether a response is meant to be forwarded as it
// comes (an event stream, or `Incremental: ?1`, RFC 10036): it is
// neither buffered nor waited for.
func streaming(hdr http.Header) bool {
	if caddyhttp.IsIncremental(hdr) {
		return true
	}
	ct, _, _ := strings.Cut(hdr.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// wholeBody reports whether body is as long as the header's
// Content-Length says (when it says): a next handler that stopped
// early without an error must not leave a truncated entry.
func wholeBody(hdr http.Header, body []byte) bool {
	cl := hdr.Get("Content-Length")
	if cl == "" {
		return true
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	return err == nil && n == int64(len(body))
}

// store keeps a response: under its primary key, or, when it varies,
// under its variant key with a marker under the primary key.
func (h *Handler) store(r *http.Request, key string, status int, hdr http.Header, body []byte, f freshness, now time.Time) {
	e := &Entry{
		Status: status, Header: storedHeader(hdr), Body: body, Stored: now,
		InitialAge: f.initialAge, Lifetime: f.lifetime, SWR: f.swr, SIE: f.sie,
	}
	primary := key
	if i := strings.IndexByte(key, 1); i >= 0 {
		primary = key[:i]
	}
	if names := varyNames(hdr); len(names) > 0 {
		h.shared.store.Set(primary, &Entry{Vary: names, Stored: now, Lifetime: f.lifetime + max(f.swr, f.sie)})
		key = variantKey(primary, names, r)
	} else if primary != key {
		h.shared.store.Delete(primary) // no longer varies
		key = primary
	}
	h.shared.store.Set(key, e)
	h.shared.stats.stores.Add(1)
}

// refresh is the stale entry updated by a 304 (RFC 9111 §4.3.4). The
// reason is not empty when the updated response may not be stored (the
// 304 set a cookie or made it private or no-store): it is then for the
// client that got the 304 only, and the entry must go.
func (h *Handler) refresh(stale *Entry, hdr http.Header, now, requestTime time.Time) (*Entry, string) {
	merged := mergeNotModified(stale.Header, hdr)
	f, reason := h.storable(&http.Request{Header: http.Header{}}, stale.Status, merged, nil, now, requestTime)
	e := *stale
	e.Header, e.Stored = merged, now
	switch reason {
	case "":
		e.InitialAge, e.Lifetime, e.SWR, e.SIE = f.initialAge, f.lifetime, f.swr, f.sie
	case "no-freshness":
		// Never fresh, nothing to revalidate with: kept as it was
		// (stale), as before the 304.
		reason = ""
	}
	return &e, reason
}

// conditional is r with the stale entry's validators, for revalidation.
// The client's own conditional headers are kept when present (its 304 is
// then passed through).
func conditional(r *http.Request, e *Entry) *http.Request {
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		return r
	}
	etag, lm := e.Header.Get("ETag"), e.Header.Get("Last-Modified")
	if etag == "" && lm == "" {
		return r
	}
	r2 := r.Clone(r.Context())
	if etag != "" {
		r2.Header.Set("If-None-Match", etag)
	}
	if lm != "" {
		r2.Header.Set("If-Modified-Since", lm)
	}
	return r2
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// seconds is d in whole seconds for Cache-Status' ttl, rounded down (a
// stale entry's ttl is negative from its first instant).
func seconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d < 0 && d%time.Second != 0 {
		s--
	}
	return s
}
