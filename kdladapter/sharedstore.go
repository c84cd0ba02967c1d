package kdladapter

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// The settings that reach a shared store (Redis, memcached), declared once
// for every block that has them: the rate-limit filter and the cache's
// storage.

// storeNotes are the notes of a block's four settings of one store, in
// the order url, prefix, pool-size, timeout-ms.
type storeNotes [4]string

// storeConn points at the connection settings of a store's config.
type storeConn struct {
	url, prefix *string
	poolSize    *int
	timeout     *caddy.Duration
}

// storeSettings declares <store>-url, -prefix, -pool-size and
// -timeout-ms, read into the store config cfg points to (created by the
// first of them); conn gives its connection settings.
func storeSettings[T, C any](store string, cfg func(*T) **C, conn func(*C) storeConn, notes storeNotes) []field[T] {
	one := func(name, note string, read func(a *adapter, n *kdl.Node, c storeConn)) field[T] {
		return field[T]{key: h(store+"-"+name, note),
			ptr: func(t *T) any { return cfg(t) },
			read: func(a *adapter, n *kdl.Node, t *T) {
				p := cfg(t)
				if *p == nil {
					*p = new(C)
				}
				read(a, n, conn(*p))
			}}
	}
	return []field[T]{
		one("url", notes[0], func(a *adapter, n *kdl.Node, c storeConn) { *c.url, _ = a.str(n) }),
		one("prefix", notes[1], func(a *adapter, n *kdl.Node, c storeConn) { *c.prefix, _ = a.str(n) }),
		one("pool-size", notes[2], func(a *adapter, n *kdl.Node, c storeConn) {
			if i, ok := a.integer(n, 1, 10000); ok {
				*c.poolSize = int(i)
			}
		}),
		one("timeout-ms", notes[3], func(a *adapter, n *kdl.Node, c storeConn) { *c.timeout, _ = a.millisDuration(n) }),
	}
}

// redisSettings declares the redis-* connection settings.
func redisSettings[T any](cfg func(*T) **sharedstore.RedisConfig, notes storeNotes) []field[T] {
	return storeSettings("redis", cfg, func(c *sharedstore.RedisConfig) storeConn {
		return storeConn{&c.URL, &c.Prefix, &c.PoolSize, &c.Timeout}
	}, notes)
}

// memcachedSettings declares the memcached-* connection settings.
func memcachedSettings[T any](cfg func(*T) **sharedstore.MemcachedConfig, notes storeNotes) []field[T] {
	return storeSettings("memcached", cfg, func(c *sharedstore.MemcachedConfig) storeConn {
		return storeConn{&c.URL, &c.Prefix, &c.PoolSize, &c.Timeout}
	}, notes)
}
