package cache

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func entry(body string) *Entry {
	return &Entry{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(body), Stored: time.Unix(1e9, 0), Lifetime: time.Minute}
}

// TestMemoryStoreLRU: beyond its size the least recently used entries
// go, a Get makes an entry recent, an entry larger than the store is not
// kept, and replacing an entry does not count it twice.
func TestMemoryStoreLRU(t *testing.T) {
	one := entry(strings.Repeat("a", 100)).size("GET http://h/a")
	m := newMemoryStore(3 * one)
	m.Set("GET http://h/a", entry(strings.Repeat("a", 100)))
	m.Set("GET http://h/b", entry(strings.Repeat("b", 100)))
	m.Set("GET http://h/c", entry(strings.Repeat("c", 100)))
	if m.Get("GET http://h/a") == nil {
		t.Fatal("a missing")
	}
	m.Set("GET http://h/d", entry(strings.Repeat("d", 100)))
	if m.Get("GET http://h/b") != nil {
		t.Error("b, the least recently used, was not evicted")
	}
	if m.Get("GET http://h/a") == nil || m.Get("GET http://h/d") == nil {
		t.Error("recent entries evicted")
	}
	m.Set("GET http://h/d", entry(strings.Repeat("d", 100)))
	if u := m.Usage(); u.Entries != 3 || u.Bytes > 3*one || u.Evictions != 1 {
		t.Errorf("usage %+v", u)
	}
	m.Set("GET http://h/huge", entry(strings.Repeat("x", int(4*one))))
	if m.Get("GET http://h/huge") != nil {
		t.Error("an entry larger than the store was kept")
	}
	if n, _ := m.Purge(func(k string) bool { return strings.HasSuffix(k, "/a") }); n != 1 {
		t.Errorf("purged %d", n)
	}
	m.Delete("GET http://h/c")
	m.Close()
	if u := m.Usage(); u.Entries != 0 || u.Bytes != 0 {
		t.Errorf("after close: %+v", u)
	}
}

// TestDiskStore: entries survive reopening (the index is rebuilt from
// the files), damaged and foreign files are removed, the size limit
// evicts the least recently used, purge and delete remove files.
func TestDiskStore(t *testing.T) {
	dir := t.TempDir()
	d, err := newDiskStore(dir, 4, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	d.Set("GET http://h/a", entry("alpha"))
	d.Set("GET http://h/b?x=1", entry("beta"))
	if e := d.Get("GET http://h/a"); e == nil || string(e.Body) != "alpha" || e.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("get: %+v", e)
	}
	if err := os.WriteFile(filepath.Join(dir, "0", "junk"), []byte("not an entry"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "1", ".tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	d2, err := newDiskStore(dir, 4, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if e := d2.Get("GET http://h/b?x=1"); e == nil || string(e.Body) != "beta" {
		t.Fatal("entry lost when the store was reopened")
	}
	for _, f := range []string{filepath.Join(dir, "0", "junk"), filepath.Join(dir, "1", ".tmp-123")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s was kept", f)
		}
	}
	if u := d2.Usage(); u.Entries != 2 {
		t.Errorf("usage %+v", u)
	}
	// A file damaged behind the store's back: a miss, and forgotten.
	_ = os.WriteFile(d2.file("GET http://h/a"), []byte("x"), 0o600)
	if d2.Get("GET http://h/a") != nil || d2.Usage().Entries != 1 {
		t.Error("a damaged file was served")
	}
	if n, _ := d2.Purge(purgeMatcher("/b", false)); n != 1 {
		t.Errorf("purged %d", n)
	}
	// Size limit.
	small, _ := newDiskStore(t.TempDir(), 1, 700)
	small.Set("k1", entry(strings.Repeat("1", 300)))
	small.Set("k2", entry(strings.Repeat("2", 300)))
	if small.Get("k1") != nil || small.Get("k2") == nil || small.Usage().Evictions != 1 {
		t.Errorf("disk eviction: %+v", small.Usage())
	}
	small.Set("big", entry(strings.Repeat("x", 1000)))
	if small.Get("big") != nil {
		t.Error("an entry over the disk size was stored")
	}
	small.Delete("k2")
	if small.Usage().Entries != 0 || small.Close() != nil {
		t.Error("delete")
	}
	if _, err := newDiskStore("/proc/forbidden/x", 1, 1); err == nil {
		t.Error("an unusable folder opened")
	}
}

