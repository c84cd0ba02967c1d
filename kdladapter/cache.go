package kdladapter

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/cache"
)

// Response caching: a route's `cache { }` block becomes a sentinel_cache
// handler in front of the route's responder; the top-level `cache { }`
// block is the storage every route's cache shares (and its Cache-Status
// settings); builtin-handler "cache-purge" / "cache-stats" become
// sentinel_cache_admin handlers on that storage, the purge protected by
// the admin-api's tokens.

// routeCacheSpec and cacheStorageSpec are the typed declarations, built
// once, whose mappers the route and storage mapping use.
var (
	routeCacheSpec   = routeCacheKey()
	cacheStorageSpec = cacheStorageKey()
)

// routeCacheKey declares a route's `cache { }` block: the original's
// twelve keys, onto cache.Handler.
func routeCacheKey() *Key {
	return typedBlockInit(h("cache", "`sentinel_cache` handler in front of the route's upstream or static files (RFC 9111 shared cache; docs/caching.md)"),
		func(c *cache.Handler) {
			c.DefaultTTL = caddy.Duration(time.Hour)
			c.MaxEntryBytes = 10 << 20
			c.StaleWhileRevalidate = caddy.Duration(time.Minute)
			c.StaleIfError = caddy.Duration(5 * time.Minute)
		},
		field[cache.Handler]{key: h("enabled", "`#true` turns the route's cache on (default `#false`)")},
		secondsField("default-ttl-secs", "freshness of responses without max-age/s-maxage/Expires", func(c *cache.Handler) *caddy.Duration { return &c.DefaultTTL }),
		fieldOf("max-size-bytes", "largest body stored; larger responses pass through", func(a *adapter, n *kdl.Node) (int64, bool) { return a.byteSize(n) },
			func(c *cache.Handler) *int64 { return &c.MaxEntryBytes }),
		boolField("cache-private", "also store `private` responses", func(c *cache.Handler) *bool { return &c.CachePrivate }),
		secondsOffField("stale-while-revalidate-secs", "`0` turns it off; a response's own directive wins", func(c *cache.Handler) *caddy.Duration { return &c.StaleWhileRevalidate }),
		secondsOffField("stale-if-error-secs", "`0` turns it off; a response's own directive wins", func(c *cache.Handler) *caddy.Duration { return &c.StaleIfError }),
		fieldOf("cacheable-methods", "request methods cached (HEAD is answered from GET's entry)", methodsValue, func(c *cache.Handler) *[]string { return &c.Methods }),
		fieldOf("cacheable-status-codes", "status codes stored (206 never: a partial response is not stored)", statusesValue, func(c *cache.Handler) *[]int { return &c.Statuses }),
		stringsField("vary-headers", "request headers always in the key", func(c *cache.Handler) *[]string { return &c.VaryHeaders }),
		stringsField("ignore-query-params", "query parameters left out of the key (the rest of the query string is in it)", func(c *cache.Handler) *[]string { return &c.IgnoreQueryParams }),
		stringsField("exclude-extensions", "file extensions never cached", func(c *cache.Handler) *[]string { return &c.ExcludeExtensions }),
		stringsField("exclude-paths", "paths never cached (a path and below, or a `*` pattern)", func(c *cache.Handler) *[]string { return &c.ExcludePaths }),
	)
}

// cacheStorageKey declares the top-level `cache { }` block, onto
// cache.Storage (the handler-wide settings are read by mapCacheStorage).
func cacheStorageKey() *Key {
	type S = cache.Storage
	fields := []field[S]{
		field[cache.Storage]{key: h("enabled", "`#false` turns every route's cache off (warning)")},
		backendField(),
		fieldOf("max-size", "memory size in bytes (LRU eviction beyond it)", func(a *adapter, n *kdl.Node) (int64, bool) { return a.byteSize(n) },
			func(s *cache.Storage) *int64 { return &s.MaxSize }),
		field[cache.Storage]{key: w("eviction-limit", "eviction is least-recently-used by size (max-size, disk-max-size); there is no separate limit")},
		field[cache.Storage]{key: h("lock-timeout", "`lock_timeout` of every route's cache: how long concurrent misses of one key wait for the request that went upstream (seconds)")},
		stringField("disk-path", "folder of the disk files (required for disk and hybrid)", func(s *cache.Storage) *string { return &s.DiskPath }),
		intField("disk-shards", "sub-folders of the disk store", 1, 256, func(s *cache.Storage) *int { return &s.DiskShards }),
		fieldOf("disk-max-size", "disk size in bytes", func(a *adapter, n *kdl.Node) (int64, bool) { return a.byteSize(n) },
			func(s *cache.Storage) *int64 { return &s.DiskMaxSize }),
		field[cache.Storage]{key: h("status-header", "`#true`: every cached route sends `Cache-Status` (RFC 9211), the handler's `status_header`")},
		field[cache.Storage]{key: h("status-header-name", "the Cache-Status cache identifier (default `sentinel`)")},
	}
	// The shared store (an extension: the original's cache has none),
	// with the rate-limit filter's settings.
	redis := redisSettings(func(s *S) **sharedstore.RedisConfig { return &s.Redis }, storeNotes{
		"the server of backend `redis`: `redis://[:password@]host:port[/db]` or `rediss://` (TLS); default `redis://127.0.0.1:6379`; the password is never shown in errors",
		"key prefix (default `sentinel:cache:`); proxies with the same URL and prefix share entries",
		"connections (default 10)",
		"per operation (default 50); beyond it the local memory store is used for a second"})
	for _, f := range redis {
		fields = append(fields, extField(f))
	}
	fields = append(fields,
		extField(fieldOf("redis-max-entry-size", "largest body stored on Redis in bytes (default 1 MiB; lowers the routes' max-size-bytes)", func(a *adapter, n *kdl.Node) (int64, bool) { return a.byteSize(n) },
			func(s *cache.Storage) *int64 { return &s.RedisMaxEntryBytes })),
	)
	return typedBlock(h("cache", "the storage of every route's `sentinel_cache` (and of the cache builtins); docs/caching.md"), fields...)
}

