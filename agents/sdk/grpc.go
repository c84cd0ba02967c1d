package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	agentpb "github.com/sentinel-proxy/sentinel/agents/protocol/proto"
)

// ServeGRPC listens on addr (host:port) and serves h over gRPC v2 until
// ctx ends. Both proto packages are served unless opts.GRPCPackages says
// otherwise; opts.TLS enables TLS (mTLS with ClientAuth/ClientCAs).
func ServeGRPC(ctx context.Context, addr string, h Handler, opts Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for gRPC on %s: %w", addr, err)
	}
	return ServeGRPCListener(ctx, ln, h, opts)
}

// ServeGRPCListener is ServeGRPC on an existing listener.
func ServeGRPCListener(ctx context.Context, ln net.Listener, h Handler, opts Options) error {
	opts = opts.withDefaults()
	var sopts []grpc.ServerOption
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	srv := grpc.NewServer(sopts...)
	protocol.RegisterGRPCService(srv, &grpcServer{h: h, opts: opts}, opts.GRPCPackages...)
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		srv.Stop()
		<-errCh
		return nil
	case err := <-errCh:
		if err != nil {
			return fmt.Errorf("serving gRPC agent: %w", err)
		}
		return nil
	}
}

type grpcServer struct {
	agentpb.UnimplementedAgentServiceV2Server
	h    Handler
	opts Options
}

// Interface guard.
var _ agentpb.AgentServiceV2Server = (*grpcServer)(nil)

type grpcPeer struct {
	stream agentpb.AgentServiceV2_ProcessStreamServer
	mu     sync.Mutex
}

func (p *grpcPeer) send(m *agentpb.AgentToProxy) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stream.Send(m)
}

func (p *grpcPeer) sendFlow(f protocol.FlowControl) error {
	return p.send(&agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_FlowControl{FlowControl: &agentpb.FlowControlSignal{
		Action: int32(f.Action), TimestampMs: f.TimestampMs,
	}}})
}

func (p *grpcPeer) sendHealth(h protocol.HealthStatus) error {
	msg := h.Message
	return p.send(&agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Health{Health: &agentpb.HealthStatus{
		AgentId: h.AgentID, State: int32(h.State), Message: &msg, TimestampMs: h.TimestampMs,
	}}})
}

func (s *grpcServer) handshake(ctx context.Context, hs *agentpb.HandshakeRequest) *agentpb.HandshakeResponse {
	resp := &agentpb.HandshakeResponse{ProtocolVersion: protocol.ProtocolVersion, Success: true, Capabilities: protocol.CapabilitiesToPB(s.opts.Capabilities())}
	if len(hs.GetSupportedVersions()) > 0 && !containsVersion(hs.GetSupportedVersions()) {
		msg := fmt.Sprintf("unsupported protocol versions %v", hs.GetSupportedVersions())
		resp.Success, resp.Error = false, &msg
		return resp
	}
	if cfg := hs.GetConfigJson(); cfg != "" && cfg != "{}" && cfg != "null" {
		if err := s.h.OnConfigure(ctx, &protocol.Configure{Config: json.RawMessage(cfg)}); err != nil {
			msg := "configuration rejected: " + err.Error()
			resp.Success, resp.Error = false, &msg
		}
	}
	return resp
}

// ProcessStream serves one proxy stream: handshake first (events before it
// are ignored), then one response per event (handled concurrently), pong
// for ping; cancel and configure get no reply (as the Rust server).
func (s *grpcServer) ProcessStream(stream agentpb.AgentServiceV2_ProcessStreamServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	p := &grpcPeer{stream: stream}
	d := newDispatcher(s.h, s.opts)
	shaken := false
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		if hs := m.GetHandshake(); hs != nil {
			resp := s.handshake(ctx, hs)
			if err := p.send(&agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Handshake{Handshake: resp}}); err != nil {
				return err
			}
			if !resp.GetSuccess() {
				return nil
			}
			if !shaken {
				shaken = true
				s.opts.Controller.add(p)
				defer s.opts.Controller.remove(p)
			}
			continue
		}
		if !shaken {
			s.opts.Logger.Warn("event before handshake ignored")
			continue
		}
		switch {
		case m.GetPing() != nil:
			pg := m.GetPing()
			if err := p.send(&agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Pong{Pong: &agentpb.Pong{
				Sequence: pg.GetSequence(), PingTimestampMs: pg.GetTimestampMs(), TimestampMs: nowMs(),
			}}}); err != nil {
				return err
			}
		case m.GetCancel() != nil:
			c := m.GetCancel()
			d.cancel(ctx, &protocol.Cancel{CorrelationID: c.GetCorrelationId(), Reason: protocol.CancelReason(c.GetReason() - 1), TimestampMs: c.GetTimestampMs()})
		case m.GetConfigure() != nil:
			ev := protocol.EventFromPB(m)
			if err := s.h.OnConfigure(ctx, ev.(*protocol.Configure)); err != nil {
				s.opts.Logger.Warn("configuration rejected", zap.Error(err))
			}
		default:
			ev := protocol.EventFromPB(m)
			if ev == nil {
				continue
			}
			if !d.spawn(ctx, &wg, func() {
				resp := d.handle(ctx, ev)
				if err := p.send(&agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Response{Response: protocol.ResponseToPB(ev.Correlation(), resp)}}); err != nil {
					s.opts.Logger.Debug("sending response", zap.Error(err))
				}
			}) {
				return nil
			}
		}
	}
}

// ProcessEvent answers one event (unary): handshake, events, ping.
func (s *grpcServer) ProcessEvent(ctx context.Context, m *agentpb.ProxyToAgent) (*agentpb.AgentToProxy, error) {
	if hs := m.GetHandshake(); hs != nil {
		return &agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Handshake{Handshake: s.handshake(ctx, hs)}}, nil
	}
	if pg := m.GetPing(); pg != nil {
		return &agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Pong{Pong: &agentpb.Pong{Sequence: pg.GetSequence(), PingTimestampMs: pg.GetTimestampMs(), TimestampMs: uint64(time.Now().UnixMilli())}}}, nil
	}
	ev := protocol.EventFromPB(m)
	if ev == nil {
		return nil, status.Error(codes.InvalidArgument, "message is not an event")
	}
	resp := newDispatcher(s.h, s.opts).handle(ctx, ev)
	return &agentpb.AgentToProxy{Message: &agentpb.AgentToProxy_Response{Response: protocol.ResponseToPB(ev.Correlation(), resp)}}, nil
}
