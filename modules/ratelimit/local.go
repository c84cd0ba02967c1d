package ratelimit

import (
	"crypto/sha256"
	"hash/maphash"
	"sync"
)

// key identifies a bucket: one or two strings of the request (the client
// IP, the path, a header value), compared without building a string.
type key struct{ a, b string }

// localStore holds the TATs of up to maxKeys keys in memory, in shards
// with their own lock. It never grows beyond maxKeys: a full shard makes
// room by dropping keys whose bucket is full again (their state is the
// same as no state), else the key of the sample closest to that.
type localStore struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

type shard struct {
	mu  sync.Mutex
	m   map[key]int64 // key → TAT (unix ns)
	cap int
	_   [40]byte // keep shards on separate cache lines
}

// evictSample is how many entries a full shard looks at to make room.
const evictSample = 16

func newLocalStore(maxKeys int) *localStore {
	n := 1
	for n < 64 && n*2*256 <= maxKeys {
		n *= 2
	}
	s := &localStore{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard, n)}
	for i := range s.shards {
		per := maxKeys / n
		if i < maxKeys%n {
			per++
		}
		s.shards[i].cap = max(per, 1)
		// Maps grow with use: a config with many limits costs nothing
		// up front.
		s.shards[i].m = make(map[key]int64)
	}
	return s
}

// maxKeyBytes is the longest key held as it is; a longer one (a long
// path or header value: its length is the client's choice, up to the
// server's header limit) is held as its SHA-256, so that max_keys bounds
// the memory the keys take, not only their number.
const maxKeyBytes = 256

// longKeyMark is the b of a key held as a digest: no other key's b
// (a path, "", "\x00h" or "\x00t…") is it.
const longKeyMark = "\x00#"

// compact returns k, or its digest when it is longer than maxKeyBytes.
func compact(k key) key {
	if len(k.a)+len(k.b) <= maxKeyBytes {
		return k
	}
	d := sha256.New()
	_, _ = d.Write([]byte(k.a))
	_, _ = d.Write([]byte{0})
	_, _ = d.Write([]byte(k.b))
	return key{a: string(d.Sum(nil)), b: longKeyMark}
}

// take decides one request of k at now (unix ns) and records it.
func (s *localStore) take(p params, k key, now int64) decision {
	k = compact(k)
	sh := &s.shards[maphash.Comparable(s.seed, k)&s.mask]
	sh.mu.Lock()
	tat, ok := sh.m[k]
	next, d := gcra(p, tat, now)
	if d.allowed {
		if !ok {
			if len(sh.m) >= sh.cap {
				sh.evict(now)
			}
			// The key outlives the request: keep no reference to the
			// request's memory.
			k = key{cloneString(k.a), cloneString(k.b)}
		}
		sh.m[k] = next
	}
	sh.mu.Unlock()
	return d
}

// evict drops the expired keys among a sample of the shard, or the one
// closest to expiring when none is.
func (sh *shard) evict(now int64) {
	var oldest key
	oldestTAT, seen, dropped := int64(0), 0, 0
	for k, tat := range sh.m {
		if tat <= now {
			delete(sh.m, k)
			dropped++
		} else if seen == 0 || tat < oldestTAT {
			oldest, oldestTAT = k, tat
		}
		seen++
		if seen >= evictSample {
			break
		}
	}
	if dropped == 0 && seen > 0 {
		delete(sh.m, oldest)
	}
}

// len is the number of keys held.
func (s *localStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func cloneString(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}
