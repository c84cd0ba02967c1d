package cache

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// openRedisStore opens a redis store on srv, as a replica would.
func openRedisStore(t *testing.T, srv *storetest.Server, prefix string) *redisStore {
	t.Helper()
	s := Storage{Name: "r", Backend: BackendRedis, MaxSize: 1 << 20, Redis: &sharedstore.RedisConfig{URL: srv.URL(), Prefix: prefix, Timeout: caddyDuration(300 * time.Millisecond)}, RedisMaxEntryBytes: 4096}.withDefaults()
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	st, err := s.open(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*redisStore)
}

func redisClient(t *testing.T, srv *storetest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func freshEntry(body string) *Entry {
	return &Entry{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(body), Stored: time.Now(), Lifetime: time.Minute, SWR: 10 * time.Second, SIE: 2 * time.Minute}
}

// TestRedisStoreShared: two replicas on one Redis: what one stores the
// other finds; a purge (exact, wildcard) on one removes it for both; keys
// are hashed (no request header value reaches Redis), entries expire
// with their freshness and stale windows, oversized entries are not
// stored.
func TestRedisStoreShared(t *testing.T) {
	srv := storetest.Redis(t)
	a, b := openRedisStore(t, srv, "t1:"), openRedisStore(t, srv, "t1:")
	rc := redisClient(t, srv)
	ctx := context.Background()

	k1 := "GET http://h/api/x?id=1"
	k2 := "GET http://h/api/y\x00Authorization=Bearer s3cr3t-header-value"
	k3 := "GET http://h/static/z\x01Accept-Language=fr\x00"
	a.Set(k1, freshEntry("one"))
	a.Set(k2, freshEntry("two"))
	a.Set(k3, freshEntry("three"))
	if e := b.Get(k1); e == nil || string(e.Body) != "one" {
		t.Fatalf("replica b does not see a's entry: %+v", e)
	}
	if e := b.Get(k2); e == nil || string(e.Body) != "two" {
		t.Fatal("replica b does not see a's entry with a vary header")
	}
	if e := b.Get("GET http://h/api/y\x00Authorization=other"); e != nil {
		t.Fatal("another header value found the entry")
	}
	// TTL: freshness (60s) + the longer stale window (120s).
	name, _ := a.entryName(k1)
	if ttl := rc.PTTL(ctx, name).Val(); ttl < 170*time.Second || ttl > 180*time.Second {
		t.Errorf("ttl %s, want about 180s", ttl)
	}
	// Keys are hashed; header values are nowhere in the store.
	keys := rc.Keys(ctx, "*").Val()
	members := rc.ZRange(ctx, "t1:index", 0, -1).Val()
	var dump strings.Builder
	for _, k := range keys {
		dump.WriteString(k + "\n")
		if rc.Type(ctx, k).Val() == "string" {
			dump.WriteString(rc.Get(ctx, k).Val() + "\n")
		}
	}
	for _, m := range members {
		dump.WriteString(m + "\n")
	}
	if strings.Contains(dump.String(), "s3cr3t") || strings.Contains(dump.String(), "/api/x") && !strings.Contains(strings.Join(members, "\n"), "/api/x") {
		t.Fatalf("a header value reached Redis:\n%s", dump.String())
	}
	for _, k := range keys {
		if k != "t1:index" && (!strings.HasPrefix(k, "t1:e:") || len(k) != len("t1:e:")+64) {
			t.Errorf("key %q is not a hashed entry name", k)
		}
	}
	if len(members) != 3 {
		t.Errorf("index %q, want 3 members", members)
	}

	// Exact purge on b removes the path (all its query strings) for a.
	if n, err := b.Purge(purgeMatcher("/api/x", false)); n != 1 || err != nil {
		t.Fatalf("exact purge: %d, %v", n, err)
	}
	if a.Get(k1) != nil {
		t.Fatal("a still has the purged entry")
	}
	if a.Get(k2) == nil {
		t.Fatal("the exact purge removed another path")
	}
	// Wildcard purge on a.
	if n, err := a.Purge(purgeMatcher("/*", true)); n != 2 || err != nil {
		t.Fatalf("wildcard purge: %d, %v", n, err)
	}
	if b.Get(k2) != nil || b.Get(k3) != nil || rc.ZCard(ctx, "t1:index").Val() != 0 {
		t.Fatal("entries or index members left after the wildcard purge")
	}

	// Oversized: not stored, and an older entry under the key removed.
	a.Set(k1, freshEntry("small"))
	a.Set(k1, freshEntry(strings.Repeat("x", 4096+redisHeaderAllowance)))
	if b.Get(k1) != nil || a.redisStats().TooLarge != 1 {
		t.Fatalf("an oversized entry was stored (too_large %d)", a.redisStats().TooLarge)
	}
	// Delete reaches Redis; Usage counts live entries.
	a.Set(k1, freshEntry("again"))
	if u := b.Usage(); u.Entries != 1 {
		t.Errorf("usage %+v, want 1 entry", u)
	}
	b.Delete(k1)
	if a.Get(k1) != nil {
		t.Fatal("delete did not reach Redis")
	}
	// Another prefix is another cache.
	c := openRedisStore(t, srv, "t2:")
	a.Set(k1, freshEntry("a"))
	if c.Get(k1) != nil {
		t.Fatal("a store of another prefix found the entry")
	}
}

// TestRedisStoreDownFallsBack: Redis killed: entries are kept and served
// locally, at once (no wait for the timeout per request); a purge says
// it did not reach Redis. Redis back: the local entries are dropped and
// the shared store used again.
func TestRedisStoreDownFallsBack(t *testing.T) {
	srv := storetest.Redis(t)
	a := openRedisStore(t, srv, "fb:")
	a.Set("GET http://h/kept", freshEntry("shared"))
	srv.Stop()
	if e := a.Get("GET http://h/kept"); e != nil {
		t.Fatal("an entry of the dead server was found")
	}
	start := time.Now()
	a.Set("GET http://h/local", freshEntry("local"))
	for range 100 {
		if e := a.Get("GET http://h/local"); e == nil || string(e.Body) != "local" {
			t.Fatal("Redis down: the local fallback does not keep entries")
		}
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Errorf("101 operations took %s with Redis down: they waited for the server", el)
	}
	st := a.redisStats()
	if st.Up || st.Fallbacks < 100 || st.LocalEntries != 1 {
		t.Errorf("stats while down: %+v", st)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector("r", &shared{name: "r", store: a}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			metrics[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if metrics[MetricRedisUp] != 0 || metrics[MetricRedisFallbacks] < 100 {
		t.Errorf("metrics while down: %v", metrics)
	}
	a.Set("GET http://h/local2", freshEntry("local"))
	if n, err := a.Purge(purgeMatcher("/local2", false)); err == nil || n != 1 || !strings.Contains(err.Error(), "only this process's local entries") {
		t.Errorf("purge while down: %d, %v", n, err)
	}
	srv.Start()
	eventually(t, 5*time.Second, "redis used again", func() bool {
		a.Get("GET http://h/probe")
		return a.redisStats().Up
	})
	if a.local.Usage().Entries != 0 || a.Get("GET http://h/local") != nil {
		t.Fatal("local entries survived the return of Redis")
	}
	a.Set("GET http://h/back", freshEntry("back"))
	b := openRedisStore(t, srv, "fb:")
	if b.Get("GET http://h/back") == nil {
		t.Fatal("not shared again after Redis came back")
	}
}

// roundTrips counts the client's round trips to Redis for requests: a
// command or a pipeline (MULTI … EXEC) is one; a new connection's
// handshake is not counted.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
			// A new connection's handshake, not a request's.
		default:
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

// redisProxies loads one Caddy config with two servers, each with its
// own redis storage (two replicas: separate stores, separate clients) on
// srv, and returns their base URLs.
func redisProxies(t *testing.T, o *origin, srv *storetest.Server, prefix string) (string, string) {
	t.Helper()
	addrs := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	var servers []string
	for i, addr := range addrs {
		storage := fmt.Sprintf(`{"name":"%s-%d","backend":"redis","redis":{"url":%q,"prefix":%q,"timeout":"300ms"}}`, t.Name(), i, srv.URL(), prefix)
		servers = append(servers, fmt.Sprintf(`"s%d": {
		"listen": [%q],
		"automatic_https": {"disable": true},
		"routes": [
			{"match": [{"method": ["PURGE"]}], "handle": [{"handler": "sentinel_cache_admin", "action": "purge", "storage": %s, "tokens": [{"token": %q}]}], "terminal": true},
			{"match": [{"path": ["/_cache/stats"]}], "handle": [{"handler": "sentinel_cache_admin", "action": "stats", "storage": %s}], "terminal": true},
			{"handle": [
				{"handler": "sentinel_cache", "storage": %s, "status_header": "r%d"},
				{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
			]}
		]}`, i, addr, storage, purgeToken, storage, storage, i, o.addr))
	}
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	tc.InitServer(fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d", "config": {"persist": false}},
	"apps": {"http": {"servers": {%s}}}
}`, adminPort, strings.Join(servers, ",\n")), "json")
	return "http://" + addrs[0], "http://" + addrs[1]
}

// redisStoreOf is the redis store of the storage named name in the pool.
func redisStoreOf(t *testing.T, name string) *redisStore {
	t.Helper()
	var found *redisStore
	stores.Range(func(_, v any) bool {
		if s := v.(*shared); s.name == name {
			found, _ = s.store.(*redisStore)
		}
		return found == nil
	})
	if found == nil {
		t.Fatalf("no redis store %q", name)
	}
	return found
}

// TestRedisTwoProxies: two proxies on one Redis through the handler: a
// response cached by one is a hit on the other (one round trip); a purge
// on one removes it from both; Redis killed: requests are served (miss,
// then local hits), never a 5xx; Redis back: shared again.
func TestRedisTwoProxies(t *testing.T) {
	srv := storetest.Redis(t)
	o := startOrigin(t)
	p0, p1 := redisProxies(t, o, srv, "two:")
	rt := &roundTrips{}
	redisStoreOf(t, t.Name()+"-1").r.AddHook(rt)

	expectStatus(t, do(t, "GET", p0+"/big?v=1", "Host", "app.example"), "r0; fwd=uri-miss")
	before := rt.n.Load()
	hit := do(t, "GET", p1+"/big?v=1", "Host", "app.example")
	expectStatus(t, hit, "r1; hit; ttl=")
	if o.count("/big") != 1 || len(hit.body) != 4096 {
		t.Fatalf("proxy 1 did not serve proxy 0's entry: origin saw %d", o.count("/big"))
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("a hit took %d round trips to Redis, want 1", n)
	}
	before = rt.n.Load()
	expectStatus(t, do(t, "GET", p1+"/big?v=2", "Host", "app.example"), "r1; fwd=uri-miss")
	if n := rt.n.Load() - before; n != 2 {
		t.Errorf("a miss took %d round trips, want 2 (lookup, store)", n)
	}

	// Purge on proxy 1: gone from proxy 0 too.
	res := do(t, "PURGE", p1+"/big", "Host", "app.example", "Authorization", "Bearer "+purgeToken)
	if res.status != 200 || !strings.Contains(res.body, `"purged":2`) {
		t.Fatalf("purge: %d %s", res.status, res.body)
	}
	expectStatus(t, do(t, "GET", p0+"/big?v=1", "Host", "app.example"), "r0; fwd=uri-miss")
	expectStatus(t, do(t, "GET", p1+"/big?v=1", "Host", "app.example"), "r1; hit")

	// Stats report the backend.
	st := do(t, "GET", p0+"/_cache/stats")
	if !strings.Contains(st.body, `"backend":"redis"`) || !strings.Contains(st.body, `"redis":{"up":true`) {
		t.Errorf("stats: %s", st.body)
	}

	// Redis killed: served, never a 5xx; the second request is a local hit.
	srv.Stop()
	for i := range 3 {
		r := do(t, "GET", p0+"/big?v=3", "Host", "app.example")
		if r.status != 200 {
			t.Fatalf("request %d with Redis down: %d %s", i, r.status, r.body)
		}
		if i > 0 {
			expectStatus(t, r, "r0; hit")
		}
	}
	if r := do(t, "PURGE", p0+"/big", "Host", "app.example", "Authorization", "Bearer "+purgeToken); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "local entries") {
		t.Errorf("purge with Redis down: %d %s", r.status, r.body)
	}
	if st := do(t, "GET", p0+"/_cache/stats"); !strings.Contains(st.body, `"up":false`) {
		t.Errorf("stats with Redis down: %s", st.body)
	}

	// Redis back: shared again.
	srv.Start()
	eventually(t, 5*time.Second, "redis used again", func() bool {
		do(t, "GET", p0+"/probe", "Host", "app.example")
		return redisStoreOf(t, t.Name()+"-0").redisStats().Up
	})
	expectStatus(t, do(t, "GET", p0+"/big?v=4", "Host", "app.example"), "r0; fwd=uri-miss")
	expectStatus(t, do(t, "GET", p1+"/big?v=4", "Host", "app.example"), "r1; hit")
}

// TestRedisStorageErrors: bad Redis settings are refused with their
// reason, never with the password.
func TestRedisStorageErrors(t *testing.T) {
	for _, s := range []Storage{
		{Backend: BackendRedis, Redis: &sharedstore.RedisConfig{URL: "http://:hunter2@x"}},
		{Backend: BackendRedis, RedisMaxEntryBytes: -1},
	} {
		err := s.withDefaults().validate()
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: %v", s, err)
		}
	}
	// Defaults: the prefix, and the caller's config is not changed.
	rc := &sharedstore.RedisConfig{URL: "redis://" + net.JoinHostPort("127.0.0.1", "1")}
	s := Storage{Backend: BackendRedis, Redis: rc}.withDefaults()
	if s.Redis.Prefix != DefaultRedisPrefix || rc.Prefix != "" || s.RedisMaxEntryBytes != defaultRedisMaxEntry {
		t.Errorf("defaults: %+v %+v", s, s.Redis)
	}
	// The handler stores no body larger than the storage takes (so that
	// Cache-Status says detail=size for it).
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Storage: Storage{Name: t.Name(), Backend: BackendRedis, Redis: rc, RedisMaxEntryBytes: 2048}, MaxEntryBytes: 1 << 20}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	if h.MaxEntryBytes != 2048 {
		t.Errorf("max_entry_bytes %d, want the storage's 2048", h.MaxEntryBytes)
	}
}

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }

// eventually polls f until it holds, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
