package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Quantiles are the latency percentiles every result reports (and the
// points of the latency charts). Read-only.
var Quantiles = []float64{50, 75, 90, 95, 99, 99.5, 99.9, 99.99}

// LoadSpec describes one load run.
type LoadSpec struct {
	// URL is requested with GET.
	URL string
	// Conns is the number of connections (HTTP/1.1: one request in flight
	// each).
	Conns int
	// Streams is the number of concurrent streams per connection (HTTP/2).
	Streams int
	// HTTP2 uses HTTP/2 over TLS (the URL must be https).
	HTTP2 bool
	// Duration of the run.
	Duration time.Duration
	// Rate > 0 is an open-loop run: requests are scheduled at this rate per
	// second and latency is measured from the scheduled time, so a stall
	// counts for every request it delays (no coordinated omission).
	Rate float64
	// Timeout bounds each request.
	Timeout time.Duration
	// Live, if set, is updated as responses arrive.
	Live *Counters
}

// Counters are live request counters, safe for concurrent use.
type Counters struct {
	// OK counts 2xx and 3xx answers.
	OK atomic.Int64
	// Fail counts errors and 4xx/5xx answers.
	Fail atomic.Int64
	// Slow counts answers (any status) slower than SlowAfter.
	Slow atomic.Int64
	// SlowAfter is the latency counted as slow (0: 2 s). Set it before use.
	SlowAfter time.Duration

	mu      sync.Mutex
	status  map[int]int64
	lastErr string
}

// record adds one outcome.
func (c *Counters) record(status int, err error, lat time.Duration) {
	slow := c.SlowAfter
	if slow == 0 {
		slow = 2 * time.Second
	}
	if lat > slow {
		c.Slow.Add(1)
	}
	if err == nil && status < 400 {
		c.OK.Add(1)
	} else {
		c.Fail.Add(1)
	}
	c.mu.Lock()
	if c.status == nil {
		c.status = map[int]int64{}
	}
	c.status[status]++
	if err != nil {
		c.lastErr = err.Error()
	}
	c.mu.Unlock()
}

// Status returns a copy of the per-status counts (0: transport error).
func (c *Counters) Status() map[int]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[int]int64, len(c.status))
	for k, v := range c.status {
		m[k] = v
	}
	return m
}

// LastError returns the last transport error seen.
func (c *Counters) LastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// LoadResult is the outcome of a load run.
type LoadResult struct {
	// Tool is the load generator used ("go", "wrk", "h2load").
	Tool string
	// Requests counts completed requests (successes and failures).
	Requests int64
	// Errors counts failed requests (transport errors, 4xx/5xx).
	Errors int64
	// Elapsed is the measured duration.
	Elapsed time.Duration
	// Latency maps each of Quantiles to a latency.
	Latency map[float64]time.Duration
}

// RPS returns the throughput in requests per second.
func (r LoadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// newHist returns a histogram of microseconds from 1 µs to 100 s.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 100_000_000, 3) }

// quantiles reads Quantiles from a histogram.
func quantiles(h *hdrhistogram.Histogram) map[float64]time.Duration {
	m := map[float64]time.Duration{}
	for _, q := range Quantiles {
		m[q] = time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
	}
	return m
}

// newClient returns one HTTP client: its own transport, so that each client
// is one connection (HTTP/2) or a pool of conns (HTTP/1.1).
func newClient(spec LoadSpec, conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, // the harness's own self-signed cert
		ForceAttemptHTTP2:   spec.HTTP2,
	}
	if !spec.HTTP2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: spec.Timeout}
}

// RunGo runs the built-in load generator.
func RunGo(ctx context.Context, spec LoadSpec) (LoadResult, error) {
	if spec.Conns <= 0 {
		return LoadResult{}, errors.New("load: conns must be positive")
	}
	if spec.Timeout == 0 {
		spec.Timeout = 10 * time.Second
	}
	streams := 1
	var clients []*http.Client
	if spec.HTTP2 {
		streams = max(spec.Streams, 1)
		for range spec.Conns {
			clients = append(clients, newClient(spec, 1))
		}
	} else {
		clients = []*http.Client{newClient(spec, spec.Conns)}
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	workers := spec.Conns * streams
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()

	var sched chan time.Time
	if spec.Rate > 0 {
		sched = make(chan time.Time, 1<<16)
	}
	hists := make([]*hdrhistogram.Histogram, workers)
	var total, fails atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		hists[i] = newHist()
		client := clients[i%len(clients)]
		wg.Add(1)
		go func(h *hdrhistogram.Histogram) {
			defer wg.Done()
			for {
				var intended time.Time
				if sched != nil {
					t, ok := <-sched
					if !ok {
						return
					}
					intended = t
				} else {
					if ctx.Err() != nil {
						return
					}
					intended = time.Now()
				}
				status, err := doGet(client, spec.URL)
				lat := time.Since(intended)
				if ctx.Err() != nil && err != nil && sched == nil {
					return // cut off by the end of the run, not a failure
				}
				h.RecordValue(max(lat.Microseconds(), 1))
				total.Add(1)
				if err != nil || status >= 400 {
					fails.Add(1)
				}
				if spec.Live != nil {
					spec.Live.record(status, err, lat)
				}
			}
		}(hists[i])
	}
	if sched != nil {
		interval := time.Duration(float64(time.Second) / spec.Rate)
	loop:
		for i := 0; ; i++ {
			t := start.Add(time.Duration(i) * interval)
			if d := time.Until(t); d > 0 {
				select {
				case <-ctx.Done():
					break loop
				case <-time.After(d):
				}
			}
			if ctx.Err() != nil {
				break
			}
			select {
			case sched <- t:
			case <-ctx.Done():
				break loop
			}
		}
		close(sched)
	}
	wg.Wait()
	elapsed := time.Since(start)
	h := newHist()
	for _, x := range hists {
		h.Merge(x)
	}
	return LoadResult{Tool: "go", Requests: total.Load(), Errors: fails.Load(), Elapsed: elapsed, Latency: quantiles(h)}, nil
}

// doGet does one GET and reads the whole body.
func doGet(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, nil
}
