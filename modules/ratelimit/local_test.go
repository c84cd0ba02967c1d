package ratelimit

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func TestGCRABurstThenRate(t *testing.T) {
	p := newParams(10, 3, 0) // 100ms per request, 3 at once
	s := newLocalStore(100)
	now := time.Unix(1000, 0).UnixNano()
	k := key{a: "1.2.3.4"}
	for i := range 3 {
		d := s.take(p, k, now)
		if !d.allowed || d.remaining != int64(2-i) {
			t.Fatalf("request %d: %+v, want admitted with %d remaining", i, d, 2-i)
		}
	}
	d := s.take(p, k, now)
	if d.allowed || d.retryAfter != 100*time.Millisecond || d.reset != 300*time.Millisecond {
		t.Fatalf("4th request: %+v, want rejected, retry after 100ms, full in 300ms", d)
	}
	// 100ms later one more fits, not two.
	now += int64(100 * time.Millisecond)
	if d := s.take(p, k, now); !d.allowed || d.remaining != 0 {
		t.Fatalf("after 100ms: %+v", d)
	}
	if d := s.take(p, k, now); d.allowed {
		t.Fatalf("second after 100ms admitted: %+v", d)
	}
	// Other keys have their own bucket.
	if d := s.take(p, key{a: "5.6.7.8"}, now); !d.allowed || d.remaining != 2 {
		t.Fatalf("other key: %+v", d)
	}
}

func TestGCRADelay(t *testing.T) {
	p := newParams(10, 1, 250*time.Millisecond)
	s := newLocalStore(10)
	k := key{}
	now := int64(time.Second)
	waits := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}
	for i, w := range waits {
		d := s.take(p, k, now)
		if !d.allowed || d.wait != w {
			t.Fatalf("request %d: %+v, want admitted after %s", i, d, w)
		}
	}
	// The next would wait 300ms > 250ms.
	if d := s.take(p, k, now); d.allowed || d.retryAfter != 300*time.Millisecond {
		t.Fatalf("4th: %+v, want rejected (retry after 300ms)", d)
	}
}

// TestLocalStoreBounded: max-keys holds however many clients come, and
// keys whose bucket is full again are the ones dropped.
func TestLocalStoreBounded(t *testing.T) {
	for _, maxKeys := range []int{1, 100, 5000} {
		p := newParams(1, 1, 0)
		s := newLocalStore(maxKeys)
		now := int64(time.Hour)
		for i := range 20000 {
			s.take(p, key{a: strconv.Itoa(i)}, now+int64(i))
		}
		if n := s.len(); n > maxKeys {
			t.Errorf("max_keys %d: %d keys held", maxKeys, n)
		}
	}
	// A busy key (its bucket empty) survives a flood of one-off keys:
	// the keys dropped are those whose buckets are closest to full.
	p := newParams(1, 10, 0)
	s := newLocalStore(64)
	now := int64(time.Hour)
	for range 10 {
		s.take(p, key{a: "busy"}, now)
	}
	for i := range 1000 {
		now += int64(time.Microsecond)
		s.take(p, key{a: "new" + strconv.Itoa(i)}, now)
	}
	if d := s.take(p, key{a: "busy"}, now); d.allowed {
		t.Errorf("the busy key was evicted (its 11th request within 1s was admitted)")
	}
}

// TestLocalTakeCost is the figure: the local check costs at most
// 1µs and allocates nothing (on an existing key; a new key copies its
// strings once).
func TestLocalTakeCost(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector instruments every access: cost figures are meaningless")
	}
	testutil.Exclusive(t)
	p := newParams(1e6, 1000, 0)
	s := newLocalStore(DefaultMaxKeys)
	k := key{a: "203.0.113.7", b: "/api/v1/items"}
	now := time.Now().UnixNano()
	if a := testing.AllocsPerRun(1000, func() { now++; s.take(p, k, now) }); a != 0 {
		t.Errorf("%v allocations per check, want 0", a)
	}
	res := testing.Benchmark(BenchmarkLocalTake)
	if ns := res.NsPerOp(); ns > 1000 {
		t.Errorf("local check: %d ns/op, want ≤ 1000", ns)
	}
	t.Logf("local check: %s %s", res, res.MemString())
}

// BenchmarkLocalTake: go test ./modules/ratelimit -run '^$' -bench LocalTake -benchmem
func BenchmarkLocalTake(b *testing.B) {
	p := newParams(1e6, 1000, 0)
	s := newLocalStore(DefaultMaxKeys)
	keys := make([]key, 1024)
	for i := range keys {
		keys[i] = key{a: "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)}
	}
	now := time.Now().UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.take(p, keys[i&1023], now+int64(i))
	}
}

// TestLocalStoreCostsLittleUpFront: a limit that no request used holds
// (almost) no memory, whatever max-keys is: configs have one per route.
func TestLocalStoreCostsLittleUpFront(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	stores := make([]*localStore, 100)
	for i := range stores {
		stores[i] = newLocalStore(DefaultMaxKeys)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 64<<10 {
		t.Errorf("an unused store allocates %d bytes", per)
	}
	runtime.KeepAlive(stores)
}

// TestLongKeysBoundedMemory: max_keys bounded the number of keys, not
// their size. With `key "path"` (or a header, or client_ip_and_path)
// a client chooses the key's length up to the server's header limit:
// 1,000 requests with 64 KiB paths held 64 MiB (100,000, the default
// max_keys, 6.4 GiB). Long keys are held as a digest now, and still
// limit as before.
func TestLongKeysBoundedMemory(t *testing.T) {
	const n, size = 1000, 64 << 10
	p := newParams(1, 1, 0)
	s := newLocalStore(2 * n) // room for all: nothing evicted
	now := int64(time.Hour)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	long := func(id string) key { return key{a: "/" + id + "/" + strings.Repeat("a", size)} }
	for i := range n {
		s.take(p, long(strconv.Itoa(i)), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if held > 8<<20 {
		t.Errorf("%d keys of %d bytes hold %d MiB", n, size, held>>20)
	}
	if s.len() != n {
		t.Errorf("%d keys held, want %d", s.len(), n)
	}
	// The same long key is the same bucket; another is another.
	if d := s.take(p, long("7"), now); d.allowed {
		t.Error("a long key's second request within its interval was admitted")
	}
	if d := s.take(p, long("x"), now); !d.allowed {
		t.Error("a new long key was limited")
	}
	// A digest is never another key's bucket.
	if k := compact(long("x")); k.b != longKeyMark || len(k.a) != 32 {
		t.Errorf("digest key %q/%q", k.a, k.b)
	}
	runtime.KeepAlive(s)
}
