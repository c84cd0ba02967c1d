package kdladapter

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/ratelimit"
)

// Rate limiting: the `rate-limit` filter, route `policies { rate-limit }`,
// the global `rate-limits { }` block and the limits block's
// max-requests-per-second-* settings, all mapped onto the
// sentinel_rate_limit handler (ratelimit.Handler). Each gets a zone name
// from the config's ids, so that the copies of a route in every
// listener's server share one set of buckets, and so that several
// proxies with the same config share them on Redis or memcached.

// rateLimitFilterKey declares the keys of a filter of type "rate-limit"
// and their mapping onto ratelimit.Handler. Built once, not changed after.
var rateLimitFilterKey = rateLimitFilterKeys()

func rateLimitFilterKeys() *Key {
	type H = ratelimit.Handler
	var fields []field[H]
	fields = append(fields,
		fieldOf("max-rps", "requests per second per key (default 100)", (*adapter).positiveNumber, func(t *H) *float64 { return &t.MaxRPS }),
		intField("burst", "requests at once per key (default 10)", 1, 1<<30, func(t *H) *int { return &t.Burst }),
		fieldOf("key", "`client-ip` (default), `path`, `route`, `client-ip-and-path`, `header:Name`; *extension*: `global`, `tenant`, `tenant-and-client-ip`", (*adapter).rateLimitKey, func(t *H) *string { return &t.Key }),
		fieldOf("on-limit", "`reject` (default), `delay`, `log-only`", (*adapter).onLimit, func(t *H) *string { return &t.OnLimit }),
		intField("status-code", "status of rejected requests (default 429)", 400, 599, func(t *H) *int { return &t.StatusCode }),
		stringField("message", "body of rejected requests", func(t *H) *string { return &t.Message }),
		fieldOf("max-delay-ms", "longest wait with on-limit \"delay\" (default 5000)", (*adapter).millisDuration, func(t *H) *caddy.Duration { return &t.MaxDelay }),
		intField("max-keys", "keys held in memory (default 100000); the fullest buckets are kept", 1, 1<<31, func(t *H) *int { return &t.MaxKeys }),
		fieldOf("backend", "`local` (default), `redis`, `memcached` (`memcache`)", (*adapter).rateLimitBackend, func(t *H) *string { return &t.Backend }),
	)
	fields = append(fields, redisSettings(func(t *H) **sharedstore.RedisConfig { return &t.Redis }, storeNotes{
		"default `redis://127.0.0.1:6379`; the password is never shown in errors", "key prefix (default `sentinel:ratelimit:`)",
		"connections (default 10)", "per operation (default 50)"})...)
	fields = append(fields,
		fallbackField("redis-fallback-local", "`#true` (default): this process's buckets while Redis is down; `#false`: 503"),
		fallbackField("redis-fallback", "07-2026 spelling of redis-fallback-local"),
	)
	fields = append(fields, memcachedSettings(func(t *H) **sharedstore.MemcachedConfig { return &t.Memcached }, storeNotes{
		"default `memcache://127.0.0.1:11211`; several servers: `memcache://a:11211,b:11211`", "key prefix (default `sentinel:ratelimit:`)",
		"idle connections per server (default 10)", "per operation (default 50)"})...)
	fields = append(fields,
		fallbackField("memcached-fallback-local", "`#true` (default): this process's buckets while memcached is down; `#false`: 503"),
		fallbackField("memcached-fallback", "07-2026 spelling of memcached-fallback-local"),
		durationField("memcached-ttl-secs", "lifetime of a one-second window's key (default 2)", func(t *H) *caddy.Duration { return &t.MemcachedTTL }),
		durationField("memcached-ttl", "07-2026 spelling of memcached-ttl-secs", func(t *H) *caddy.Duration { return &t.MemcachedTTL }),
	)
	return typedBlock(h("rate-limit", "`sentinel_rate_limit` handler (GCRA per key; see docs/rate-limiting.md)"), fields...)
}

