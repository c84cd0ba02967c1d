package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// proxyPathLogs are the variants BenchmarkProxyPath and
// TestProxyPathAllocations run: whether the default log's encoder is
// Caddy's (caddyLog) instead of the adapter's (sentinel_deferred), and
// whether the Sentinel route's handlers after sentinel_route are taken
// out of its `handle` (unfold; the adapter folds them into it).
var proxyPathLogs = []struct {
	name     string
	caddyLog bool
	unfold   bool
}{
	{"caddy-log", true, false},
	{"deferred-log-unfolded", false, true},
	{"deferred-log", false, false},
}

// BenchmarkProxyPath compares, in the same run and the same process, one
// HTTP/1.1 request proxied by a plain Sentinel route (KDL-adapted config:
// sentinel matcher, sentinel_route, dynamic upstreams from the registry,
// the sentinel transport, the framing and handoff listener wrappers) with
// the same request proxied by stock Caddy's reverse_proxy with a static
// upstream (plain Caddy JSON), both to one backend. The client and the
// backend are raw sockets that allocate nothing per request, so the
// process's allocations per request are the proxy's. The two contenders
// run alternately in blocks of 64 requests (the same noise for both); the
// metrics are per request of each, and their ratios (Sentinel ÷ Caddy).
//
// The sub-benchmarks differ in the default log's encoder, which both
// contenders share: caddy-log is Caddy's (what Caddy and a Sentinel
// config without a logging block run with), deferred-log is
// sentinel_deferred (package modules/deferredlog), which defers the
// encoding of the reverse proxy's per-request logger.
//
//	go test ./integration -run '^$' -bench ProxyPath -benchtime 20000x -count 5
func BenchmarkProxyPath(b *testing.B) {
	for _, lg := range proxyPathLogs {
		b.Run(lg.name, func(b *testing.B) {
			sc, cc := startProxyPath(b, lg.caddyLog, lg.unfold)
			const block = 64
			var sNs, cNs time.Duration
			var sAllocs, cAllocs uint64
			cpu0, gc0 := processCPU(b), gcCPU()
			b.ResetTimer()
			for done := 0; done < b.N; done += block {
				n := min(block, b.N-done)
				ns, al := sc.run(b, n)
				sNs, sAllocs = sNs+ns, sAllocs+al
				ns, al = cc.run(b, n)
				cNs, cAllocs = cNs+ns, cAllocs+al
			}
			b.StopTimer()
			cpu, gc := processCPU(b)-cpu0, gcCPU()-gc0
			perReq := func(v float64) float64 { return v / float64(b.N) }
			// The process's CPU time (user and system) per request pair:
			// both proxies, the client and the backend, and the garbage
			// collector they share (what GOGC changes).
			b.ReportMetric(perReq(float64(cpu.Microseconds())), "cpu-µs/pair")
			b.ReportMetric(perReq(gc*1e6), "gc-cpu-µs/pair")
			goal := [1]metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
			metrics.Read(goal[:])
			b.ReportMetric(float64(goal[0].Value.Uint64())/(1<<20), "heap-goal-MiB")
			b.ReportMetric(perReq(float64(sAllocs)), "sentinel-allocs/op")
			b.ReportMetric(perReq(float64(cAllocs)), "caddy-allocs/op")
			b.ReportMetric(float64(sAllocs)/float64(cAllocs), "allocs-ratio")
			b.ReportMetric(perReq(float64(sNs)), "sentinel-ns/op")
			b.ReportMetric(perReq(float64(cNs)), "caddy-ns/op")
			b.ReportMetric(float64(sNs)/float64(cNs), "ns-ratio")
		})
	}
}

