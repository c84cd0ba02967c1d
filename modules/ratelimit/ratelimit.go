// Package ratelimit provides the `sentinel_rate_limit` handler: the
// original Sentinel's `rate-limit` filter, route `policies { rate-limit }`
// and global `rate-limits`. It limits requests per key (client IP, path,
// route, a header, or all requests) with GCRA, in memory or on a store
// shared by several proxies (Redis, memcached), and answers requests over
// the limit with 429 (or delays them, or only logs them).
package ratelimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/routematch"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("sentinel_rate_limit", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_rate_limit", httpcaddyfile.Before, "header")
}

// Defaults of the handler's settings (the original's).
const (
	DefaultMaxRPS     = 100
	DefaultBurst      = 10
	DefaultStatusCode = http.StatusTooManyRequests
	DefaultMaxDelay   = 5 * time.Second
	DefaultMaxKeys    = 100000

	// MaxSpan is the longest a bucket may span (burst × 1s/max_rps +
	// max_delay): 2^61 ns, about 73 years, so that the clock plus a span
	// stays within int64 nanoseconds (see SpanOverflows).
	MaxSpan = time.Duration(1 << 61)

	// DefaultPrefix is the key prefix on a shared store.
	DefaultPrefix = "sentinel:ratelimit:"
	// DefaultMemcachedTTL is how long a memcached window key lives.
	DefaultMemcachedTTL = 2 * time.Second
)

// Handler limits the rate of requests per key.
//
// Every request is counted against the bucket of its key; a bucket
// admits `burst` requests at once and refills at `max_rps`. Responses
// carry `X-RateLimit-Limit` (max_rps), `X-RateLimit-Remaining` and
// `X-RateLimit-Reset` (seconds until the bucket is full); a rejected
// request gets `status_code` with `message` and `Retry-After` (seconds).
//
// Handlers with the same `zone` and the same settings share their
// buckets (across routes, servers and config reloads); without a zone,
// each handler has its own.
type Handler struct {
	// Names the limit: handlers with the same zone and settings share
	// buckets, and on a shared store the zone is part of every key (so
	// several proxies sharing a store must use the same zone names).
	Zone string `json:"zone,omitempty"`

	// Requests per second admitted per key, on average. Default: 100.
	MaxRPS float64 `json:"max_rps,omitempty"`

	// Requests admitted at once per key (the bucket's size). Default: 10.
	Burst int `json:"burst,omitempty"`

	// What a bucket is for: `client_ip` (default; the client address as
	// Caddy determines it, through trusted_proxies), `path` (the
	// normalised path route matching sees: `//a`, `/./a` and `/x/../a`
	// are `/a`), `route` (all
	// requests of the handler, or of its zone), `client_ip_and_path`,
	// `header:<Name>` (the header's value; requests without it, or with
	// more than one, count by client IP), `global` (all requests), `tenant` (the namespace the
	// sentinel_tenant handler identified: one bucket per tenant) or
	// `tenant_and_client_ip`. Hyphens may stand for underscores
	// (`client-ip`).
	Key string `json:"key,omitempty"`

	// What to do with a request over the limit: `reject` (default),
	// `delay` (hold it until it fits, at most max_delay, else reject) or
	// `log_only` (log it and let it through).
	OnLimit string `json:"on_limit,omitempty"`

	// The status of rejected requests. Default: 429.
	StatusCode int `json:"status_code,omitempty"`

	// The body of rejected requests. Default: the status text.
	Message string `json:"message,omitempty"`

	// In delay mode, the longest a request is held. Default: 5s.
	MaxDelay caddy.Duration `json:"max_delay,omitempty"`

	// The most keys held in memory (local backend and fallback); beyond
	// it, the keys whose buckets are full again (or closest to it) are
	// dropped. Default: 100000.
	MaxKeys int `json:"max_keys,omitempty"`

	// Where buckets live: `local` (default, this process), `redis` or
	// `memcached`.
	Backend string `json:"backend,omitempty"`

	// The Redis server, for backend `redis`. Its prefix defaults to
	// `sentinel:ratelimit:`.
	Redis *sharedstore.RedisConfig `json:"redis,omitempty"`

	// The memcached servers, for backend `memcached`. Its prefix defaults
	// to `sentinel:ratelimit:`.
	Memcached *sharedstore.MemcachedConfig `json:"memcached,omitempty"`

	// How long a memcached window key lives. Default: 2s.
	MemcachedTTL caddy.Duration `json:"memcached_ttl,omitempty"`

	// When the shared store cannot be reached (or answers too late):
	// true (default) decides with this process's own buckets meanwhile;
	// false fails the request with 503 and `Retry-After: 1`. The store is
	// tried again after a second.
	FallbackLocal *bool `json:"fallback_local,omitempty"`

	keyKind   keyKind
	header    string
	params    params
	limitHdr  string
	zone      *zone
	zoneKey   string
	onLimit   string
	logger    *zap.Logger
	fallback  bool
	rejectMsg []byte
	audit     *audit.App // nil: audit off
	// route is the id of the route whose sentinel_route guard runs this
	// handler (see routeOf); empty outside a guard.
	route string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sentinel_rate_limit",
		New: func() caddy.Module { return new(Handler) },
	}
}

