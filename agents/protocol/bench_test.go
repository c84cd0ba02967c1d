package protocol_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// BenchmarkUDSCallParallel measures request-headers calls multiplexed on
// one UDS connection to a real sdk agent (allow answers).
func BenchmarkUDSCallParallel(b *testing.B) {
	dir, err := os.MkdirTemp("", "sb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "a.sock"))
	if err != nil {
		b.Fatal(err)
	}
	benchCalls(b, ln, func(ctx context.Context) error {
		return sdk.Serve(ctx, ln, sdk.Base{}, sdk.Options{MaxConcurrency: 1000})
	},
		func() (protocol.Client, error) {
			return protocol.DialUDS(context.Background(), ln.Addr().String(), protocol.Options{PingInterval: -1})
		})
}

// BenchmarkGRPCCallParallel is the same over one gRPC stream (h2c).
func BenchmarkGRPCCallParallel(b *testing.B) {
	ln, err := net.Listen("tcp", testutil.FreeAddr(b))
	if err != nil {
		b.Fatal(err)
	}
	benchCalls(b, ln, func(ctx context.Context) error {
		return sdk.ServeGRPCListener(ctx, ln, sdk.Base{}, sdk.Options{MaxConcurrency: 1000})
	}, func() (protocol.Client, error) {
		return protocol.DialGRPC(context.Background(), "http://"+ln.Addr().String(), protocol.GRPCOptions{Options: protocol.Options{PingInterval: -1}})
	})
}

func benchCalls(b *testing.B, ln net.Listener, serve func(context.Context) error, dial func() (protocol.Client, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			corr := fmt.Sprintf("b-%d", n.Add(1))
			if _, err := c.Call(context.Background(), reqHeaders(corr, "/")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