// fallbackField is a *-fallback-local setting: read into FallbackLocal
// when it belongs to the filter's backend (rateLimitFilter applies it).
func fallbackField(name, note string) field[ratelimit.Handler] {
	return field[ratelimit.Handler]{key: h(name, note),
		ptr:  func(t *ratelimit.Handler) any { return &t.FallbackLocal },
		read: func(a *adapter, n *kdl.Node, t *ratelimit.Handler) { a.boolean(n) },
	}
}

// policyRateLimitKey is route `policies { rate-limit { } }`.
var policyRateLimitKey = withPolicySpan(typedBlock(h("rate-limit", "`sentinel_rate_limit` handler for the route (local buckets)"),
	fieldOf("requests-per-second", "per key (default: rate-limits' default-rps, else 100)", (*adapter).positiveNumber, func(t *ratelimit.Handler) *float64 { return &t.MaxRPS }),
	intField("burst", "(default: rate-limits' default-burst, else 10)", 1, 1<<30, func(t *ratelimit.Handler) *int { return &t.Burst }),
	fieldOf("key", "as the filter's (default: rate-limits' key, else client-ip)", (*adapter).rateLimitKey, func(t *ratelimit.Handler) *string { return &t.Key }),
))

// withPolicySpan makes k's Map (route policies' rate-limit) report a
// bucket whose span overflows, with rate-limits' default-rps and
// default-burst where the policy does not set its own (routeRateLimits
// applies them to the handler).
func withPolicySpan(k *Key) *Key {
	inner := k.Map
	k.Map = func(a *adapter, n *kdl.Node) any {
		t := inner(a, n).(*ratelimit.Handler)
		rps, burst := t.MaxRPS, t.Burst
		keys := spanKeys{rps: "requests-per-second", burst: "burst"}
		if d := setting(a.rateLimits, "default-rps"); rps == 0 && d != nil {
			if v, ok := a.number(d); ok && v > 0 {
				rps, keys.rps = v, "rate-limits default-rps"
			}
		}
		if d := setting(a.rateLimits, "default-burst"); burst == 0 && d != nil {
			if v, ok := a.number(d); ok && v >= 1 && v <= 1<<30 {
				burst, keys.burst = int(v), "rate-limits default-burst"
			}
		}
		a.rateLimitSpan(n, "policies rate-limit: ", rps, burst, 0, keys)
		return t
	}
	return k
}

// globalRateLimitKey is `rate-limits { global { } }`.
var globalRateLimitKey = typedBlock(h("global", "one `sentinel_rate_limit` handler (zone \"global\") in front of every route, shared by all routes and listeners"),
	fieldOf("max-rps", "required", (*adapter).positiveNumber, func(t *ratelimit.Handler) *float64 { return &t.MaxRPS }),
	intField("burst", "(default 10)", 1, 1<<30, func(t *ratelimit.Handler) *int { return &t.Burst }),
	fieldOf("key", "as the filter's (default client-ip)", (*adapter).rateLimitKey, func(t *ratelimit.Handler) *string { return &t.Key }),
)

// rateLimitsKeys is the top-level `rate-limits { }` block.
func rateLimitsKeys() *Key {
	return h("rate-limits", "global rate limiting",
		h("default-rps", "default requests-per-second of route `policies { rate-limit { } }`"),
		h("default-burst", "default burst of route policies' rate-limit"),
		h("key", "default key of route policies' rate-limit"),
		globalRateLimitKey,
	)
}

// limitsRateKey is one of the limits block's rate settings.
func limitsRateKey(name string) *Key {
	return h(name, map[string]string{
		"max-requests-per-second-global":     "`sentinel_rate_limit` (key `global`, zone \"limits-global\") in front of every route; burst = one second's worth",
		"max-requests-per-second-per-client": "`sentinel_rate_limit` (key `client-ip`, zone \"limits-per-client\") in front of every route; burst = one second's worth",
		"max-requests-per-second-per-route":  "`sentinel_rate_limit` (key `route`) on each route; burst = one second's worth",
	}[name])
}

// positiveNumber reads a number above zero.
func (a *adapter) positiveNumber(n *kdl.Node) (float64, bool) {
	f, ok := a.number(n)
	if ok && (f <= 0 || f > 1e9) {
		a.d.errorf(n.Args[0].Pos, "%s %v: must be above 0 (at most 1e9)", n.Name, f)
		return 0, false
	}
	return f, ok
}