// maxExtraAllocs is the number of allocations per request that a plain
// Sentinel route may add to stock Caddy's reverse proxy (issue 25), with
// the default log's encoder of BenchmarkProxyPath's sub-benchmarks: the
// one route handler more in Caddy's middleware chain (sentinel_route, a
// closure per request) and the block of the dynamic upstreams (with the
// transport's attempts record); with Caddy's log encoder, also the
// X-Real-IP header the transport sets, which the proxy's request-scoped
// logger encodes. Folded, the route guard adds nothing to the chain.
// Negative since branch perf6: the sentinel transport's direct HTTP/1.1
// round trip (modules/adaptive/direct.go) allocates about 20 fewer per
// request than net/http's transport, which stock Caddy uses (19.0, 19.3
// and 20.4 fewer when it was added); the bounds keep 3–4 of margin and
// fail if the proxy stops taking the direct round trip.
var maxExtraAllocs = map[string]float64{"caddy-log": -15, "deferred-log-unfolded": -16, "deferred-log": -17}

// TestProxyPathAllocations: a plain Sentinel route (the config of
// BenchmarkProxyPath) allocates at most maxExtraAllocs per request more
// (negative: fewer) than stock Caddy's reverse_proxy to the same backend, in the same
// process. The two run alternately in blocks of 128 requests (large enough that allocations of a block's last request finishing after it is counted move the figure little); the fewest
// allocations of a block count for each, since the process's background
// goroutines only add to some blocks.
func TestProxyPathAllocations(t *testing.T) {
	for _, lg := range proxyPathLogs {
		t.Run(lg.name, func(t *testing.T) {
			sc, cc := startProxyPath(t, lg.caddyLog, lg.unfold)
			const block, rounds = 128, 20
			minS, minC := uint64(math.MaxUint64), uint64(math.MaxUint64)
			for range rounds {
				_, s := sc.run(t, block)
				_, c := cc.run(t, block)
				minS, minC = min(minS, s), min(minC, c)
			}
			extra := (float64(minS) - float64(minC)) / block
			t.Logf("Sentinel %.2f, stock Caddy %.2f allocations per request: %.2f more", float64(minS)/block, float64(minC)/block, extra)
			// A quarter of an allocation of tolerance: a few come once every
			// so many requests (a pool refilled after a collection).
			if extra > maxExtraAllocs[lg.name]+0.25 {
				t.Errorf("a plain Sentinel route allocates %.2f per request more than stock Caddy, want ≤ %v", extra, maxExtraAllocs[lg.name])
			}
		})
	}
}

