package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/cespare/xxhash/v2"
	"go.uber.org/zap"
)

// zones holds the buckets of the zones in use, so that the handlers of a
// zone share them and a config reload that keeps a zone keeps its
// buckets. It is Caddy's mechanism for state shared by module instances
// (reverse_proxy keeps its upstreams' state the same way).
var zones = caddy.NewUsagePool()

// zone is the buckets of a limit: in memory (the local backend, and the
// fallback of a shared one) and on a shared store.
type zone struct {
	name      string
	storeName string
	params    params
	local     *localStore
	redis     *redisBackend
	memcached *memcachedBackend
	closer    func() error
	fallback  bool
	counters  zoneCounters
}

// Destruct closes the shared store's connections when the last handler
// of the zone is cleaned up.
func (z *zone) Destruct() error {
	if z.closer != nil {
		return z.closer()
	}
	return nil
}

// acquireZone returns the zone of h (shared with the handlers of the same
// zone and settings) and its key in zones.
func acquireZone(h *Handler) (*zone, string, error) {
	poolKey := h.fingerprint()
	if h.Zone == "" {
		// Without a name, every handler has its own buckets.
		poolKey = fmt.Sprintf("%p", h)
	}
	v, _, err := zones.LoadOrNew(poolKey, func() (caddy.Destructor, error) { return newZone(h) })
	if err != nil {
		return nil, "", err
	}
	return v.(*zone), poolKey, nil
}

func newZone(h *Handler) (*zone, error) {
	z := &zone{name: h.Zone, storeName: storeZoneName(h.Zone), params: h.params, local: newLocalStore(h.MaxKeys), fallback: h.fallback}
	logger := h.logger.With(zap.String("zone", h.Zone), zap.String("backend", h.Backend))
	onChange := func(up bool, err error) {
		switch {
		case up:
			logger.Info("rate limit store is back; using it again")
		case z.fallback:
			logger.Warn("rate limit store unavailable; limiting with this process's buckets meanwhile", zap.Error(err))
		default:
			logger.Error("rate limit store unavailable; requests fail with 503 meanwhile", zap.Error(err))
		}
	}
	switch h.Backend {
	case "redis":
		store, err := h.Redis.Open()
		if err != nil {
			return nil, err
		}
		store.Health.OnChange = onChange
		z.redis, z.closer = newRedisBackend(store, h.params), store.Close
	case "memcached":
		store, err := h.Memcached.Open()
		if err != nil {
			return nil, err
		}
		store.Health.OnChange = onChange
		z.memcached = newMemcachedBackend(store, h.MaxRPS, time.Duration(h.MemcachedTTL), time.Duration(h.params.maxDelay))
		z.closer = store.Close
	}
	return z, nil
}

// take decides one request of bucket k at now: on the shared store when
// there is one and it answers, else in memory (or an error, without
// fallback).
func (z *zone) take(ctx context.Context, k key, now time.Time) (decision, error) {
	if z.redis == nil && z.memcached == nil {
		return z.local.take(z.params, k, now.UnixNano()), nil
	}
	var d decision
	var err error
	if z.redis != nil {
		d, err = z.redis.take(ctx, z.storeKey(k))
	} else {
		d, err = z.memcached.take(z.storeKey(k), now)
	}
	if err == nil {
		return d, nil
	}
	z.counters.fallback.Add(1)
	if !z.fallback {
		return decision{}, err
	}
	return z.local.take(z.params, k, now.UnixNano()), nil
}

// storeKey is the bucket's name on a shared store: the zone and a hash
// of the key (bounded, no spaces for memcached, and no client addresses
// or header values in the store).
func (z *zone) storeKey(k key) string {
	d := xxhash.New()
	_, _ = d.WriteString(k.a)
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(k.b)
	return z.storeName + ":" + strconv.FormatUint(d.Sum64(), 36)
}

// storeZoneName is the zone's name as it appears in store keys: without
// spaces or control characters (memcached keys), and short.
func storeZoneName(zone string) string {
	if len(zone) > 64 {
		return "z" + strconv.FormatUint(xxhash.Sum64String(zone), 36)
	}
	b := []byte(zone)
	for i, c := range b {
		if c <= ' ' || c == 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}
