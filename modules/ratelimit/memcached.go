package ratelimit

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
)

// memcachedBackend counts requests in one-second windows on memcached:
// the key of a bucket's window is created with `add` and counted with
// `incr`, both atomic on the server, so that every proxy sees one count:
// one round trip per request (two for the first request of a window). A
// window admits max-rps requests (rounded up); windows follow the
// proxies' clocks, which should agree (NTP).
type memcachedBackend struct {
	store *sharedstore.Memcached
	limit uint64
	ttl   int32 // seconds a window's key lives
	delay time.Duration
}

func newMemcachedBackend(store *sharedstore.Memcached, rps float64, ttl, maxDelay time.Duration) *memcachedBackend {
	secs := int32(math.Ceil(ttl.Seconds()))
	if secs < 1 {
		secs = 2
	}
	return &memcachedBackend{store: store, limit: uint64(math.Ceil(rps)), ttl: secs, delay: maxDelay}
}

// take decides one request of the bucket named name at now.
func (b *memcachedBackend) take(name string, now time.Time) (decision, error) {
	win := now.Unix()
	n, err := b.count(name, win)
	if err != nil {
		return decision{}, err
	}
	untilNext := time.Unix(win+1, 0).Sub(now)
	if n <= b.limit {
		return decision{allowed: true, remaining: int64(b.limit - n), reset: untilNext}, nil
	}
	if untilNext <= b.delay {
		// Delay mode: take a place in the next window.
		n, err := b.count(name, win+1)
		if err != nil {
			return decision{}, err
		}
		if n <= b.limit {
			return decision{allowed: true, wait: untilNext, reset: untilNext + time.Second}, nil
		}
		return decision{reset: untilNext + time.Second, retryAfter: untilNext + time.Second}, nil
	}
	return decision{reset: untilNext, retryAfter: untilNext}, nil
}

// count adds one to the bucket's window win and returns the new count.
func (b *memcachedBackend) count(name string, win int64) (uint64, error) {
	key := b.store.Key(name + ":" + strconv.FormatInt(win, 10))
	var n uint64
	err := b.store.Do(func(c *memcache.Client) error {
		var err error
		n, err = c.Increment(key, 1)
		if !errors.Is(err, memcache.ErrCacheMiss) {
			return err
		}
		err = c.Add(&memcache.Item{Key: key, Value: []byte("1"), Expiration: b.ttl})
		if err == nil {
			n = 1
			return nil
		}
		if errors.Is(err, memcache.ErrNotStored) { // another proxy added it first
			n, err = c.Increment(key, 1)
		}
		return err
	})
	return n, err
}
