package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody is the largest response body a backend serves.
const maxBody = 1 << 20

// body is the shared response payload (read-only after init).
var body = []byte(strings.Repeat("sentinel-load-harness.", maxBody/22+1))[:maxBody]

// BackendOptions configure a backend.
type BackendOptions struct {
	// Latency is added before each answer.
	Latency time.Duration
	// BodySize is the default response size in bytes; GET /b/N answers N
	// bytes instead.
	BodySize int
	// ErrorRate is the fraction (0–1) of requests answered 500.
	ErrorRate float64
}

// Backend is a real HTTP/1.1 server on loopback that can crash and come
// back on the same address.
type Backend struct {
	// Addr is the backend's "127.0.0.1:port".
	Addr    string
	latency time.Duration
	size    int
	errRate atomic.Uint64 // math.Float64bits
	hits    atomic.Int64
	agented atomic.Int64

	mu  sync.Mutex
	srv *http.Server
}

// StartBackend starts a backend on addr ("" picks a free one).
func StartBackend(addr string, o BackendOptions) (*Backend, error) {
	if addr == "" {
		addrs, err := freeAddrs(1)
		if err != nil {
			return nil, err
		}
		addr = addrs[0]
	}
	b := &Backend{Addr: addr, latency: o.Latency, size: min(max(o.BodySize, 0), maxBody)}
	b.SetErrorRate(o.ErrorRate)
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

// SetErrorRate sets the fraction of requests answered 500.
func (b *Backend) SetErrorRate(f float64) { b.errRate.Store(math.Float64bits(f)) }

// Hits counts the requests served (health checks excluded).
func (b *Backend) Hits() int64 { return b.hits.Load() }

// AgentHits counts the requests that carried the echo agent's
// X-Echo-Agent header.
func (b *Backend) AgentHits() int64 { return b.agented.Load() }

// Start listens again on the backend's address (after Crash).
func (b *Backend) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		return nil
	}
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after a crash
		if l, err = net.Listen("tcp", b.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("backend listen %s: %w", b.Addr, err)
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(l)
	return nil
}

// Crash closes the listener and every connection at once, as a process
// crash would.
func (b *Backend) Crash() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

// Close stops the backend gracefully.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = b.srv.Shutdown(ctx)
		b.srv.Close()
		b.srv = nil
	}
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		w.WriteHeader(http.StatusOK)
		return
	}
	b.hits.Add(1)
	if r.Header.Get("X-Echo-Agent") != "" {
		b.agented.Add(1)
	}
	if b.latency > 0 {
		time.Sleep(b.latency)
	}
	if f := math.Float64frombits(b.errRate.Load()); f > 0 && rand.Float64() < f {
		http.Error(w, "backend error", http.StatusInternalServerError)
		return
	}
	n := b.size
	if rest, ok := strings.CutPrefix(r.URL.Path, "/b/"); ok {
		if v, err := strconv.Atoi(rest); err == nil && v >= 0 && v <= maxBody {
			n = v
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Write(body[:n])
}
