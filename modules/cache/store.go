package cache

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
)

// Store keeps entries by key. Implementations are safe for concurrent
// use: memory, disk, hybrid, and redis (shared by a fleet of proxies).
type Store interface {
	// Get returns the entry under key, or nil.
	Get(key string) *Entry
	// Set stores e under key, evicting others when the store is full;
	// an entry larger than the store is not stored.
	Set(key string, e *Entry)
	// Delete removes the entry under key, if any.
	Delete(key string)
	// Purge removes every entry whose key match accepts and returns how
	// many it removed; an error means some entries may remain (a shared
	// store could not be reached).
	Purge(match func(key string) bool) (int, error)
	// Usage reports the number of entries, their bytes and the evictions
	// so far.
	Usage() Usage
	// Close releases the store's resources.
	Close() error
}

// Usage is a store's occupancy.
type Usage struct {
	Entries   int   `json:"entries"`
	Bytes     int64 `json:"bytes"`
	MaxBytes  int64 `json:"max_bytes"`
	Evictions int64 `json:"evictions"`
}

// The storage backends.
const (
	BackendMemory = "memory"
	BackendDisk   = "disk"
	BackendHybrid = "hybrid"
	BackendRedis  = "redis"
)

// Storage configures where a cache keeps its entries. Handlers with equal
// Storage configurations share one store, which outlives config reloads
// that keep it unchanged; the `sentinel_cache_admin` handler purges and
// reports the store of the same configuration.
type Storage struct {
	// Name identifies the storage in stats, metrics and logs. Default:
	// "default".
	Name string `json:"name,omitempty"`

	// Backend is where entries live: "memory" (the default), "disk" (one
	// file per entry under DiskPath), "hybrid" (memory in front of
	// disk: hits come from memory, entries evicted from memory stay on
	// disk) or "redis" (a Redis server that several proxies share; while
	// it cannot be reached, a local memory store of MaxSize).
	Backend string `json:"backend,omitempty"`

	// MaxSize is the memory store's size limit in bytes; the least
	// recently used entries are evicted beyond it. Default: 100 MiB.
	// With the redis backend, the size of the local store used while
	// Redis is unreachable.
	MaxSize int64 `json:"max_size,omitempty"`

	// DiskPath is the folder of the disk store (created 0700). Required
	// for the disk and hybrid backends.
	DiskPath string `json:"disk_path,omitempty"`

	// DiskShards is the number of sub-folders the entry files are spread
	// over. Default: 16.
	DiskShards int `json:"disk_shards,omitempty"`

	// DiskMaxSize is the disk store's size limit in bytes (least recently
	// used evicted beyond it). Default: 1 GiB.
	DiskMaxSize int64 `json:"disk_max_size,omitempty"`

	// Redis is the server of the redis backend (URL, key prefix, pool
	// size, timeout; internal/sharedstore, as the rate limiter's). Its
	// prefix defaults to `sentinel:cache:`: proxies with the same URL and
	// prefix share their entries.
	Redis *sharedstore.RedisConfig `json:"redis,omitempty"`

	// RedisMaxEntryBytes is the largest response body stored on Redis
	// (plus up to 64 KiB of headers); the handlers' max_entry_bytes is
	// lowered to it. Default: 1 MiB.
	RedisMaxEntryBytes int64 `json:"redis_max_entry_bytes,omitempty"`
}

// The storage defaults.
const (
	defaultStorageName = "default"
	defaultMaxSize     = 100 << 20
	defaultDiskShards  = 16
	defaultDiskMaxSize = 1 << 30
)

// withDefaults returns s with the defaults filled in.
func (s Storage) withDefaults() Storage {
	if s.Name == "" {
		s.Name = defaultStorageName
	}
	if s.Backend == "" {
		s.Backend = BackendMemory
	}
	if s.MaxSize == 0 {
		s.MaxSize = defaultMaxSize
	}
	if s.DiskShards == 0 {
		s.DiskShards = defaultDiskShards
	}
	if s.DiskMaxSize == 0 {
		s.DiskMaxSize = defaultDiskMaxSize
	}
	if s.Backend == BackendRedis {
		r := sharedstore.RedisConfig{}
		if s.Redis != nil {
			r = *s.Redis // not the caller's
		}
		if r.Prefix == "" {
			r.Prefix = DefaultRedisPrefix
		}
		s.Redis = &r
		if s.RedisMaxEntryBytes == 0 {
			s.RedisMaxEntryBytes = defaultRedisMaxEntry
		}
	}
	return s
}

// validate checks a storage configuration (with defaults).
func (s Storage) validate() error {
	switch s.Backend {
	case BackendMemory:
	case BackendDisk, BackendHybrid:
		if s.DiskPath == "" {
			return fmt.Errorf("storage %q: backend %q needs disk_path", s.Name, s.Backend)
		}
	case BackendRedis:
		if err := s.Redis.Validate(); err != nil {
			return fmt.Errorf("storage %q: %w", s.Name, err)
		}
	default:
		return fmt.Errorf("storage %q: unknown backend %q (memory, disk, hybrid, redis)", s.Name, s.Backend)
	}
	if s.MaxSize < 0 || s.DiskMaxSize < 0 || s.RedisMaxEntryBytes < 0 {
		return fmt.Errorf("storage %q: sizes may not be negative", s.Name)
	}
	if s.DiskShards < 1 || s.DiskShards > 256 {
		return fmt.Errorf("storage %q: disk_shards %d is out of range 1..256", s.Name, s.DiskShards)
	}
	return nil
}

