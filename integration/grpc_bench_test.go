package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// latencies collects per-call durations from parallel benchmark
// goroutines and reports throughput and p50/p99.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// report adds ops/s, p50 and p99 (µs) to the benchmark's results.
func (l *latencies) report(b *testing.B, unit string, elapsed time.Duration) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	pct := func(p float64) float64 {
		return float64(l.all[min(len(l.all)-1, int(float64(len(l.all))*p))].Microseconds())
	}
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), unit+"/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// parallelCalls runs call b.N times in total from clients×GOMAXPROCS
// goroutines and reports ops/s and latency percentiles.
func parallelCalls(b *testing.B, clients int, unit string, call func() error) {
	var l latencies
	b.SetParallelism(clients)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		l.add(mine)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	l.report(b, unit, elapsed)
}

// BenchmarkGRPCUnary compares unary RPCs called directly on a grpc-go
// server with the same RPCs through Sentinel (h2c client → h2c upstream),
// from 16 concurrent callers per GOMAXPROCS on one connection:
//
//	go test ./integration -run '^$' -bench GRPCUnary -benchtime 3s -count 3
func BenchmarkGRPCUnary(b *testing.B) {
	backend := startGRPCBackend(b, "bench", nil)
	listen := testutil.FreeAddr(b)
	loadKDL(b, grpcKDL(listen, "h2", "", fmt.Sprintf("target %q\n        http-version { min-version 2; max-version 2; }", backend.addr)))
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 64)}}
	for _, tc := range []struct{ name, addr string }{{"direct", backend.addr}, {"sentinel", listen}} {
		b.Run(tc.name, func(b *testing.B) {
			client := testpb.NewTestServiceClient(grpcDial(b, tc.addr, false))
			ctx := context.Background()
			if _, err := client.UnaryCall(ctx, req); err != nil { // connect
				b.Fatal(err)
			}
			parallelCalls(b, 16, "rpc", func() error {
				_, err := client.UnaryCall(ctx, req)
				return err
			})
		})
	}
}
