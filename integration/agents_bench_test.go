package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// noopAgent allows everything.
type noopAgent struct{ sdk.Base }

// agentsBenchResult is one scenario's measure: throughput under load
// and the latency of single requests.
type agentsBenchResult struct {
	rps      float64
	p50, p99 time.Duration
}

// BenchmarkAgents measures a proxied GET with no agent, one no-op agent
// over UDS, one over gRPC, three no-op UDS agents in parallel, and one
// and three agents that work 1 ms per request (work1, work3): each
// scenario runs closed-loop for SENTINEL_AGENTS_BENCH_DURATION (default
// 3s) with SENTINEL_AGENTS_BENCH_CLIENTS (default 16) keep-alive
// clients, SENTINEL_AGENTS_BENCH_RUNS times (default 3); the table gives
// the medians, the throughput ratio to no agent and the latency agents
// add. The agents run in-process on real sockets (same 2 cores as the
// proxy and the backend):
//
//	go test ./integration -run '^$' -bench BenchmarkAgents -benchtime 1x -v
func BenchmarkAgents(b *testing.B) {
	dur := agentsEnvDuration("SENTINEL_AGENTS_BENCH_DURATION", 3*time.Second)
	clients := agentsEnvInt("SENTINEL_AGENTS_BENCH_CLIENTS", 16)
	runs := agentsEnvInt("SENTINEL_AGENTS_BENCH_RUNS", 3)

	be := startTBBackend(b)
	u1 := runUDSAgent(b, noopAgent{}, protocol.EventRequestHeaders)
	u2 := runUDSAgent(b, noopAgent{}, protocol.EventRequestHeaders)
	u3 := runUDSAgent(b, noopAgent{}, protocol.EventRequestHeaders)
	g := runGRPCAgent(b, noopAgent{})
	// Agents that work 1 ms per request: parallel fan-out hides two of three.
	s1 := runUDSAgent(b, &testAgent{name: "s1", sleep: time.Millisecond})
	s2 := runUDSAgent(b, &testAgent{name: "s2", sleep: time.Millisecond})
	s3 := runUDSAgent(b, &testAgent{name: "s3", sleep: time.Millisecond})
	listen := testutil.FreeAddr(b)
	loadKDL(b, agentsKDL(listen, be, fmt.Sprintf(`
    agent "u1" { unix-socket "%s"; }
    agent "u2" { unix-socket "%s"; }
    agent "u3" { unix-socket "%s"; }
    agent "g" { grpc "http://%s"; }
    agent "s1" { unix-socket "%s"; }
    agent "s2" { unix-socket "%s"; }
    agent "s3" { unix-socket "%s"; }`, u1, u2, u3, g, s1, s2, s3), `
    filter "u1" { type "agent"; agent "u1"; }
    filter "u2" { type "agent"; agent "u2"; }
    filter "u3" { type "agent"; agent "u3"; }
    filter "g" { type "agent"; agent "g"; }
    filter "s1" { type "agent"; agent "s1"; }
    filter "s2" { type "agent"; agent "s2"; }
    filter "s3" { type "agent"; agent "s3"; }`, `
    route "none" { matches { path-prefix "/none"; }; upstream "b"; }
    route "uds" { matches { path-prefix "/uds"; }; upstream "b"; filters "u1"; }
    route "grpc" { matches { path-prefix "/grpc"; }; upstream "b"; filters "g"; }
    route "three" { matches { path-prefix "/three"; }; upstream "b"; filters "u1" "u2" "u3"; }
    route "work1" { matches { path-prefix "/work1"; }; upstream "b"; filters "s1"; }
    route "work3" { matches { path-prefix "/work3"; }; upstream "b"; filters "s1" "s2" "s3"; }`))
	scenarios := []string{"none", "uds", "grpc", "three", "work1", "work3"}
	if v := os.Getenv("SENTINEL_AGENTS_BENCH_SCENARIOS"); v != "" {
		scenarios = strings.Split(v, ",")
	}
	all := map[string][]agentsBenchResult{}
	single := map[string][]agentsBenchResult{}
	for r := 0; r < runs; r++ {
		for _, s := range scenarios {
			res := agentsLoad(b, "http://"+listen+"/"+s, clients, dur)
			all[s] = append(all[s], res)
			one := agentsLoad(b, "http://"+listen+"/"+s, 1, dur/2)
			single[s] = append(single[s], one)
			b.Logf("run %d %-5s %8.0f req/s (%d clients: p50 %v p99 %v)  1 client: p50 %v p99 %v", r+1, s, res.rps, clients, res.p50, res.p99, one.p50, one.p99)
		}
	}
	med, lat := map[string]agentsBenchResult{}, map[string]agentsBenchResult{}
	for _, s := range scenarios {
		med[s], lat[s] = medianResult(all[s]), medianResult(single[s])
	}
	base, lbase := med["none"], lat["none"]
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
	var out strings.Builder
	fmt.Fprintf(&out, "\nmedians of %d runs; throughput with %d clients, latency of 1 client (no queueing)\n\n", runs, clients)
	fmt.Fprintf(&out, "| scenario | req/s | × no agent | p50 | p99 | added p50 | added p99 |\n|---|---|---|---|---|---|---|\n")
	for _, s := range scenarios {
		m, l := med[s], lat[s]
		fmt.Fprintf(&out, "| %s | %.0f | %.2f | %s | %s | %s | %s |\n", s, m.rps, m.rps/base.rps,
			us(l.p50), us(l.p99), us(l.p50-lbase.p50), us(l.p99-lbase.p99))
	}
	for _, pair := range [][2]string{{"uds", "three"}, {"work1", "work3"}} {
		one := lat[pair[0]].p50 - lbase.p50
		three := lat[pair[1]].p50 - lbase.p50
		if one > 0 {
			fmt.Fprintf(&out, "\n%s (3 agents in parallel) adds %.2f × the p50 latency of %s (1 agent) (target < 1.5)", pair[1], float64(three)/float64(one), pair[0])
		}
	}
	out.WriteString("\n")
	b.Log(out.String())
	for _, s := range scenarios {
		b.ReportMetric(med[s].rps, s+"-req/s")
	}
	if p := os.Getenv("SENTINEL_AGENTS_BENCH_OUT"); p != "" {
		_ = os.WriteFile(p, []byte(out.String()), 0o644)
	}
}

