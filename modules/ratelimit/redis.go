package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
)

// gcraScript is GCRA in one atomic step on the Redis server, on the
// server's clock (so that proxies whose clocks differ still share one
// limit). KEYS[1] holds the TAT in microseconds; ARGV are T, τ and the
// maximum delay in microseconds. It returns {admitted (0/1), remaining,
// reset µs, wait or retry-after µs}. go-redis runs it with EVALSHA
// (EVAL once when the server does not know it yet): one round trip.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local maxDelay = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nextTat = tat + T
local ahead = nextTat - now
if ahead <= tol + maxDelay then
  redis.call('SET', KEYS[1], string.format('%d', nextTat), 'PX', math.floor(ahead / 1000) + 1)
  local wait = 0
  local remaining = 0
  if ahead > tol then wait = ahead - tol else remaining = math.floor((tol - ahead) / T) end
  return {1, remaining, ahead, wait}
end
return {0, 0, tat - now, ahead - tol}
`)

// redisBackend runs the limit on a Redis server.
type redisBackend struct {
	store *sharedstore.Redis
	args  [3]int64 // T, τ, D in µs
}

func newRedisBackend(store *sharedstore.Redis, p params) *redisBackend {
	us := func(ns int64) int64 { return max(ns/1000, 1) }
	return &redisBackend{store: store, args: [3]int64{us(p.interval), us(p.tol), p.maxDelay / 1000}}
}

// take decides one request of the bucket named name.
func (b *redisBackend) take(ctx context.Context, name string) (decision, error) {
	var res []int64
	err := b.store.Do(ctx, func(ctx context.Context, c *redis.Client) error {
		var err error
		res, err = gcraScript.Run(ctx, c, []string{b.store.Key(name)}, b.args[0], b.args[1], b.args[2]).Int64Slice()
		return err
	})
	if err != nil {
		return decision{}, err
	}
	if len(res) != 4 {
		return decision{}, fmt.Errorf("rate limit script returned %d values, want 4", len(res))
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	if res[0] == 1 {
		return decision{allowed: true, remaining: res[1], reset: us(res[2]), wait: us(res[3])}, nil
	}
	return decision{reset: us(res[2]), retryAfter: us(res[3])}, nil
}