// TestHybridStore: entries evicted from memory are served from disk
// (and promoted); purge and delete reach both tiers.
func TestHybridStore(t *testing.T) {
	one := entry(strings.Repeat("a", 100)).size("a")
	d, err := newDiskStore(t.TempDir(), 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h := newHybridStore(newMemoryStore(one+10), d)
	h.Set("a", entry(strings.Repeat("a", 100)))
	h.Set("b", entry(strings.Repeat("b", 100)))
	if h.mem.Get("a") != nil {
		t.Fatal("memory kept more than its size")
	}
	if e := h.Get("a"); e == nil || e.Body[0] != 'a' {
		t.Fatal("an entry evicted from memory was not read from disk")
	}
	if h.mem.Get("a") == nil {
		t.Error("not promoted to memory")
	}
	if u := h.Usage(); u.Entries != 2 || u.Evictions < 1 {
		t.Errorf("usage %+v", u)
	}
	h.Delete("a")
	if h.Get("a") != nil {
		t.Error("delete")
	}
	if n, _ := h.Purge(func(string) bool { return true }); n != 1 || h.Get("b") != nil {
		t.Errorf("purge: %d", n)
	}
	if h.Close() != nil {
		t.Error("close")
	}
}

// TestStorageConfig: defaults, validation, and that disk storages open.
func TestStorageConfig(t *testing.T) {
	s := Storage{}.withDefaults()
	if s.Name != "default" || s.Backend != BackendMemory || s.MaxSize != defaultMaxSize || s.DiskShards != 16 {
		t.Errorf("defaults: %+v", s)
	}
	for _, bad := range []Storage{
		{Backend: "ram"}, {Backend: BackendDisk}, {MaxSize: -1}, {DiskShards: 300},
	} {
		if err := bad.withDefaults().validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	for _, backend := range []string{BackendDisk, BackendHybrid} {
		st, err := Storage{Backend: backend, DiskPath: t.TempDir()}.withDefaults().open(zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		st.Set("k", entry("v"))
		if st.Get("k") == nil {
			t.Errorf("%s: entry not kept", backend)
		}
		st.Close()
	}
	if _, err := (Storage{Backend: BackendHybrid, DiskPath: "/proc/forbidden"}).withDefaults().open(zap.NewNop()); err == nil {
		t.Error("hybrid on an unusable folder opened")
	}
}

// TestMetricsCollector: the collector reports the counters and usage.
func TestMetricsCollector(t *testing.T) {
	s := &shared{name: "m", store: newMemoryStore(1 << 20)}
	s.stats.hits.Add(3)
	s.stats.misses.Add(2)
	s.stats.stores.Add(2)
	s.store.Set("k", entry("v"))
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector("m", s)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					name += "/" + l.GetValue()
				}
			}
			if m.GetCounter() != nil {
				got[name] = m.GetCounter().GetValue()
			} else {
				got[name] = m.GetGauge().GetValue()
			}
		}
	}
	for name, v := range map[string]float64{
		MetricEntries: 1, MetricRequests + "/hit": 3, MetricRequests + "/miss": 2, MetricRequests + "/bypass": 0,
		MetricStores: 2, MetricEvicted: 0,
	} {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if st := s.snapshot("memory"); st.HitRatio != 0.6 || st.Entries != 1 {
		t.Errorf("snapshot %+v", st)
	}
}

// TestDiskStoreConcurrentWrites: writers of one key never leave a mixed
// file behind.
func TestDiskStoreConcurrentWrites(t *testing.T) {
	d, err := newDiskStore(t.TempDir(), 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 20 {
				d.Set("k", entry(strings.Repeat(string(rune('a'+i)), 5000)))
			}
		}()
	}
	for range 8 {
		<-done
	}
	e := d.Get("k")
	if e == nil || strings.Trim(string(e.Body), string(e.Body[:1])) != "" {
		t.Fatal("a mixed or lost entry")
	}
	ents, _ := os.ReadDir(d.shardDir(0))
	if len(ents) != 1 {
		t.Errorf("%d files left, want 1", len(ents))
	}
}

// TestDiskStorePermissions: the cache's folders are 0700 and its files
// 0600 whatever the umask lets through: cached responses may be private
// to the proxy's user.
func TestDiskStorePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	d, err := newDiskStore(dir, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	d.Set("GET http://h/a", entry("secret"))
	perm := func(p string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	for _, p := range []string{dir, d.shardDir(0), d.shardDir(1)} {
		perm(p, 0o700)
	}
	perm(d.file("GET http://h/a"), 0o600)
}