// extField marks a field's key as an extension.
func extField[T any](f field[T]) field[T] {
	ext(f.key)
	return f
}

// backendField is the storage backend. The original's examples write
// `backend "memory" { max-size-mb 512 }`, which its parser ignores:
// accepted with a warning.
func backendField() field[cache.Storage] {
	f := fieldOf("backend", "`memory`, `disk` or `hybrid` (memory in front of disk); *extension*: `redis` (shared by a fleet, docs/caching.md)", backendValue, func(s *cache.Storage) *string { return &s.Backend })
	f.key.Children = []*Key{w("max-size-mb", "not a key of the original either: give max-size (bytes) in the cache block")}
	return f
}

// secondsOffField is a setting of whole seconds where 0 turns the
// feature off (written as a negative duration, the module's "off").
func secondsOffField[T any](name, note string, p func(*T) *caddy.Duration) field[T] {
	return fieldOf(name, note, func(a *adapter, n *kdl.Node) (caddy.Duration, bool) {
		d, ok := a.secondsDuration(n)
		if ok && d == 0 {
			d = -1
		}
		return d, ok
	}, p)
}

// methodsValue reads HTTP method names (upper-cased).
func methodsValue(a *adapter, n *kdl.Node) ([]string, bool) {
	ms := a.strs(n)
	for i, m := range ms {
		if m == "" || strings.ContainsAny(m, " \t\r\n,") {
			a.d.errorf(n.Args[i].Pos, "%s: %q is not an HTTP method", n.Name, m)
			return nil, false
		}
		ms[i] = strings.ToUpper(m)
	}
	return ms, len(ms) > 0
}

// statusesValue reads HTTP status codes.
func statusesValue(a *adapter, n *kdl.Node) ([]int, bool) {
	var out []int
	for _, v := range a.ints(n, 100, 599) {
		out = append(out, int(v))
	}
	return out, len(out) > 0
}

// backendValue reads a storage backend name.
func backendValue(a *adapter, n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	return a.oneOf(n, s, cache.BackendMemory, cache.BackendDisk, cache.BackendHybrid, cache.BackendRedis)
}

// cacheSettings are the top-level cache block's settings for handlers.
type cacheSettings struct {
	storage      cache.Storage
	off          bool
	statusHeader string
	lockTimeout  caddy.Duration
}

// cacheStorage maps the top-level cache block once.
func (a *adapter) cacheStorage() *cacheSettings {
	if a.cacheSet != nil {
		return a.cacheSet
	}
	cs := &cacheSettings{storage: cache.Storage{Name: "default"}}
	a.cacheSet = cs
	n := a.cacheBlock
	if n == nil {
		return cs
	}
	cs.storage = *cacheStorageSpec.Map(a, n).(*cache.Storage)
	cs.storage.Name = "default"
	if e := setting(n, "enabled"); e != nil {
		if on, ok := a.boolean(e); ok && !on {
			cs.off = true
		}
	}
	if (cs.storage.Backend == cache.BackendDisk || cs.storage.Backend == cache.BackendHybrid) && cs.storage.DiskPath == "" {
		a.d.errorf(n.Pos, "cache: backend %q needs disk-path (the folder of the cache files)", cs.storage.Backend)
	}
	if cs.storage.Backend != cache.BackendRedis && (cs.storage.Redis != nil || cs.storage.RedisMaxEntryBytes != 0) {
		a.d.warnf(n.Pos, "cache", "cache: redis-* settings have no effect without backend \"redis\"")
		cs.storage.Redis, cs.storage.RedisMaxEntryBytes = nil, 0
	}
	if cs.storage.Backend == cache.BackendRedis && cs.storage.Redis != nil {
		if err := cs.storage.Redis.Validate(); err != nil {
			pos := n.Pos
			if u := setting(n, "redis-url"); u != nil {
				pos = u.Pos
			}
			a.d.errorf(pos, "cache: %v", err)
		}
	}
	if s := setting(n, "lock-timeout"); s != nil {
		if i, ok := a.integer(s, 0, 3600); ok {
			cs.lockTimeout = caddy.Duration(time.Duration(i) * time.Second)
			if i == 0 {
				cs.lockTimeout = caddy.Duration(time.Millisecond) // no waiting
			}
		}
	}
	on := false
	if s := setting(n, "status-header"); s != nil {
		on, _ = a.boolean(s)
	}
	name := "sentinel"
	if s := setting(n, "status-header-name"); s != nil {
		if v, ok := a.str(s); ok {
			if v == "" || strings.ContainsAny(v, ",;=\" \t\r\n") {
				a.d.errorf(s.Args[0].Pos, "status-header-name %q must be a token (letters, digits, -._~ …; no spaces, commas, semicolons, quotes or =)", v)
			}
			name = v
		}
	}
	if on {
		cs.statusHeader = name
	}
	return cs
}