// limitsRate reads a limits block's max-requests-per-second-* (global
// or a namespace's): a positive number whose bucket (burst = one
// second's worth, at least 1; the default max delay) fits the clock.
func (a *adapter) limitsRate(n *kdl.Node) (float64, bool) {
	rps, ok := a.positiveNumber(n)
	if ok && ratelimit.SpanOverflows(rps, max(int(rps), 1), ratelimit.DefaultMaxDelay) {
		a.d.errorf(n.Args[0].Pos, "limits: %s %v: a rate-limit bucket would span more than %.0f years, overflowing its clock (raise %s)",
			n.Name, rps, ratelimit.MaxSpan.Hours()/(365*24), n.Name)
		return 0, false
	}
	return rps, ok
}

// rateLimitKey reads a rate-limit key.
func (a *adapter) rateLimitKey(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	if name, isHeader := strings.CutPrefix(s, "header:"); isHeader {
		if name = strings.TrimSpace(name); name == "" || strings.ContainsAny(name, " \t:") {
			a.d.errorf(n.Args[0].Pos, "key %q: header:<Name> needs a header name", s)
			return "", false
		}
		return s, true
	}
	switch strings.ReplaceAll(strings.ToLower(s), "_", "-") {
	case "client-ip", "path", "route", "client-ip-and-path", "global", "tenant", "tenant-and-client-ip":
		return strings.ReplaceAll(strings.ToLower(s), "_", "-"), true
	}
	all := []string{"client-ip", "path", "route", "client-ip-and-path", "header:<Name>", "global", "tenant", "tenant-and-client-ip"}
	a.d.errorf(n.Args[0].Pos, "key %q: expected %s%s", s, strings.Join(all, ", "), suggest(s, all))
	return "", false
}

// onLimit reads on-limit.
func (a *adapter) onLimit(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	return a.oneOf(n, strings.ToLower(s), "reject", "delay", "log-only")
}

// rateLimitBackend reads backend.
func (a *adapter) rateLimitBackend(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	b, ok := a.oneOf(n, strings.ToLower(s), "local", "redis", "memcached", "memcache")
	if b == "memcache" {
		b = "memcached"
	}
	return b, ok
}

// rateLimitFilter maps a filter of type "rate-limit" used by a route.
// t is the filter's mapped block.
func (a *adapter) rateLimitFilter(routeID, filterID string, f *kdl.Node, t *ratelimit.Handler) obj {
	t.Zone = "route:" + routeID + "/filter:" + filterID
	// The fallback setting of the filter's backend (the new spelling
	// first).
	var names []string
	switch t.Backend {
	case "redis":
		names = []string{"redis-fallback-local", "redis-fallback"}
		t.Memcached = nil
	case "memcached":
		names = []string{"memcached-fallback-local", "memcached-fallback"}
		t.Redis = nil
	default:
		if t.Redis != nil || t.Memcached != nil {
			a.d.warnf(f.Pos, "filters.filter[rate-limit]", "filter %q: redis-*/memcached-* settings have no effect without backend \"redis\"/\"memcached\"", filterID)
		}
		t.Redis, t.Memcached = nil, nil
	}
	for _, name := range names {
		if n := setting(f, name); n != nil {
			if b, ok := a.boolean(n); ok {
				t.FallbackLocal = &b
			}
			break
		}
	}
	a.rateLimitSpan(f, fmt.Sprintf("filter %q: ", filterID), t.MaxRPS, t.Burst, time.Duration(t.MaxDelay),
		spanKeys{rps: "max-rps", burst: "burst", delay: "max-delay-ms"})
	return rateLimitObj(t)
}

// spanKeys names the KDL keys of a rate limit's span in an error; a
// block's nodes of these names (rps first) are where it points.
type spanKeys struct{ rps, burst, delay string }

