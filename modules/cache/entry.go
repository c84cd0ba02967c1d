package cache

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"net/http"
	"time"
)

// Entry is one stored response, or a variant marker: the entry under a
// URL's primary key when the response varies (Vary), naming the request
// headers whose values select the variant.
type Entry struct {
	// Status is the response status code.
	Status int
	// Header is the stored response header (no hop-by-hop fields).
	Header http.Header
	// Body is the whole response body.
	Body []byte
	// Stored is when the response was received (or last revalidated).
	Stored time.Time
	// InitialAge is the corrected initial age at Stored (RFC 9111 §4.2.3).
	InitialAge time.Duration
	// Lifetime is the freshness lifetime.
	Lifetime time.Duration
	// SWR and SIE are the stale-while-revalidate and stale-if-error
	// windows after the lifetime.
	SWR, SIE time.Duration
	// Vary, on a variant marker, lists the request header names
	// (canonical, sorted) that select the variant; empty on responses.
	Vary []string
}

// age is the entry's current age at now (RFC 9111 §4.2.3).
func (e *Entry) age(now time.Time) time.Duration {
	return e.InitialAge + now.Sub(e.Stored)
}

// ttl is the remaining freshness; negative once stale.
func (e *Entry) ttl(now time.Time) time.Duration {
	return e.Lifetime - e.age(now)
}

// size is the entry's approximate memory cost, for the size limits.
func (e *Entry) size(key string) int64 {
	n := int64(len(key) + len(e.Body) + 128)
	for k, vs := range e.Header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	for _, v := range e.Vary {
		n += int64(len(v))
	}
	return n
}

// check reports whether a decoded entry can be used: a variant marker,
// or a response with an HTTP status (an entry read from disk or Redis
// may have been written by something else; WriteHeader panics on a
// status out of range).
func (e *Entry) check() error {
	if len(e.Vary) > 0 {
		return nil
	}
	if e.Status < 100 || e.Status > 999 {
		return fmt.Errorf("cache entry: status %d is not an HTTP status", e.Status)
	}
	return nil
}

// marshalEntry encodes an entry for a disk or remote store, with its key
// so that a store can rebuild its index and purge by pattern.
func marshalEntry(key string, e *Entry) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(storedEntry{Key: key, Entry: *e}); err != nil {
		return nil, fmt.Errorf("encoding cache entry: %w", err)
	}
	return buf.Bytes(), nil
}

// unmarshalEntry decodes what marshalEntry wrote.
func unmarshalEntry(b []byte) (string, *Entry, error) {
	var s storedEntry
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		return "", nil, fmt.Errorf("decoding cache entry: %w", err)
	}
	if err := s.Entry.check(); err != nil {
		return "", nil, err
	}
	return s.Key, &s.Entry, nil
}

// storedEntry is an entry with its key, as encoded.
type storedEntry struct {
	Key   string
	Entry Entry
}
