package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lbBackend is a loopback backend whose behaviour the load-balancing
// tests change while traffic flows: extra latency, a share of fast 503s,
// a capacity (concurrent workers, each busy for a service time).
type lbBackend struct {
	addr string
	srv  *http.Server
	hits atomic.Int64
	seq  atomic.Uint64

	delay   atomic.Int64 // added latency, ns
	failPct atomic.Int64 // % of requests answered 503 at once
	workers chan struct{}
	service time.Duration
}

// startLBBackend starts a backend; workers > 0 limits its concurrency
// (requests queue), each request then taking service.
func startLBBackend(t testing.TB, workers int, service time.Duration) *lbBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &lbBackend{addr: l.Addr().String(), service: service}
	if workers > 0 {
		b.workers = make(chan struct{}, workers)
	}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// ServeHTTP answers "ok", or 503 for failPct % of the requests (spread
// evenly), after the capacity queue, service time and added delay.
func (b *lbBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	n := b.seq.Add(1)
	if pct := b.failPct.Load(); pct > 0 && (n*37)%100 < uint64(pct) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if b.workers != nil {
		b.workers <- struct{}{}
		defer func() { <-b.workers }()
	}
	if d := b.service + time.Duration(b.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	io.WriteString(w, "ok")
}

// lbRoute is one proxied path prefix with its upstream and policy.
type lbRoute struct {
	prefix   string         // e.g. "/e"
	upstream string         // registry upstream id
	targets  []*lbBackend   // the upstream's targets
	weights  []int          // optional target weights
	policy   map[string]any // the selection_policy object
	retries  int            // retries on 503
	extra    map[string]any // more load_balancing fields
}

// lbConfig is the JSON config of a proxy on listen with the routes: a
// sentinel app declaring the upstreams, and per route a reverse_proxy
// reading its targets from the registry through the sentinel transport.
func lbConfig(listen string, routes []lbRoute) string {
	var upstreams []any
	var handlers []any
	for _, r := range routes {
		var targets []any
		for i, b := range r.targets {
			t := map[string]any{"address": b.addr}
			if i < len(r.weights) {
				t["weight"] = r.weights[i]
			}
			targets = append(targets, t)
		}
		upstreams = append(upstreams, map[string]any{"id": r.upstream, "targets": targets})
		lb := map[string]any{"selection_policy": r.policy}
		if r.retries > 0 {
			lb["retries"] = r.retries
			lb["retry_match"] = []any{map[string]any{"expression": "{http.reverse_proxy.status_code} in [503]"}}
		}
		for k, v := range r.extra {
			lb[k] = v
		}
		handlers = append(handlers, map[string]any{
			"match": []any{map[string]any{"path": []string{r.prefix + "/*"}}},
			"handle": []any{map[string]any{
				"handler":           "reverse_proxy",
				"dynamic_upstreams": map[string]any{"source": "sentinel", "upstream": r.upstream},
				"transport":         map[string]any{"protocol": "sentinel"},
				"load_balancing":    lb,
			}},
		})
	}
	cfg := map[string]any{
		"admin":   map[string]any{"listen": fmt.Sprintf("localhost:%d", adminPort)},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{
			"sentinel": map[string]any{"upstreams": upstreams},
			"http": map[string]any{"servers": map[string]any{"lb": map[string]any{
				"listen":          []string{listen},
				"routes":          handlers,
				"automatic_https": map[string]any{"disable": true},
			}}},
		},
	}
	out, _ := json.Marshal(cfg)
	return string(out)
}

// lbLoadResult is what a load run measured.
type lbLoadResult struct {
	latencies []time.Duration // of every request, failed ones included
	ok, total int
}

// quantile returns the q-quantile of the latencies.
func (r *lbLoadResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// successRate is the share of 200 answers.
func (r *lbLoadResult) successRate() float64 {
	if r.total == 0 {
		return 0
	}
	return float64(r.ok) / float64(r.total)
}

// lbLoadGen sends GETs to url at a fixed rate (open loop: a request is sent
// at its scheduled time whatever the others do, and its latency counts
// from that time, so a stalled proxy cannot hide its queue).
type lbLoadGen struct {
	client *http.Client
	url    string
	rate   float64

	mu        sync.Mutex
	recording bool
	res       lbLoadResult
}

func newLBLoadGen(url string, rate float64) *lbLoadGen {
	return &lbLoadGen{
		url:  url,
		rate: rate,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute, DisableCompression: true,
		}},
	}
}

// record starts a new measurement window and returns the previous one.
func (g *lbLoadGen) record(on bool) lbLoadResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.res
	g.res = lbLoadResult{}
	g.recording = on
	return r
}

// run sends requests until stop is closed, then waits for the last ones.
func (g *lbLoadGen) run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sem := make(chan struct{}, 2048)
	for {
		select {
		case <-stop:
			wg.Wait()
			return
		case now := <-tick.C:
			due := int(now.Sub(start).Seconds() * g.rate)
			for ; sent < due; sent++ {
				at := start.Add(time.Duration(float64(sent) / g.rate * float64(time.Second)))
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					code := 0
					if res, err := g.client.Get(g.url); err == nil {
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						code = res.StatusCode
					}
					g.add(code, time.Since(at))
				}()
			}
		}
	}
}

// runClosed runs n clients in a closed loop until stop is closed: each
// sends its next request as soon as its last one is answered, so the load
// is as high as the proxy can take (it is CPU-bound) and a latency counts
// from the request's send time.
func (g *lbLoadGen) runClosed(stop <-chan struct{}, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				at := time.Now()
				code := 0
				if res, err := g.client.Get(g.url); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					code = res.StatusCode
				}
				g.add(code, time.Since(at))
			}
		}()
	}
	wg.Wait()
}

// add records one request when recording.
func (g *lbLoadGen) add(code int, lat time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.recording {
		g.res.total++
		if code == http.StatusOK {
			g.res.ok++
		}
		g.res.latencies = append(g.res.latencies, lat)
	}
}

// lbHitCounter snapshots the hits of backends.
type lbHitCounter struct {
	backends []*lbBackend
	last     []int64
}

func newLBHitCounter(bs ...*lbBackend) *lbHitCounter {
	h := &lbHitCounter{backends: bs, last: make([]int64, len(bs))}
	h.delta()
	return h
}

// delta returns the hits of each backend since the last call.
func (h *lbHitCounter) delta() []int64 {
	out := make([]int64, len(h.backends))
	for i, b := range h.backends {
		n := b.hits.Load()
		out[i], h.last[i] = n-h.last[i], n
	}
	return out
}

// share is the part of the hits that went to backend i.
func lbShare(hits []int64, i int) float64 {
	var total int64
	for _, h := range hits {
		total += h
	}
	if total == 0 {
		return 0
	}
	return float64(hits[i]) / float64(total)
}