// routeCache is the sentinel_cache handler of route id (nil when the
// route has no cache, or it is off).
func (a *adapter) routeCache(id string, r *kdl.Node) []any {
	n := setting(r, "cache")
	if n == nil {
		return nil
	}
	on := false
	if e := setting(n, "enabled"); e != nil {
		on, _ = a.boolean(e)
	}
	// Map (and so check) the block even when it is off.
	c := routeCacheSpec.Map(a, n).(*cache.Handler)
	if !on {
		return nil
	}
	cs := a.cacheStorage()
	if cs.off {
		a.d.warnf(n.Pos, "routes.route.cache", "route %q: the top-level cache block is `enabled #false`: the route is not cached", id)
		return nil
	}
	c.Storage = cs.storage // written by typedObj as one JSON value
	c.StatusHeader = cs.statusHeader
	c.LockTimeout = cs.lockTimeout
	c.Route = id
	if slices.Contains(c.Statuses, 206) {
		c.Statuses = slices.DeleteFunc(c.Statuses, func(s int) bool { return s == 206 })
	}
	return []any{typedObj(c, "handler", "sentinel_cache")}
}

// cacheIgnored warns about an enabled cache on a route answered by a
// builtin handler (nothing to cache).
func (a *adapter) cacheIgnored(id string, r *kdl.Node) {
	n := setting(r, "cache")
	if e := setting(n, "enabled"); e != nil && len(e.Args) == 1 && e.Args[0].Kind == kdl.KindBool && e.Args[0].Bool {
		a.d.warnf(n.Pos, "routes.route.cache", "route %q: a builtin-handler's answers are not cached", id)
	}
}

// cacheBuiltin maps builtin-handler "cache-purge" / "cache-stats" (kind
// is the normalized name) onto sentinel_cache_admin. Purging is an
// operation: it takes the admin-api's tokens of scope operate or admin,
// and is refused without one.
func (a *adapter) cacheBuiltin(id, kind string, n *kdl.Node) obj {
	h := obj{"handler": "sentinel_cache_admin", "route": id, "storage": typedObj(a.cacheStorage().storage, "", "")}
	if kind == "cache-stats" {
		h["action"] = cache.ActionStats
		return h
	}
	h["action"] = cache.ActionPurge
	tokens := a.purgeTokens()
	if len(tokens) == 0 {
		// The original's purge had no authentication; here it needs the
		// control plane's tokens. Without any, the endpoint refuses every
		// purge (the config still loads).
		a.d.warnf(n.Args[0].Pos, "routes.route.builtin-handler", "route %q: %q answers 403 to every request: purging needs an admin-api bearer token of scope operate or admin (admin-api { auth { token \"${ADMIN_API_TOKEN}\" scope=\"operate\" } })", id, n.Args[0].Str)
		return obj{"handler": "static_response", "status_code": "403", "headers": map[string][]string{
			"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"},
		}, "body": purgeRefused}
	}
	h["tokens"] = tokens
	return h
}

// purgeRefused is the answer of a purge endpoint without tokens.
const purgeRefused = `{"error":"cache purge is disabled: it needs an admin-api token of scope operate or admin","status":403}`

// purgeTokens are the SHA-256 of the admin-api's tokens whose scope is
// operate or admin (the default). Bad tokens are reported by the
// admin-api mapping, not here.
func (a *adapter) purgeTokens() []obj {
	if !a.apiEnabled() {
		return nil
	}
	var out []obj
	for _, au := range settings(a.adminAPI, "auth") {
		for _, c := range au.Children {
			if c.Name != "token" || len(c.Args) != 1 || c.Args[0].Kind != kdl.KindString || c.Args[0].Str == "" || !validToken(c.Args[0].Str) {
				continue
			}
			scope := "admin"
			for _, p := range c.Props() {
				if p.Name == "scope" && p.Value.Kind == kdl.KindString {
					scope = strings.ToLower(p.Value.Str)
				}
			}
			if scope != "operate" && scope != "admin" {
				continue
			}
			sum := sha256.Sum256([]byte(c.Args[0].Str))
			out = append(out, obj{"token_sha256": hex.EncodeToString(sum[:])})
		}
	}
	return out
}