// keyKind is what a bucket is for.
type keyKind int

const (
	keyClientIP keyKind = iota
	keyPath
	keyRoute
	keyClientIPAndPath
	keyHeader
	keyGlobal
	keyTenant
	keyTenantAndClientIP
)

// parseKey reads the key setting.
func parseKey(s string) (keyKind, string, error) {
	if name, ok := strings.CutPrefix(s, "header:"); ok {
		name = strings.TrimSpace(name)
		if name == "" || strings.ContainsAny(name, " \t:") {
			return 0, "", fmt.Errorf("key %q: header:<Name> needs a header name", s)
		}
		return keyHeader, textproto.CanonicalMIMEHeaderKey(name), nil
	}
	switch strings.ReplaceAll(s, "-", "_") {
	case "", "client_ip":
		return keyClientIP, "", nil
	case "path":
		return keyPath, "", nil
	case "route":
		return keyRoute, "", nil
	case "client_ip_and_path":
		return keyClientIPAndPath, "", nil
	case "global":
		return keyGlobal, "", nil
	case "tenant":
		return keyTenant, "", nil
	case "tenant_and_client_ip":
		return keyTenantAndClientIP, "", nil
	}
	return 0, "", fmt.Errorf("key %q: expected client_ip, path, route, client_ip_and_path, header:<Name>, global, tenant or tenant_and_client_ip", s)
}

// normalize applies the defaults and checks the settings (Validate and
// Provision share it).
func (h *Handler) normalize() error {
	if h.MaxRPS == 0 {
		h.MaxRPS = DefaultMaxRPS
	}
	if h.MaxRPS < 0 || math.IsNaN(h.MaxRPS) || math.IsInf(h.MaxRPS, 0) || h.MaxRPS > 1e9 {
		return fmt.Errorf("max_rps %v: must be a positive number up to 1e9", h.MaxRPS)
	}
	if h.Burst == 0 {
		h.Burst = DefaultBurst
	}
	if h.Burst < 0 {
		return fmt.Errorf("burst %d: must be positive", h.Burst)
	}
	var err error
	if h.keyKind, h.header, err = parseKey(h.Key); err != nil {
		return err
	}
	switch h.onLimit = strings.ReplaceAll(h.OnLimit, "-", "_"); h.onLimit {
	case "":
		h.onLimit = "reject"
	case "reject", "delay", "log_only":
	default:
		return fmt.Errorf("on_limit %q: expected reject, delay or log_only", h.OnLimit)
	}
	if h.StatusCode == 0 {
		h.StatusCode = DefaultStatusCode
	}
	if h.StatusCode < 400 || h.StatusCode > 599 {
		return fmt.Errorf("status_code %d: must be 4xx or 5xx", h.StatusCode)
	}
	if h.MaxDelay == 0 {
		h.MaxDelay = caddy.Duration(DefaultMaxDelay)
	}
	if h.MaxDelay < 0 {
		return fmt.Errorf("max_delay %s: must not be negative", time.Duration(h.MaxDelay))
	}
	// A bucket's span (burst × the interval between requests, plus the
	// delay) is held in int64 nanoseconds added to the clock: a tiny
	// max_rps or a huge burst or max_delay would overflow it (an
	// interval that wraps to a negative number admits everything).
	if SpanOverflows(h.MaxRPS, h.Burst, time.Duration(h.MaxDelay)) {
		return fmt.Errorf("max_rps %v, burst %d and max_delay %s: a bucket would span more than %.0f years (lower burst or max_delay, or raise max_rps)",
			h.MaxRPS, h.Burst, time.Duration(h.MaxDelay), MaxSpan.Hours()/(365*24))
	}
	if h.MaxKeys == 0 {
		h.MaxKeys = DefaultMaxKeys
	}
	if h.MaxKeys < 0 {
		return fmt.Errorf("max_keys %d: must be positive", h.MaxKeys)
	}
	if h.MemcachedTTL == 0 {
		h.MemcachedTTL = caddy.Duration(DefaultMemcachedTTL)
	}
	switch h.Backend {
	case "", "local":
		h.Backend = "local"
	case "redis":
		if h.Redis == nil {
			h.Redis = &sharedstore.RedisConfig{}
		}
		if h.Redis.Prefix == "" {
			h.Redis.Prefix = DefaultPrefix
		}
		if err := h.Redis.Validate(); err != nil {
			return err
		}
	case "memcached", "memcache":
		h.Backend = "memcached"
		if h.Memcached == nil {
			h.Memcached = &sharedstore.MemcachedConfig{}
		}
		if h.Memcached.Prefix == "" {
			h.Memcached.Prefix = DefaultPrefix
		}
		if err := h.Memcached.Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("backend %q: expected local, redis or memcached", h.Backend)
	}
	h.fallback = h.FallbackLocal == nil || *h.FallbackLocal
	return nil
}