// startProxyPath starts the config of BenchmarkProxyPath (with Caddy's
// default log instead of the adapter's when caddyLog is set, with the
// route's handlers out of sentinel_route's handle when unfold is set) and
// returns warmed-up client connections to the Sentinel route and to
// stock Caddy.
func startProxyPath(tb testing.TB, caddyLog, unfold bool) (sentinel, stock *rawConn) {
	backendAddr := startCannedBackend(tb, 64)
	sentinelAddr, caddyAddr := testutil.FreeAddr(tb), testutil.FreeAddr(tb)
	kdl := withAdmin(fmt.Sprintf(`listeners { listener "main" { address %q; }; }
routes { route "r" { matches { path-prefix "/"; }; upstream "u"; }; }
upstreams { upstream "u" { target %q; }; }
`, sentinelAddr, backendAddr))
	out, _, err := kdladapter.Adapt("bench.kdl", []byte(kdl), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		tb.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		tb.Fatal(err)
	}
	// The stock Caddy server, in the same config (same process, same run).
	servers := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
	route := servers["main"].(map[string]any)["routes"].([]any)[0].(map[string]any)
	handle := route["handle"].([]any)
	guard := handle[0].(map[string]any)
	// The folded handlers: the guard's handle, or (as the adapter
	// writes them) the sentinel_routes app's entry of the route.
	folded, _ := guard["handle"].([]any)
	if guard["handle_in_app"] == true {
		app, _ := cfg["apps"].(map[string]any)["sentinel_routes"].(map[string]any)
		routes, _ := app["routes"].(map[string]any)
		folded, _ = routes["r"].([]any)
	}
	if guard["handler"] != "sentinel_route" || len(handle) != 1 || folded == nil {
		tb.Fatalf("the route's handlers are not folded into sentinel_route: %v", handle)
	}
	if unfold {
		route["handle"] = append(handle, folded...)
		delete(guard, "handle")
		delete(guard, "handle_in_app")
	}
	servers["plain"] = map[string]any{
		"listen":          []string{caddyAddr},
		"protocols":       []string{"h1"},
		"automatic_https": map[string]any{"disable": true},
		"routes": []any{map[string]any{
			"handle": []any{map[string]any{
				"handler":        "reverse_proxy",
				"upstreams":      []any{map[string]any{"dial": backendAddr}},
				"load_balancing": map[string]any{"selection_policy": map[string]any{"policy": "round_robin"}},
			}},
			"terminal": true,
		}},
	}
	if enc := cfg["logging"].(map[string]any)["logs"].(map[string]any)["default"].(map[string]any)["encoder"].(map[string]any); enc["format"] != "sentinel_deferred" {
		tb.Fatalf("the default log's encoder is %v, want sentinel_deferred", enc)
	}
	if caddyLog {
		delete(cfg, "logging")
	}
	js, _ := json.Marshal(cfg)
	tester(tb).InitServer(string(js), "json")

	sentinel, stock = dialRaw(tb, sentinelAddr), dialRaw(tb, caddyAddr)
	for range 200 { // warm up: connections to the backend, pools
		sentinel.do(tb)
		stock.do(tb)
	}
	return sentinel, stock
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCPU is the runtime's estimate of the CPU seconds the garbage
// collector has used.
func gcCPU() float64 {
	sample := [1]metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(sample[:])
	return sample[0].Value.Float64()
}

// heapAllocs is the number of heap allocations of the process so far,
// exact (runtime/metrics' count lags behind by what the Ps' caches hold;
// ReadMemStats flushes them).
func heapAllocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// run sends n requests and returns the time they took and the process's
// allocations meanwhile.
func (c *rawConn) run(tb testing.TB, n int) (time.Duration, uint64) {
	a0, t0 := heapAllocs(), time.Now()
	for range n {
		c.do(tb)
	}
	return time.Since(t0), heapAllocs() - a0
}

// rawConn is a keep-alive HTTP/1.1 client connection that sends one fixed
// request and reads the response into a reused buffer: no allocation per
// request.
type rawConn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
	buf []byte
}

func dialRaw(b testing.TB, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 8192), req: []byte("GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n"), buf: make([]byte, 8192)}
}

// do sends the request and reads the whole response, which must be a 200
// with a Content-Length.
func (c *rawConn) do(b testing.TB) {
	if _, err := c.c.Write(c.req); err != nil {
		b.Fatal(err)
	}
	length, status := -1, false
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if !status {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				b.Fatalf("response: %q", line)
			}
			status = true
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length = atoiBytes(bytes.TrimSpace(v))
		}
	}
	if length < 0 {
		b.Fatal("response without Content-Length")
	}
	if _, err := io.ReadFull(c.r, c.buf[:length]); err != nil {
		b.Fatal(err)
	}
}

// atoiBytes parses a small decimal number without allocating.
func atoiBytes(v []byte) int {
	n := 0
	for _, d := range v {
		if d < '0' || d > '9' {
			return -1
		}
		n = n*10 + int(d-'0')
	}
	return n
}

// startCannedBackend starts a loopback HTTP/1.1 backend that answers every
// request (without a body) with 200 and size bytes, allocating nothing per
// request.
func startCannedBackend(b testing.TB, size int) string {
	ln, err := net.Listen("tcp", testutil.FreeAddr(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	res := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("x"), size)))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReaderSize(c, 8192)
				for {
					// A request ends with an empty line (no bodies here).
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(res); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
