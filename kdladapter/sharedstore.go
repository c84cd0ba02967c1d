package kdladapter

import (
	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// The settings that reach a shared store (Redis, memcached), declared once
// for every block that has them: the rate-limit filter and the cache's
// storage.

// storeNotes are the notes of a block's four settings of one store, in
// the order url, prefix, pool-size, timeout-ms.
type storeNotes [4]string

// redisSettings declares redis-url, redis-prefix, redis-pool-size and
// redis-timeout-ms, read into the *sharedstore.RedisConfig cfg points to
// (created by the first of them).
func redisSettings[T any](cfg func(*T) **sharedstore.RedisConfig, notes storeNotes) []field[T] {
	one := func(name, note string, read func(a *adapter, n *kdl.Node, c *sharedstore.RedisConfig)) field[T] {
		return field[T]{key: h(name, note),
			ptr: func(t *T) any { return cfg(t) },
			read: func(a *adapter, n *kdl.Node, t *T) {
				p := cfg(t)
				if *p == nil {
					*p = &sharedstore.RedisConfig{}
				}
				read(a, n, *p)
			}}
	}
	return []field[T]{
		one("redis-url", notes[0], func(a *adapter, n *kdl.Node, c *sharedstore.RedisConfig) { c.URL, _ = a.str(n) }),
		one("redis-prefix", notes[1], func(a *adapter, n *kdl.Node, c *sharedstore.RedisConfig) { c.Prefix, _ = a.str(n) }),
		one("redis-pool-size", notes[2], func(a *adapter, n *kdl.Node, c *sharedstore.RedisConfig) {
			if i, ok := a.integer(n, 1, 10000); ok {
				c.PoolSize = int(i)
			}
		}),
		one("redis-timeout-ms", notes[3], func(a *adapter, n *kdl.Node, c *sharedstore.RedisConfig) { c.Timeout, _ = a.millisDuration(n) }),
	}
}

// memcachedSettings declares memcached-url, memcached-prefix,
// memcached-pool-size and memcached-timeout-ms, read into the
// *sharedstore.MemcachedConfig cfg points to.
func memcachedSettings[T any](cfg func(*T) **sharedstore.MemcachedConfig, notes storeNotes) []field[T] {
	one := func(name, note string, read func(a *adapter, n *kdl.Node, c *sharedstore.MemcachedConfig)) field[T] {
		return field[T]{key: h(name, note),
			ptr: func(t *T) any { return cfg(t) },
			read: func(a *adapter, n *kdl.Node, t *T) {
				p := cfg(t)
				if *p == nil {
					*p = &sharedstore.MemcachedConfig{}
				}
				read(a, n, *p)
			}}
	}
	return []field[T]{
		one("memcached-url", notes[0], func(a *adapter, n *kdl.Node, c *sharedstore.MemcachedConfig) { c.URL, _ = a.str(n) }),
		one("memcached-prefix", notes[1], func(a *adapter, n *kdl.Node, c *sharedstore.MemcachedConfig) { c.Prefix, _ = a.str(n) }),
		one("memcached-pool-size", notes[2], func(a *adapter, n *kdl.Node, c *sharedstore.MemcachedConfig) {
			if i, ok := a.integer(n, 1, 10000); ok {
				c.PoolSize = int(i)
			}
		}),
		one("memcached-timeout-ms", notes[3], func(a *adapter, n *kdl.Node, c *sharedstore.MemcachedConfig) { c.Timeout, _ = a.millisDuration(n) }),
	}
}
