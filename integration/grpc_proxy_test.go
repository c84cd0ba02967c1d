package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// grpcKDL is a config proxying gRPC by service: TestService, Health and
// reflection to the upstream "grpc", anything else unmatched (a JSON 404,
// which gRPC clients see as UNIMPLEMENTED).
func grpcKDL(listen, protocol, listenerTLS, upstream string) string {
	return fmt.Sprintf(`
system { }
listeners {
    listener "grpc" {
        address %q
        protocol %q
        %s
    }
}
routes {
    route "test-service" {
        matches { path-prefix "/grpc.testing.TestService/"; }
        upstream "grpc"
    }
    route "health-and-reflection" {
        matches {
            path-prefix "/grpc.health.v1.Health/"
            path-prefix "/grpc.reflection.v1.ServerReflection/"
            path-prefix "/grpc.reflection.v1alpha.ServerReflection/"
        }
        upstream "grpc"
    }
}
upstreams {
    upstream "grpc" {
        %s
    }
}
`, listen, protocol, listenerTLS, upstream)
}

// TestGRPCProxy runs all four RPC kinds, deadlines, cancellation,
// trailers, large messages and reflection through Sentinel: h2c client →
// h2c upstream, and TLS client → TLS upstream.
func TestGRPCProxy(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "localhost", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		protocol    string
		listenerTLS string
		backendTLS  *tls.Config
		upstream    func(addr string) string
	}{
		{
			name: "h2c", protocol: "h2",
			upstream: func(addr string) string {
				return fmt.Sprintf("target %q\n        http-version { min-version 2; max-version 2; }", addr)
			},
		},
		{
			name: "tls", protocol: "https",
			listenerTLS: fmt.Sprintf("tls { cert-file %q; key-file %q; }", cert, key),
			backendTLS:  &tls.Config{Certificates: []tls.Certificate{pair}},
			upstream: func(addr string) string {
				return fmt.Sprintf("target %q\n        tls { ca-cert %q; }\n        http-version { min-version 2; max-version 2; }", addr, cert)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startGRPCBackend(t, "b1", tc.backendTLS)
			listen := testutil.FreeAddr(t)
			loadKDL(t, grpcKDL(listen, tc.protocol, tc.listenerTLS, tc.upstream(b.addr)))
			conn := grpcDial(t, listen, tc.backendTLS != nil)
			client := testpb.NewTestServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			t.Run("unary", func(t *testing.T) {
				var hdr metadata.MD
				res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}, grpc.Header(&hdr))
				if err != nil || string(res.GetPayload().GetBody()) != "ping" || res.GetServerId() != "b1" {
					t.Fatalf("%v %v", res, err)
				}
				if got := hdr.Get("x-backend"); len(got) != 1 || got[0] != "b1" {
					t.Errorf("header metadata %v", hdr)
				}
			})

			t.Run("server streaming, delivered message by message", func(t *testing.T) {
				stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
					Payload:            &testpb.Payload{Body: []byte(bodyGated)},
					ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 100}, {Size: 100000}, {Size: 3}},
				})
				if err != nil {
					t.Fatal(err)
				}
				for i, size := range []int{1, 100, 100000, 3} {
					res, err := stream.Recv()
					if err != nil || len(res.GetPayload().GetBody()) != size {
						t.Fatalf("message %d: %v", i, err)
					}
					b.gate <- struct{}{} // the server sends the next one only now
				}
				if _, err := stream.Recv(); err != io.EOF {
					t.Fatalf("end of stream: %v", err)
				}
				<-b.gate
			})

			t.Run("client streaming", func(t *testing.T) {
				stream, err := client.StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range []int{10, 2000, 30000, 1} {
					if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
						t.Fatal(err)
					}
				}
				res, err := stream.CloseAndRecv()
				if err != nil || res.GetAggregatedPayloadSize() != 32011 {
					t.Fatalf("%v %v", res, err)
				}
			})

			t.Run("bidirectional ping-pong", func(t *testing.T) {
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// Each answer must arrive before the next request is sent:
				// nothing is buffered either way.
				for i := 1; i <= 20; i++ {
					if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i)}}}); err != nil {
						t.Fatal(err)
					}
					res, err := stream.Recv()
					if err != nil || len(res.GetPayload().GetBody()) != i {
						t.Fatalf("round %d: %v", i, err)
					}
				}
				if err := stream.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if _, err := stream.Recv(); err != io.EOF {
					t.Fatalf("end of stream: %v", err)
				}
			})

			t.Run("server ends a bidirectional stream with a status", func(t *testing.T) {
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
				stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(bodyFail)}})
				_, err = stream.Recv()
				if st := status.Convert(err); st.Code() != codes.Aborted || st.Message() != "server gave up" {
					t.Fatalf("got %v", err)
				}
			})

			t.Run("trailers: status, message and metadata", func(t *testing.T) {
				var hdr, trl metadata.MD
				_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{
					Code: int32(codes.ResourceExhausted), Message: "quota: 100% used — retry later",
				}}, grpc.Header(&hdr), grpc.Trailer(&trl))
				st := status.Convert(err)
				if st.Code() != codes.ResourceExhausted || st.Message() != "quota: 100% used — retry later" {
					t.Errorf("status %v", st)
				}
				if strings.Join(trl.Get("x-trailer"), ",") != "t1,t2" || strings.Join(trl.Get("x-bin-bin"), "") != "\x00\xff" {
					t.Errorf("trailer metadata %v", trl)
				}
				if strings.Join(hdr.Get("x-backend"), "") != "b1" {
					t.Errorf("header metadata %v", hdr)
				}
			})

			t.Run("large messages", func(t *testing.T) {
				const size = 4 << 20
				res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{
					ResponseSize: size, Payload: &testpb.Payload{Body: make([]byte, size)},
				})
				if err != nil || len(res.GetPayload().GetBody()) != size {
					t.Fatalf("%d bytes, %v", len(res.GetPayload().GetBody()), err)
				}
				stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
					ResponseParameters: []*testpb.ResponseParameters{{Size: size}, {Size: size}},
				})
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 2; i++ {
					if res, err := stream.Recv(); err != nil || len(res.GetPayload().GetBody()) != size {
						t.Fatalf("stream message %d: %v", i, err)
					}
				}
			})

			t.Run("deadline exceeded", func(t *testing.T) {
				dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer dcancel()
				start := time.Now()
				_, err := client.UnaryCall(dctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(bodySleep)}})
				if status.Code(err) != codes.DeadlineExceeded {
					t.Fatalf("got %v, want DeadlineExceeded", err)
				}
				if el := time.Since(start); el > 2*time.Second {
					t.Errorf("took %v", el)
				}
				// grpc-timeout reached the server, whose context ended.
				select {
				case left := <-b.deadline:
					if left <= 0 || left > 300*time.Millisecond {
						t.Errorf("server deadline %v, want ≤ 300ms", left)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("server never got the call")
				}
				if err := waitErr(t, "the server's context to end", b.ended); err == nil {
					t.Error("server context not ended")
				}
			})

			t.Run("client cancels mid-stream", func(t *testing.T) {
				cctx, ccancel := context.WithCancel(ctx)
				stream, err := client.FullDuplexCall(cctx)
				if err != nil {
					t.Fatal(err)
				}
				stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 5}}})
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
				ccancel()
				if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
					t.Errorf("client got %v", err)
				}
				if err := waitErr(t, "the server to see the cancellation", b.ended); !errors.Is(err, context.Canceled) {
					t.Errorf("server saw %v, want context.Canceled", err)
				}
			})

			t.Run("reflection passes through", func(t *testing.T) {
				stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
					t.Fatal(err)
				}
				res, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, s := range res.GetListServicesResponse().GetService() {
					names = append(names, s.GetName())
				}
				if got := strings.Join(names, ","); !strings.Contains(got, "grpc.testing.TestService") || !strings.Contains(got, "grpc.health.v1.Health") {
					t.Errorf("services %q", got)
				}
				// A file descriptor request, answered with the descriptors.
				stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
					FileContainingSymbol: "grpc.testing.TestService",
				}})
				if res, err := stream.Recv(); err != nil || len(res.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
					t.Errorf("file descriptors: %v %v", res, err)
				}
				stream.CloseSend()
			})

			t.Run("health service through the proxy", func(t *testing.T) {
				res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "grpc.testing.TestService"})
				if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("%v %v", res, err)
				}
			})

			t.Run("unrouted service is UNIMPLEMENTED", func(t *testing.T) {
				err := conn.Invoke(ctx, "/other.Service/Method", &testpb.Empty{}, &testpb.Empty{})
				if status.Code(err) != codes.Unimplemented {
					t.Errorf("got %v", err)
				}
			})
		})
	}
}

