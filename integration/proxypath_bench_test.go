package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

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
//	go test ./integration -run '^$' -bench ProxyPath -benchtime 20000x -count 5
func BenchmarkProxyPath(b *testing.B) {
	backendAddr := startCannedBackend(b, 64)
	sentinelAddr, caddyAddr := freeAddr(b), freeAddr(b)
	kdl := withAdmin(fmt.Sprintf(`listeners { listener "main" { address %q; }; }
routes { route "r" { matches { path-prefix "/"; }; upstream "u"; }; }
upstreams { upstream "u" { target %q; }; }
`, sentinelAddr, backendAddr))
	out, _, err := kdladapter.Adapt("bench.kdl", []byte(kdl), os.LookupEnv, kdladapter.OSFiles{})
	if err != nil {
		b.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		b.Fatal(err)
	}
	// The stock Caddy server, in the same config (same process, same run).
	servers := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
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
	js, _ := json.Marshal(cfg)
	tester(b).InitServer(string(js), "json")

	sc, cc := dialRaw(b, sentinelAddr), dialRaw(b, caddyAddr)
	for range 200 { // warm up: connections to the backend, pools
		sc.do(b)
		cc.do(b)
	}
	const block = 64
	var sNs, cNs time.Duration
	var sAllocs, cAllocs uint64
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	allocs := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	run := func(c *rawConn, n int, ns *time.Duration, al *uint64) {
		a0, t0 := allocs(), time.Now()
		for range n {
			c.do(b)
		}
		*ns += time.Since(t0)
		*al += allocs() - a0
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		n := min(block, b.N-done)
		run(sc, n, &sNs, &sAllocs)
		run(cc, n, &cNs, &cAllocs)
	}
	b.StopTimer()
	perReq := func(v float64) float64 { return v / float64(b.N) }
	b.ReportMetric(perReq(float64(sAllocs)), "sentinel-allocs/op")
	b.ReportMetric(perReq(float64(cAllocs)), "caddy-allocs/op")
	b.ReportMetric(float64(sAllocs)/float64(cAllocs), "allocs-ratio")
	b.ReportMetric(perReq(float64(sNs)), "sentinel-ns/op")
	b.ReportMetric(perReq(float64(cNs)), "caddy-ns/op")
	b.ReportMetric(float64(sNs)/float64(cNs), "ns-ratio")
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

func dialRaw(b *testing.B, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 8192), req: []byte("GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n"), buf: make([]byte, 8192)}
}

// do sends the request and reads the whole response, which must be a 200
// with a Content-Length.
func (c *rawConn) do(b *testing.B) {
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
func startCannedBackend(b *testing.B, size int) string {
	ln, err := net.Listen("tcp", freeAddr(b))
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
