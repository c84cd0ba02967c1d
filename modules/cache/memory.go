package cache

import (
	"container/list"
	"sync"
)

// memoryStore is a size-bounded store with least-recently-used eviction.
type memoryStore struct {
	max int64

	mu        sync.Mutex
	items     map[string]*list.Element
	lru       *list.List // front: most recently used
	bytes     int64
	evictions int64
}

type memItem struct {
	key  string
	e    *Entry
	size int64
}

// newMemoryStore returns an empty store of max bytes.
func newMemoryStore(max int64) *memoryStore {
	return &memoryStore{max: max, items: map[string]*list.Element{}, lru: list.New()}
}

// Get implements Store.
func (m *memoryStore) Get(key string) *Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	el := m.items[key]
	if el == nil {
		return nil
	}
	m.lru.MoveToFront(el)
	return el.Value.(*memItem).e
}

// Set implements Store.
func (m *memoryStore) Set(key string, e *Entry) {
	size := e.size(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if el := m.items[key]; el != nil {
		m.remove(el)
	}
	if size > m.max {
		return
	}
	m.items[key] = m.lru.PushFront(&memItem{key: key, e: e, size: size})
	m.bytes += size
	for m.bytes > m.max {
		el := m.lru.Back()
		m.remove(el)
		m.evictions++
	}
}

// remove drops el; mu is held.
func (m *memoryStore) remove(el *list.Element) {
	it := m.lru.Remove(el).(*memItem)
	delete(m.items, it.key)
	m.bytes -= it.size
}

// Delete implements Store.
func (m *memoryStore) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el := m.items[key]; el != nil {
		m.remove(el)
	}
}

// Purge implements Store.
func (m *memoryStore) Purge(match func(string) bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for key, el := range m.items {
		if match(key) {
			m.remove(el)
			n++
		}
	}
	return n, nil
}

// Usage implements Store.
func (m *memoryStore) Usage() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Usage{Entries: len(m.items), Bytes: m.bytes, MaxBytes: m.max, Evictions: m.evictions}
}

// Close implements Store.
func (m *memoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items, m.bytes = map[string]*list.Element{}, 0
	m.lru.Init()
	return nil
}

// Interface guard
var _ Store = (*memoryStore)(nil)