// rateLimitSpan reports, at block's rps (else burst, else delay) setting
// or at block itself, a bucket whose span overflows int64 nanoseconds
// (ratelimit.SpanOverflows, which the handler's Provision checks too).
// Zero values take the handler's defaults. what prefixes the message.
func (a *adapter) rateLimitSpan(block *kdl.Node, what string, rps float64, burst int, delay time.Duration, k spanKeys) {
	if rps == 0 {
		rps = ratelimit.DefaultMaxRPS
	}
	if burst == 0 {
		burst = ratelimit.DefaultBurst
	}
	if delay == 0 {
		delay = ratelimit.DefaultMaxDelay
	}
	if !ratelimit.SpanOverflows(rps, burst, delay) {
		return
	}
	pos := block.Pos
	for _, name := range []string{k.rps, k.burst, k.delay} {
		if n := setting(block, name); name != "" && n != nil {
			pos = n.Pos
			break
		}
	}
	settings := fmt.Sprintf("%s %v and %s %d", k.rps, rps, k.burst, burst)
	lower := k.burst
	if k.delay != "" {
		settings = fmt.Sprintf("%s %v, %s %d and %s %d", k.rps, rps, k.burst, burst, k.delay, delay.Milliseconds())
		lower += " or " + k.delay
	}
	a.d.errorf(pos, "%s%s: a rate-limit bucket would span more than %.0f years, overflowing its clock (lower %s, or raise %s)",
		what, settings, ratelimit.MaxSpan.Hours()/(365*24), lower, k.rps)
}

// routeRateLimits are the rate limit handlers in front of a route's own
// handlers: the global ones (rate-limits' global, limits'
// max-requests-per-second-*) and the route's policies.
// policy is the route's policies' rate-limit (nil without one).
func (a *adapter) routeRateLimits(routeID string, policy *ratelimit.Handler) []any {
	var out []any
	if g := setting(a.rateLimits, "global"); g != nil {
		t := globalRateLimitKey.Map(a, g).(*ratelimit.Handler)
		if setting(g, "max-rps") == nil {
			a.d.errorf(g.Pos, "rate-limits: global needs max-rps")
		} else {
			a.rateLimitSpan(g, "rate-limits global: ", t.MaxRPS, t.Burst, 0, spanKeys{rps: "max-rps", burst: "burst"})
		}
		t.Zone = "global"
		out = append(out, rateLimitObj(t))
	}
	limit := func(name, zone, key string) {
		if n := a.limitSetting(name); n != nil {
			if rps, ok := a.limitsRate(n); ok {
				out = append(out, rateLimitObj(&ratelimit.Handler{Zone: zone, MaxRPS: rps, Burst: max(int(rps), 1), Key: key}))
			}
		}
	}
	limit("max-requests-per-second-global", "limits-global", "global")
	limit("max-requests-per-second-per-client", "limits-per-client", "client-ip")
	// The caps of the route's namespace and service (nslimits.go).
	out = append(out, a.scopeCaps(routeID)...)
	if rps, ok := scopedRate(a.scopeOf(routeID), func(l *nsLimits) *float64 { return l.rpsPerRoute }); ok {
		out = append(out, rateLimitObj(&ratelimit.Handler{Zone: "route:" + routeID + "/limits", MaxRPS: rps, Burst: max(int(rps), 1), Key: "route"}))
	} else {
		limit("max-requests-per-second-per-route", "route:"+routeID+"/limits", "route")
	}
	if t := policy; t != nil {
		if n := setting(a.rateLimits, "default-rps"); n != nil && t.MaxRPS == 0 {
			t.MaxRPS, _ = a.positiveNumber(n)
		}
		if n := setting(a.rateLimits, "default-burst"); n != nil && t.Burst == 0 {
			if b, ok := a.integer(n, 1, 1<<30); ok {
				t.Burst = int(b)
			}
		}
		if n := setting(a.rateLimits, "key"); n != nil && t.Key == "" {
			t.Key, _ = a.rateLimitKey(n)
		}
		t.Zone = "route:" + routeID + "/policy"
		out = append(out, rateLimitObj(t))
	}
	return out
}

// rateLimitObj is the handler's output form.
func rateLimitObj(t *ratelimit.Handler) obj {
	return typedObj(t, "handler", "sentinel_rate_limit")
}
