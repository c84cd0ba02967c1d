package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
)

// redisStore keeps the entries on a Redis server that several proxies
// share: an entry stored by one is a hit on the others, and a purge on
// one removes it for all.
//
// An entry is one Redis string, `<prefix>e:<sha256 of the key>` (the
// key itself, which may hold request header values, is never a Redis
// key name), holding the entry encoded by encodeEntry with the key's
// URL part (no header values). It expires with the entry's freshness
// lifetime plus its stale windows. A sorted set,
// `<prefix>index`, lists the entries ("<hash> <URL part>", scored by
// their expiry) so that a purge, exact or by pattern, finds them; Set
// trims its expired members.
//
// A lookup is one round trip (GET); a store is one (MULTI SET ZADD
// ZREMRANGEBYSCORE EXEC). While the server cannot be reached (sharedstore
// Health: refused, or no answer within the timeout, then skipped for a
// second), entries are kept in a local memory store instead: requests
// are served, never failed, because Redis is down. When the server is
// back, the local entries are dropped (a purge on another proxy may have
// removed them meanwhile) and Redis is used again.
type redisStore struct {
	r        *sharedstore.Redis
	local    *memoryStore
	maxEntry int64
	index    string
	logger   *zap.Logger

	fallbacks atomic.Int64
	tooLarge  atomic.Int64
}

// The Redis store's defaults.
const (
	// DefaultRedisPrefix is the prefix of the cache's keys on Redis.
	DefaultRedisPrefix = "sentinel:cache:"
	// defaultRedisMaxEntry bounds an entry's body on Redis.
	defaultRedisMaxEntry = 1 << 20
	// redisHeaderAllowance is what an entry's encoding may add to its
	// body (headers, metadata) and still be stored.
	redisHeaderAllowance = 64 << 10
	// purgeBatch is the number of index members read (ZSCAN COUNT) and
	// deleted per round trip of a purge.
	purgeBatch = 500
)

// newRedisStore opens the client (it connects on first use).
func newRedisStore(s Storage, logger *zap.Logger) (*redisStore, error) {
	r, err := s.Redis.Open()
	if err != nil {
		return nil, err
	}
	st := &redisStore{
		r:        r,
		local:    newMemoryStore(s.MaxSize),
		maxEntry: s.RedisMaxEntryBytes + redisHeaderAllowance,
		index:    r.Key("index"),
		logger:   logger,
	}
	r.Health.OnChange = func(up bool, err error) {
		if up {
			n, _ := st.local.Purge(func(string) bool { return true })
			st.logger.Info("cache redis store is back: shared entries used again", zap.Int("local_entries_dropped", n))
			return
		}
		st.logger.Warn("cache redis store unavailable: caching in this process's memory meanwhile", zap.Error(err))
	}
	return st, nil
}

// entryName is the Redis key of key's entry.
func (s *redisStore) entryName(key string) (name, hash string) {
	sum := sha256.Sum256([]byte(key))
	hash = hex.EncodeToString(sum[:])
	return s.r.Key("e:" + hash), hash
}

// urlPart is the key without the request header values (configured vary
// headers and a variant's values): what is written to Redis in clear,
// enough for purges, which match the target.
func urlPart(key string) string {
	if i := strings.IndexAny(key, "\x00\x01"); i >= 0 {
		return key[:i]
	}
	return key
}

// down reports whether err means the server could not be used (rather
// than an answer, such as a missing key or an error reply).
func (s *redisStore) down(err error) bool {
	return errors.Is(err, sharedstore.ErrUnavailable) || !s.r.Health.Up()
}

// Get implements Store.
func (s *redisStore) Get(key string) *Entry {
	name, _ := s.entryName(key)
	var b []byte
	err := s.r.Do(context.Background(), func(ctx context.Context, c *redis.Client) error {
		var err error
		b, err = c.Get(ctx, name).Bytes()
		return err
	})
	switch {
	case err == nil:
		k, e, err := decodeEntry(b)
		if err != nil || k != urlPart(key) {
			return nil
		}
		return e
	case errors.Is(err, redis.Nil):
		return nil
	case s.down(err):
		s.fallbacks.Add(1)
		return s.local.Get(key)
	default:
		s.logger.Debug("cache redis get", zap.Error(err))
		return nil
	}
}

// ttl is how long the entry is kept: its freshness left plus the longer
// of its stale windows, at least a second.
func redisTTL(e *Entry, now time.Time) time.Duration {
	return max(e.ttl(now)+max(e.SWR, e.SIE), time.Second)
}

