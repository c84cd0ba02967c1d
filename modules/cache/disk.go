package cache

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// diskStore keeps one file per entry, under dir/<shard>/<sha256 of the
// key>, with an index in memory (rebuilt from the files when it opens):
// entries survive restarts. The least recently used files are removed
// beyond max bytes.
type diskStore struct {
	dir    string
	shards int
	max    int64

	mu        sync.Mutex
	items     map[string]*list.Element
	lru       *list.List
	bytes     int64
	evictions int64
}

type diskItem struct {
	key  string
	file string
	size int64
}

// newDiskStore opens (creating) the folder and indexes the entries in it.
func newDiskStore(dir string, shards int, max int64) (*diskStore, error) {
	d := &diskStore{dir: dir, shards: shards, max: max, items: map[string]*list.Element{}, lru: list.New()}
	for i := range shards {
		if err := os.MkdirAll(d.shardDir(i), 0o700); err != nil {
			return nil, fmt.Errorf("cache disk_path: %w", err)
		}
	}
	// Index what a previous run left (files of other shard counts are
	// ignored).
	for i := range shards {
		ents, err := os.ReadDir(d.shardDir(i))
		if err != nil {
			return nil, fmt.Errorf("cache disk_path: %w", err)
		}
		for _, de := range ents {
			file := filepath.Join(d.shardDir(i), de.Name())
			if strings.HasPrefix(de.Name(), ".tmp-") {
				_ = os.Remove(file) // a write cut short
				continue
			}
			b, err := os.ReadFile(file)
			if err != nil || !de.Type().IsRegular() {
				continue
			}
			key, _, err := unmarshalEntry(b)
			if err != nil || d.file(key) != file {
				_ = os.Remove(file) // not ours, or damaged
				continue
			}
			d.items[key] = d.lru.PushBack(&diskItem{key: key, file: file, size: int64(len(b))})
			d.bytes += int64(len(b))
		}
	}
	return d, nil
}

func (d *diskStore) shardDir(i int) string { return filepath.Join(d.dir, strconv.Itoa(i)) }

// file is the path of key's entry.
func (d *diskStore) file(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.shardDir(int(sum[0])%d.shards), hex.EncodeToString(sum[:]))
}

// Get implements Store.
func (d *diskStore) Get(key string) *Entry {
	d.mu.Lock()
	el := d.items[key]
	if el == nil {
		d.mu.Unlock()
		return nil
	}
	d.lru.MoveToFront(el)
	file := el.Value.(*diskItem).file
	d.mu.Unlock()
	b, err := os.ReadFile(file)
	if err != nil {
		d.Delete(key)
		return nil
	}
	k, e, err := unmarshalEntry(b)
	if err != nil || k != key {
		d.Delete(key)
		return nil
	}
	return e
}

// Set implements Store.
func (d *diskStore) Set(key string, e *Entry) {
	b, err := marshalEntry(key, e)
	if err != nil || int64(len(b)) > d.max {
		return
	}
	file := d.file(key)
	// A file of its own per write: concurrent writes of one key do not
	// mix; the rename makes the entry appear whole.
	f, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	if cerr := f.Close(); werr != nil || cerr != nil {
		_ = os.Remove(tmp)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return
	}
	if el := d.items[key]; el != nil {
		it := d.lru.Remove(el).(*diskItem)
		d.bytes -= it.size
	}
	d.items[key] = d.lru.PushFront(&diskItem{key: key, file: file, size: int64(len(b))})
	d.bytes += int64(len(b))
	for d.bytes > d.max {
		d.removeLocked(d.lru.Back())
		d.evictions++
	}
}

// removeLocked drops el and its file; mu is held.
func (d *diskStore) removeLocked(el *list.Element) {
	it := d.lru.Remove(el).(*diskItem)
	delete(d.items, it.key)
	d.bytes -= it.size
	_ = os.Remove(it.file)
}

// Delete implements Store.
func (d *diskStore) Delete(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el := d.items[key]; el != nil {
		d.removeLocked(el)
	}
}

// Purge implements Store.
func (d *diskStore) Purge(match func(string) bool) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for key, el := range d.items {
		if match(key) {
			d.removeLocked(el)
			n++
		}
	}
	return n, nil
}

// Usage implements Store.
func (d *diskStore) Usage() Usage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Usage{Entries: len(d.items), Bytes: d.bytes, MaxBytes: d.max, Evictions: d.evictions}
}

// Close implements Store; the files stay for the next run.
func (d *diskStore) Close() error { return nil }

// hybridStore is a memory store in front of a disk store: every entry is
// written to both; hits are served from memory, and entries evicted from
// memory are read back from disk (and promoted).
type hybridStore struct {
	mem  *memoryStore
	disk *diskStore
}

func newHybridStore(mem *memoryStore, disk *diskStore) *hybridStore {
	return &hybridStore{mem: mem, disk: disk}
}

// Get implements Store.
func (h *hybridStore) Get(key string) *Entry {
	if e := h.mem.Get(key); e != nil {
		return e
	}
	e := h.disk.Get(key)
	if e != nil {
		h.mem.Set(key, e)
	}
	return e
}

// Set implements Store.
func (h *hybridStore) Set(key string, e *Entry) {
	h.mem.Set(key, e)
	h.disk.Set(key, e)
}

// Delete implements Store.
func (h *hybridStore) Delete(key string) {
	h.mem.Delete(key)
	h.disk.Delete(key)
}

// Purge implements Store; the count is of the disk tier, which holds
// every entry.
func (h *hybridStore) Purge(match func(string) bool) (int, error) {
	_, _ = h.mem.Purge(match)
	return h.disk.Purge(match)
}

// Usage implements Store: the disk tier's entries and bytes (it holds
// every entry), the evictions of both tiers.
func (h *hybridStore) Usage() Usage {
	m, d := h.mem.Usage(), h.disk.Usage()
	d.Evictions += m.Evictions
	return d
}

// Close implements Store.
func (h *hybridStore) Close() error {
	h.mem.Close()
	return h.disk.Close()
}

// Interface guards
var (
	_ Store = (*diskStore)(nil)
	_ Store = (*hybridStore)(nil)
)
