package sharedstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore/storetest"
)

func TestHealthBackoffAndProbe(t *testing.T) {
	var changes []bool
	h := Health{Backoff: time.Second, OnChange: func(up bool, err error) { changes = append(changes, up) }}
	now := time.Unix(100, 0)
	if !h.Allow(now) || !h.Up() {
		t.Fatal("a new store is not usable")
	}
	h.Report(now, errors.New("refused"))
	if h.Allow(now.Add(500*time.Millisecond)) || h.Up() {
		t.Fatal("used during the backoff")
	}
	later := now.Add(1100 * time.Millisecond)
	if !h.Allow(later) {
		t.Fatal("no probe after the backoff")
	}
	if h.Allow(later) {
		t.Fatal("two probes at once")
	}
	h.Report(later, errors.New("still refused"))
	if h.Allow(later.Add(500 * time.Millisecond)) {
		t.Fatal("a failed probe did not start a new backoff")
	}
	again := later.Add(1100 * time.Millisecond)
	if !h.Allow(again) {
		t.Fatal("no second probe")
	}
	h.Report(again, nil)
	if !h.Allow(again) || !h.Allow(again) || !h.Up() {
		t.Fatal("not usable after a successful probe")
	}
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("transitions %v, want [down up]", changes)
	}
	var zero Health
	zero.Report(now, errors.New("x"))
	if zero.Allow(now.Add(DefaultBackoff - time.Millisecond)) {
		t.Fatal("zero Health: no default backoff")
	}
}

func TestRedisConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		c    RedisConfig
		want string
	}{
		{RedisConfig{URL: "http://x"}, "redis url"},
		{RedisConfig{URL: "redis://user:hunter2@[::1"}, "redis url"},
		{RedisConfig{PoolSize: -1}, "pool_size -1"},
		{RedisConfig{Timeout: -1}, "timeout"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: got %v, want %q without the password", tc.c, err, tc.want)
		}
		if _, err := tc.c.Open(); err == nil {
			t.Errorf("%+v: opened", tc.c)
		}
	}
	if err := (&RedisConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestMemcachedConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		c    MemcachedConfig
		want string
	}{
		{MemcachedConfig{URL: "redis://x:1"}, "must start with memcache://"},
		{MemcachedConfig{URL: "memcache://a:1,b"}, "server 2 is not host:port"},
		{MemcachedConfig{PoolSize: -1}, "pool_size -1"},
		{MemcachedConfig{Timeout: -1}, "timeout"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.c, err, tc.want)
		}
		if _, err := tc.c.Open(); err == nil {
			t.Errorf("%+v: opened", tc.c)
		}
	}
	if err := (&MemcachedConfig{URL: "memcached://a:1, b:2/"}).Validate(); err != nil {
		t.Errorf("two servers: %v", err)
	}
}

// TestRedisDo: answers (a missing key, an error reply) keep the store
// up; a dead server takes it down, and Do then fails at once.
func TestRedisDo(t *testing.T) {
	srv := storetest.Redis(t)
	r, err := (&RedisConfig{URL: srv.URL(), Prefix: "p:", Timeout: 200 * 1e6}).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if r.Key("k") != "p:k" {
		t.Fatal(r.Key("k"))
	}
	err = r.Do(ctx, func(ctx context.Context, c *redis.Client) error { return c.Get(ctx, r.Key("missing")).Err() })
	if !errors.Is(err, redis.Nil) || !r.Health.Up() {
		t.Fatalf("missing key: %v, up %v", err, r.Health.Up())
	}
	err = r.Do(ctx, func(ctx context.Context, c *redis.Client) error { return c.Do(ctx, "NOSUCHCOMMAND").Err() })
	if err == nil || !r.Health.Up() {
		t.Fatalf("error reply: %v, up %v", err, r.Health.Up())
	}
	srv.Stop()
	if err := r.Do(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err == nil || r.Health.Up() {
		t.Fatalf("dead server: %v, up %v", err, r.Health.Up())
	}
	start := time.Now()
	if err := r.Do(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); !errors.Is(err, ErrUnavailable) || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("during the backoff: %v after %s", err, time.Since(start))
	}
}

func TestMemcachedDo(t *testing.T) {
	srv := storetest.Memcached(t)
	m, err := (&MemcachedConfig{URL: srv.URL(), Prefix: "p:"}).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Do(func(c *memcache.Client) error { _, err := c.Get(m.Key("missing")); return err }); !errors.Is(err, memcache.ErrCacheMiss) || !m.Health.Up() {
		t.Fatalf("miss: %v", err)
	}
	srv.Stop()
	if err := m.Do(func(c *memcache.Client) error { _, err := c.Get(m.Key("x")); return err }); err == nil || m.Health.Up() {
		t.Fatalf("dead server: %v", err)
	}
	if err := m.Do(func(c *memcache.Client) error { return nil }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("during the backoff: %v", err)
	}
}
