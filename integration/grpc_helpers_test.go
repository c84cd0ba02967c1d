package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// maxMsg is the message size limit of the test servers and clients, above
// gRPC's 4 MiB default so that 4 MiB payloads fit.
const maxMsg = 64 << 20

// Payload bodies that select a behavior of the test service.
const (
	bodySleep = "sleep" // UnaryCall: block until the call's context ends
	bodyGated = "gated" // StreamingOutputCall: wait for the gate between messages
	bodyFail  = "fail"  // FullDuplexCall: end the stream with ABORTED
)

// grpcBackend is a real grpc-go server on loopback running the
// grpc.testing.TestService, the grpc.health.v1 health service and server
// reflection.
type grpcBackend struct {
	name   string
	addr   string
	srv    *grpc.Server
	health *health.Server
	calls  atomic.Int64

	// ended receives the error of server-side contexts that ended before
	// the RPC did (deadline or cancellation seen by the server).
	ended chan error
	// deadline receives the time left of a sleeping call's context when
	// it started.
	deadline chan time.Duration
	// gate lets a gated stream send its next message.
	gate chan struct{}
}

// startGRPCBackend starts a backend; with a non-nil tlsCfg it serves TLS,
// else h2c.
func startGRPCBackend(t testing.TB, name string, tlsCfg *tls.Config) *grpcBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg)}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	b := &grpcBackend{
		name: name, addr: l.Addr().String(), srv: grpc.NewServer(opts...), health: health.NewServer(),
		ended: make(chan error, 16), deadline: make(chan time.Duration, 16), gate: make(chan struct{}, 16),
	}
	testpb.RegisterTestServiceServer(b.srv, &testService{b: b})
	healthpb.RegisterHealthServer(b.srv, b.health)
	b.health.SetServingStatus(testpb.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(b.srv)
	go b.srv.Serve(l)
	t.Cleanup(b.srv.Stop)
	return b
}

// testService implements grpc.testing.TestService for the tests.
type testService struct {
	testpb.UnimplementedTestServiceServer
	b *grpcBackend
}

func (s *testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.b.calls.Add(1)
	return &testpb.Empty{}, nil
}

// UnaryCall echoes the payload, or answers ResponseSize bytes, or fails
// with ResponseStatus (with header and trailer metadata), or sleeps.
func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.b.calls.Add(1)
	grpc.SetHeader(ctx, metadata.Pairs("x-backend", s.b.name))
	if string(req.GetPayload().GetBody()) == bodySleep {
		if d, ok := ctx.Deadline(); ok {
			s.b.deadline <- time.Until(d)
		} else {
			s.b.deadline <- 0
		}
		select {
		case <-ctx.Done():
			s.b.ended <- ctx.Err()
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-time.After(10 * time.Second):
			return nil, status.Error(codes.Internal, "the call was never canceled")
		}
	}
	if st := req.GetResponseStatus(); st != nil {
		grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1", "x-trailer", "t2", "x-bin-bin", "\x00\xff"))
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	res := &testpb.SimpleResponse{ServerId: s.b.name, Payload: req.GetPayload()}
	if n := req.GetResponseSize(); n > 0 {
		res.Payload = &testpb.Payload{Body: bytes.Repeat([]byte{'r'}, int(n))}
	}
	return res, nil
}

// StreamingOutputCall sends one message per response parameter.
func (s *testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	s.b.calls.Add(1)
	gated := string(req.GetPayload().GetBody()) == bodyGated
	for i, p := range req.GetResponseParameters() {
		if gated && i > 0 {
			select {
			case <-s.b.gate:
			case <-stream.Context().Done():
				s.b.ended <- stream.Context().Err()
				return stream.Context().Err()
			case <-time.After(5 * time.Second):
				return status.Error(codes.DeadlineExceeded, "gate not opened: the previous message was not delivered")
			}
		}
		if d := p.GetIntervalUs(); d > 0 {
			time.Sleep(time.Duration(d) * time.Microsecond)
		}
		body := bytes.Repeat([]byte{byte('a' + i%26)}, int(p.GetSize()))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall adds up the payload sizes it receives.
func (s *testService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	s.b.calls.Add(1)
	var total int32
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: total})
		}
		if err != nil {
			return err
		}
		total += int32(len(req.GetPayload().GetBody()))
	}
}

// FullDuplexCall answers each request at once, ends with ABORTED on a
// "fail" request, and reports a cancellation by the client.
func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	s.b.calls.Add(1)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctxErr := stream.Context().Err(); ctxErr != nil {
				s.b.ended <- ctxErr
			}
			return err
		}
		if string(req.GetPayload().GetBody()) == bodyFail {
			return status.Error(codes.Aborted, "server gave up")
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: bytes.Repeat([]byte{'d'}, int(p.GetSize()))}}); err != nil {
				return err
			}
		}
	}
}

// grpcDial connects a gRPC client to addr: h2c, or TLS trusting any
// certificate.
func grpcDial(t testing.TB, addr string, useTLS bool) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificates
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitErr waits for a value on ch.
func waitErr(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}
