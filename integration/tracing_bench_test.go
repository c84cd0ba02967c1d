package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// countingReceiver is an OTLP/gRPC receiver that only counts spans.
type countingReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (c *countingReceiver) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// BenchmarkTracing compares, in the same run and process, one HTTP/1.1
// request proxied by a plain Sentinel route (the route of
// BenchmarkProxyPath) on a server with tracing on and on a copy of that
// server without the tracing handlers (so without a span or a trace
// context: tracing off for its requests, though the app is configured).
// unsampled has a sampling rate of 0 (a trace context and traceparent,
// no span); sampled traces every request (3 spans: request, selection,
// attempt, exported over OTLP/gRPC to an in-process receiver that counts
// them, whose work counts too). The two servers run alternately in
// blocks of 64 requests; the ratios are traced ÷ untraced.
//
//	go test ./integration -run '^$' -bench Tracing -benchtime 20000x -count 3
func BenchmarkTracing(b *testing.B) {
	ln, err := net.Listen("tcp", testutil.FreeAddr(b))
	if err != nil {
		b.Fatal(err)
	}
	recv := new(countingReceiver)
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, recv)
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(srv.Stop)
	backendAddr := startCannedBackend(b, 64)
	for _, v := range []struct {
		name string
		rate string
	}{{"unsampled", "0.0"}, {"sampled", "1.0"}} {
		b.Run(v.name, func(b *testing.B) {
			traced, plain := testutil.FreeAddr(b), testutil.FreeAddr(b)
			kdl := withAdmin(fmt.Sprintf(`listeners { listener "main" { address %q; }; }
observability { tracing { backend "otlp" { endpoint "http://%s"; }; sampling-rate %s; } }
routes { route "r" { matches { path-prefix "/"; }; upstream "u"; }; }
upstreams { upstream "u" { target %q; }; }
`, traced, ln.Addr(), v.rate, backendAddr))
			out, _, err := kdladapter.Adapt("bench.kdl", []byte(kdl), os.LookupEnv, kdladapter.OSFiles{})
			if err != nil {
				b.Fatal(err)
			}
			var cfg map[string]any
			if err := json.Unmarshal(out, &cfg); err != nil {
				b.Fatal(err)
			}
			servers := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
			// The copy without the tracing handlers (the server's first
			// route, the route's first handler).
			var cp map[string]any
			raw, _ := json.Marshal(servers["main"])
			_ = json.Unmarshal(raw, &cp)
			routes := cp["routes"].([]any)
			if h := routes[0].(map[string]any)["handle"].([]any)[0].(map[string]any); h["handler"] != "sentinel_tracing" {
				b.Fatalf("first route: %v", routes[0])
			}
			routes = routes[1:]
			r := routes[0].(map[string]any)
			handle := r["handle"].([]any)
			if h := handle[0].(map[string]any); h["handler"] != "sentinel_tracing" {
				b.Fatalf("route: %v", handle)
			}
			r["handle"] = handle[1:]
			cp["routes"] = routes
			cp["listen"] = []string{plain}
			servers["plain"] = cp
			js, _ := json.Marshal(cfg)
			tester(b).InitServer(string(js), "json")

			tc, pc := dialRaw(b, traced), dialRaw(b, plain)
			for range 200 {
				tc.do(b)
				pc.do(b)
			}
			spans0 := recv.spans.Load()
			const block = 64
			var tNs, pNs time.Duration
			var tAllocs, pAllocs uint64
			b.ResetTimer()
			for done := 0; done < b.N; done += block {
				n := min(block, b.N-done)
				ns, al := tc.run(b, n)
				tNs, tAllocs = tNs+ns, tAllocs+al
				ns, al = pc.run(b, n)
				pNs, pAllocs = pNs+ns, pAllocs+al
			}
			b.StopTimer()
			perReq := func(v float64) float64 { return v / float64(b.N) }
			b.ReportMetric(perReq(float64(tNs)), "traced-ns/op")
			b.ReportMetric(perReq(float64(pNs)), "untraced-ns/op")
			b.ReportMetric(float64(tNs)/float64(pNs), "ns-ratio")
			b.ReportMetric(perReq(float64(tAllocs)), "traced-allocs/op")
			b.ReportMetric(perReq(float64(pAllocs)), "untraced-allocs/op")
			if v.name == "sampled" {
				deadline := time.Now().Add(10 * time.Second)
				for recv.spans.Load()-spans0 < 3*int64(b.N) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				b.ReportMetric(perReq(float64(recv.spans.Load()-spans0)), "spans/op")
			}
		})
	}
}