// Set implements Store.
func (s *redisStore) Set(key string, e *Entry) {
	b := encodeEntry(urlPart(key), e)
	if int64(len(b)) > s.maxEntry {
		s.tooLarge.Add(1)
		s.Delete(key)
		return
	}
	now := time.Now()
	ttl := redisTTL(e, now)
	name, hash := s.entryName(key)
	member := hash + " " + urlPart(key)
	err := s.r.Do(context.Background(), func(ctx context.Context, c *redis.Client) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, name, b, ttl)
			p.ZAdd(ctx, s.index, redis.Z{Score: float64(now.Add(ttl).Unix() + 1), Member: member})
			p.ZRemRangeByScore(ctx, s.index, "-inf", "("+strconv.FormatInt(now.Unix(), 10))
			return nil
		})
		return err
	})
	if err != nil && s.down(err) {
		s.fallbacks.Add(1)
		s.local.Set(key, e)
	}
}

// Delete implements Store.
func (s *redisStore) Delete(key string) {
	s.local.Delete(key)
	name, hash := s.entryName(key)
	err := s.r.Do(context.Background(), func(ctx context.Context, c *redis.Client) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, name)
			p.ZRem(ctx, s.index, hash+" "+urlPart(key))
			return nil
		})
		return err
	})
	if err != nil && s.down(err) {
		s.fallbacks.Add(1)
	}
}

// Purge implements Store: the entries on Redis whose key match accepts
// (it sees the key's URL part, which is what purges match) and those of
// the local fallback. When Redis cannot be reached, the local entries
// are purged and the error says that the shared ones were not.
func (s *redisStore) Purge(match func(string) bool) (int, error) {
	n, _ := s.local.Purge(match)
	var cursor uint64
	seen := map[string]bool{}
	for {
		var page []string
		err := s.r.Do(context.Background(), func(ctx context.Context, c *redis.Client) error {
			var err error
			page, cursor, err = c.ZScan(ctx, s.index, cursor, "", purgeBatch).Result()
			return err
		})
		if err != nil {
			return n, redisError(err)
		}
		var members []string
		for i := 0; i < len(page); i += 2 { // member, score
			m := page[i]
			_, url, ok := strings.Cut(m, " ")
			if !ok || seen[m] || !match(url) {
				continue
			}
			seen[m] = true
			members = append(members, m)
		}
		if len(members) > 0 {
			removed, err := s.remove(members)
			n += removed
			if err != nil {
				return n, redisError(err)
			}
		}
		if cursor == 0 {
			return n, nil
		}
	}
}

// remove deletes the entries of index members and the members, in one
// round trip; it returns how many entries existed.
func (s *redisStore) remove(members []string) (int, error) {
	var del *redis.IntCmd
	err := s.r.Do(context.Background(), func(ctx context.Context, c *redis.Client) error {
		names := make([]string, len(members))
		zm := make([]any, len(members))
		for i, m := range members {
			hash, _, _ := strings.Cut(m, " ")
			names[i], zm[i] = s.r.Key("e:"+hash), m
		}
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			del = p.Del(ctx, names...)
			p.ZRem(ctx, s.index, zm...)
			return nil
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(del.Val()), nil
}

// redisError is the error of a purge that could not reach Redis.
func redisError(err error) error {
	if errors.Is(err, sharedstore.ErrUnavailable) {
		return errors.New("the redis store is unavailable: only this process's local entries were purged")
	}
	return errors.New("the redis store failed during the purge (" + err.Error() + "): purge again")
}

// Usage implements Store: the entries on Redis (live index members) and
// the local fallback's bytes and evictions; Redis' own memory is in its
// INFO.
func (s *redisStore) Usage() Usage {
	u := s.local.Usage()
	var n int64
	err := s.r.Do(context.Background(), func(ctx context.Context, c *redis.Client) error {
		var err error
		n, err = c.ZCount(ctx, s.index, strconv.FormatInt(time.Now().Unix(), 10), "+inf").Result()
		return err
	})
	if err == nil {
		u.Entries += int(n)
	}
	return u
}

// RedisStats is what cache-stats reports of a Redis store.
type RedisStats struct {
	// Up is false while the server is considered unreachable.
	Up bool `json:"up"`
	// Fallbacks counts operations served by the local memory store
	// because the server could not be used.
	Fallbacks int64 `json:"fallbacks"`
	// TooLarge counts entries not stored for their size.
	TooLarge int64 `json:"too_large"`
	// LocalEntries are the entries kept locally during an outage.
	LocalEntries int `json:"local_entries"`
}

// redisStats reports the store's state.
func (s *redisStore) redisStats() *RedisStats {
	return &RedisStats{Up: s.r.Health.Up(), Fallbacks: s.fallbacks.Load(), TooLarge: s.tooLarge.Load(), LocalEntries: s.local.Usage().Entries}
}

// Close implements Store.
func (s *redisStore) Close() error {
	s.local.Close()
	return s.r.Close()
}

// Interface guard
var _ Store = (*redisStore)(nil)