// TestGRPCHealthCheck takes a target out when its grpc.health.v1 status
// turns NOT_SERVING, and brings it back when it serves again.
func TestGRPCHealthCheck(t *testing.T) {
	b1, b2 := startGRPCBackend(t, "b1", nil), startGRPCBackend(t, "b2", nil)
	listen := testutil.FreeAddr(t)
	loadKDL(t, grpcKDL(listen, "h2", "", fmt.Sprintf(`target %q
        target %q
        load-balancing "round-robin"
        http-version { min-version 2; max-version 2; }
        health-check {
            type "grpc" { service "grpc.testing.TestService"; }
            interval-secs 1
            timeout-secs 1
            unhealthy-threshold 1
            healthy-threshold 1
        }`, b1.addr, b2.addr)))
	client := testpb.NewTestServiceClient(grpcDial(t, listen, false))
	servedBy := func(n int) map[string]int {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			cancel()
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			seen[res.GetServerId()]++
		}
		return seen
	}
	if seen := servedBy(10); seen["b1"] == 0 || seen["b2"] == 0 {
		t.Fatalf("both targets should serve at first: %v", seen)
	}

	b2.health.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_NOT_SERVING)
	start := time.Now()
	eventually(t, "b2 to be taken out", func() bool { return servedBy(4)["b2"] == 0 })
	t.Logf("b2 taken out after %v", time.Since(start).Round(100*time.Millisecond))
	if seen := servedBy(20); seen["b2"] != 0 {
		t.Fatalf("traffic still reaches the NOT_SERVING target: %v", seen)
	}

	b2.health.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
	eventually(t, "b2 to come back", func() bool { return servedBy(4)["b2"] > 0 })
}