// agentsLoad runs closed-loop GETs for d and returns throughput and
// latency percentiles.
func agentsLoad(b *testing.B, url string, clients int, d time.Duration) agentsBenchResult {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// Warm up the connections.
	for i := 0; i < clients; i++ {
		if res, err := c.Get(url); err == nil {
			res.Body.Close()
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			buf := make([]byte, 512)
			for time.Now().Before(stop) {
				t0 := time.Now()
				res, err := c.Get(url)
				if err != nil {
					errs.Add(1)
					continue
				}
				for {
					if _, err := res.Body.Read(buf); err != nil {
						break
					}
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := errs.Load(); n > 0 {
		b.Fatalf("%s: %d failed requests", url, n)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		b.Fatalf("%s: no request completed", url)
	}
	return agentsBenchResult{
		rps: float64(len(lat)) / elapsed.Seconds(),
		p50: lat[len(lat)/2],
		p99: lat[len(lat)*99/100],
	}
}

// medianResult takes the median of each figure.
func medianResult(rs []agentsBenchResult) agentsBenchResult {
	rps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	for i, r := range rs {
		rps[i], p50[i], p99[i] = r.rps, r.p50, r.p99
	}
	sort.Float64s(rps)
	sort.Slice(p50, func(i, j int) bool { return p50[i] < p50[j] })
	sort.Slice(p99, func(i, j int) bool { return p99[i] < p99[j] })
	return agentsBenchResult{rps: rps[len(rs)/2], p50: p50[len(rs)/2], p99: p99[len(rs)/2]}
}

// startTBBackend is a minimal loopback backend for benchmarks.
func startTBBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func agentsEnvDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func agentsEnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