// Provision applies the defaults and sets up (or joins) the zone.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.normalize(); err != nil {
		return err
	}
	maxDelay := time.Duration(0)
	if h.onLimit == "delay" {
		maxDelay = time.Duration(h.MaxDelay)
	}
	h.params = newParams(h.MaxRPS, h.Burst, maxDelay)
	h.limitHdr = strconv.FormatFloat(h.MaxRPS, 'f', -1, 64)
	h.rejectMsg = []byte(h.Message)
	if h.Message == "" {
		h.rejectMsg = []byte(http.StatusText(h.StatusCode))
	}
	z, key, err := acquireZone(h)
	if err != nil {
		return err
	}
	h.zone, h.zoneKey = z, key
	if h.audit, err = audit.Lookup(ctx); err != nil {
		return err
	}
	h.route = routeOf(ctx)
	return registerMetrics(ctx)
}

// Validate checks the settings.
func (h *Handler) Validate() error {
	if h.zone == nil {
		return errors.New("not provisioned")
	}
	return nil
}

// Cleanup releases the zone.
func (h *Handler) Cleanup() error {
	if h.zone == nil {
		return nil
	}
	_, err := zones.Delete(h.zoneKey)
	return err
}

// ServeHTTP counts the request against its bucket.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	k := h.requestKey(r)
	d, err := h.zone.take(r.Context(), k, time.Now())
	if err != nil {
		// The shared store is down and there is no fallback.
		w.Header().Set("Retry-After", "1")
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("rate limit store unavailable: %w", err))
	}
	hdr := w.Header()
	hdr.Set("X-RateLimit-Limit", h.limitHdr)
	hdr.Set("X-RateLimit-Remaining", strconv.FormatInt(d.remaining, 10))
	hdr.Set("X-RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.reset), 10))
	if !d.allowed {
		h.zone.counters.limited.Add(1)
		if h.onLimit == "log_only" {
			h.logger.Info("rate limit exceeded (log only)", zap.String("zone", h.Zone), zap.Duration("retry_after", d.retryAfter))
			return next.ServeHTTP(w, r)
		}
		h.logger.Debug("rate limit exceeded", zap.String("zone", h.Zone), zap.Duration("retry_after", d.retryAfter))
		if h.audit != nil {
			h.auditReject(r, k)
		}
		hdr.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(d.retryAfter), 1), 10))
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Set("Content-Length", strconv.Itoa(len(h.rejectMsg)))
		w.WriteHeader(h.StatusCode)
		_, _ = w.Write(h.rejectMsg)
		return nil
	}
	h.zone.counters.admitted.Add(1)
	if d.wait > 0 {
		t := time.NewTimer(d.wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return r.Context().Err()
		}
	}
	return next.ServeHTTP(w, r)
}

// requestKey is the request's bucket key.
func (h *Handler) requestKey(r *http.Request) key {
	switch h.keyKind {
	case keyPath:
		return key{a: routematch.RequestPath(r)}
	case keyRoute, keyGlobal:
		return key{}
	case keyClientIPAndPath:
		return key{a: clientIP(r), b: routematch.RequestPath(r)}
	case keyHeader:
		switch v := r.Header[h.header]; {
		case len(v) == 1:
			return key{a: v[0], b: "\x00h"}
		case len(v) > 1:
			// Which value the upstream uses is its own choice (the first,
			// the last, all joined): a fresh first value would be a
			// fresh bucket for a request the upstream attributes to the
			// last. Such requests count by client address, in buckets
			// of their own.
			return key{a: clientIP(r), b: "\x00hh"}
		}
	case keyTenant:
		// The namespace sentinel_tenant identified: one bucket per
		// tenant (requests without one share the bucket "").
		return key{a: tenant.Namespace(r.Context()), b: "\x00t"}
	case keyTenantAndClientIP:
		return key{a: clientIP(r), b: "\x00t" + tenant.Namespace(r.Context())}
	}
	return key{a: clientIP(r)}
}

// clientIP is the client address Caddy determined (through the server's
// trusted_proxies), else the connection's peer.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// fingerprint is the handler's settings that decide its buckets: handlers
// share a zone only when they agree on all of them.
func (h *Handler) fingerprint() string {
	b, _ := json.Marshal(struct {
		Zone, Key, OnLimit, Backend string
		RPS                         float64
		Burst, MaxKeys              int
		MaxDelay, TTL               caddy.Duration
		Redis                       *sharedstore.RedisConfig
		Memcached                   *sharedstore.MemcachedConfig
		Fallback                    bool
	}{h.Zone, h.Key, h.onLimit, h.Backend, h.MaxRPS, h.Burst, h.MaxKeys, h.MaxDelay, h.MemcachedTTL, h.Redis, h.Memcached, h.fallback})
	return string(b)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// SpanOverflows reports whether a bucket of maxRPS requests per second,
// burst and maxDelay (the values after defaults) would span more than
// MaxSpan: its nanoseconds added to the clock would overflow int64 (an
// interval that wraps to a negative number admits everything).
// Provision refuses such a handler; the KDL adapter reports it at adapt
// time with the settings' file and line.
func SpanOverflows(maxRPS float64, burst int, maxDelay time.Duration) bool {
	return float64(time.Second)/maxRPS*float64(burst)+float64(maxDelay) > float64(MaxSpan)
}