// poolKey identifies a storage configuration in the pool.
func (s Storage) poolKey() string {
	b, _ := json.Marshal(s) // a struct of plain fields encodes
	return string(b)
}

// open creates the store of the configuration.
func (s Storage) open(logger *zap.Logger) (Store, error) {
	switch s.Backend {
	case BackendRedis:
		return newRedisStore(s, logger)
	case BackendDisk:
		return newDiskStore(s.DiskPath, s.DiskShards, s.DiskMaxSize)
	case BackendHybrid:
		d, err := newDiskStore(s.DiskPath, s.DiskShards, s.DiskMaxSize)
		if err != nil {
			return nil, err
		}
		return newHybridStore(newMemoryStore(s.MaxSize), d), nil
	default:
		return newMemoryStore(s.MaxSize), nil
	}
}

// stores holds the process's stores, shared by the handlers of equal
// storage configurations and kept while any config uses them: a reload
// that keeps the storage keeps the cached entries (Caddy's idiom for
// state that outlives a config, as reverse_proxy's hosts).
var stores = caddy.NewUsagePool()

// shared is a store in the pool with what the handlers using it share:
// the counters and the requests in flight (for coalescing).
type shared struct {
	name  string
	store Store
	stats counters

	mu      sync.Mutex
	flights map[string]*flight
}

// Destruct closes the store when the last config using it is gone.
func (s *shared) Destruct() error { return s.store.Close() }

// acquire returns the shared store of the configuration s (with
// defaults); release it with stores.Delete(s.poolKey()).
func acquire(s Storage, logger *zap.Logger) (*shared, error) {
	v, _, err := stores.LoadOrNew(s.poolKey(), func() (caddy.Destructor, error) {
		st, err := s.open(logger.With(zap.String("storage", s.Name), zap.String("backend", s.Backend)))
		if err != nil {
			return nil, err
		}
		return &shared{name: s.Name, store: st, flights: map[string]*flight{}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening cache storage %q: %w", s.Name, err)
	}
	return v.(*shared), nil
}

// flight is a request to the upstream for a key that other requests for
// the same key wait on (request coalescing) instead of going upstream
// too.
type flight struct {
	done chan struct{}
	once sync.Once
}

// join returns the flight in progress for key, or starts one: leader is
// true for the request that goes upstream, which must call land.
func (s *shared) join(key string) (f *flight, leader bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flights[key]; f != nil {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	s.flights[key] = f
	return f, true
}

// land ends the leader's flight for key, releasing the waiters. It may
// be called more than once (the leader lands as soon as it knows its
// response will not be stored, and again when it ends).
func (s *shared) land(key string, f *flight) {
	f.once.Do(func() {
		s.mu.Lock()
		if s.flights[key] == f {
			delete(s.flights, key)
		}
		s.mu.Unlock()
		close(f.done)
	})
}

// wait waits for the flight to land, up to timeout; false on timeout.
func (f *flight) wait(timeout time.Duration, cancel <-chan struct{}) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
		return false
	case <-cancel:
		return false
	}
}

// counters are a storage's request counters.
type counters struct {
	hits, misses, stores, stale, revalidated, coalesced, purged, bypass atomic.Int64
}

// Stats is what the `cache-stats` endpoint reports of a storage.
type Stats struct {
	Storage     string  `json:"storage"`
	Backend     string  `json:"backend"`
	Hits        int64   `json:"hits"`
	Misses      int64   `json:"misses"`
	Stores      int64   `json:"stores"`
	Stale       int64   `json:"stale_served"`
	Revalidated int64   `json:"revalidated"`
	Coalesced   int64   `json:"coalesced"`
	Purged      int64   `json:"purged"`
	Bypass      int64   `json:"bypass"`
	HitRatio    float64 `json:"hit_ratio"`
	Usage
	// Redis is the state of a redis backend.
	Redis *RedisStats `json:"redis,omitempty"`
}

// snapshot reads the counters and the store's usage.
func (s *shared) snapshot(backend string) Stats {
	st := Stats{
		Storage: s.name, Backend: backend,
		Hits: s.stats.hits.Load(), Misses: s.stats.misses.Load(), Stores: s.stats.stores.Load(),
		Stale: s.stats.stale.Load(), Revalidated: s.stats.revalidated.Load(), Coalesced: s.stats.coalesced.Load(),
		Purged: s.stats.purged.Load(), Bypass: s.stats.bypass.Load(),
		Usage: s.store.Usage(),
	}
	if rs, ok := s.store.(*redisStore); ok {
		st.Redis = rs.redisStats()
	}
	if total := st.Hits + st.Misses; total > 0 {
		st.HitRatio = float64(st.Hits) / float64(total)
	}
	return st
}
