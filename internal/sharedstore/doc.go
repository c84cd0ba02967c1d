// Package sharedstore connects Sentinel's modules to a store that several
// proxy processes share: Redis or memcached. It is the one place that
// knows how to read a store's connection settings (URL, key prefix,
// connection pool size, timeout), open a client, and tell whether the
// store can be used right now.
//
// The API is small on purpose, so that the rate limiter, the response
// cache and tenant data can use it alike:
//
//   - RedisConfig and MemcachedConfig are the JSON settings a module
//     embeds; their Open returns a client (*Redis or *Memcached).
//   - Redis.Do and Memcached.Do run one operation against the store,
//     bounded by the configured timeout. A Health tracker decides
//     whether to try at all: after a failure the store is considered down
//     for a short backoff, during which Do fails at once with
//     ErrUnavailable (no request waits for a timeout); then one call
//     probes it, and its success brings the store back.
//   - The caller decides what to do when Do fails: serve from local state
//     (the "*-fallback-local" settings of the original) or fail.
//
// A client holds a connection pool; Close it when the module is cleaned
// up. The key prefix is applied by Key: the store's keys are never built
// elsewhere.
package sharedstore
