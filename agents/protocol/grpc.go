package protocol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	agentpb "github.com/sentinel-proxy/sentinel/agents/protocol/proto"
)

// GRPC package names (the package is part of the method path).
const (
	// PackageSentinel is the Sentinel-era proto package.
	PackageSentinel = "sentinel.agent.v2"
	// PackageZentinel is the Zentinel-era proto package.
	PackageZentinel = "zentinel.agent.v2"
)

// ProcessStreamMethod returns the full method name of ProcessStream in pkg.
func ProcessStreamMethod(pkg string) string { return "/" + pkg + ".AgentServiceV2/ProcessStream" }

// GRPCOptions configure DialGRPC.
type GRPCOptions struct {
	Options
	// Package is the proto package to call first (default PackageSentinel);
	// on codes.Unimplemented the client falls back to the other one.
	Package string
	// TLS enables TLS for a target without scheme (an "https://" target
	// implies it, "http://" means plaintext h2c).
	TLS bool
	// CAFile is a PEM CA bundle to verify the agent (default: system roots).
	CAFile string
	// CertFile is the client certificate (PEM) for mTLS.
	CertFile string
	// KeyFile is the client key (PEM) for mTLS.
	KeyFile string
	// ServerName overrides the TLS server name.
	ServerName string
	// InsecureSkipVerify disables certificate verification (KDL tls-insecure).
	InsecureSkipVerify bool
}

// transportCredentials builds the credentials for target and returns the
// target without its http(s):// scheme.
func (o GRPCOptions) transportCredentials(target string) (credentials.TransportCredentials, string, error) {
	useTLS := o.TLS
	switch {
	case strings.HasPrefix(target, "http://"):
		target, useTLS = strings.TrimPrefix(target, "http://"), false
	case strings.HasPrefix(target, "https://"):
		target, useTLS = strings.TrimPrefix(target, "https://"), true
	}
	target = strings.TrimSuffix(target, "/")
	if !useTLS {
		return insecure.NewCredentials(), target, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // tls-insecure is an explicit opt-in
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("reading agent CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("agent CA file %s: no PEM certificates", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("loading agent client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), target, nil
}

var processStreamDesc = grpc.StreamDesc{StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true}

// DialGRPC connects to a gRPC v2 agent at target ("http://host:port" =
// h2c, "https://host:port" = TLS, "host:port" = TLS iff opts.TLS), opens
// one ProcessStream, runs the handshake (opts.Config travels in
// HandshakeRequest.config_json; the agent refusing it fails the handshake)
// and returns the running client. The stream is first opened under
// opts.Package (default sentinel.agent.v2); if the agent answers
// Unimplemented the other package is tried. Info().GRPCPackage tells which
// one answered.
func DialGRPC(ctx context.Context, target string, opts GRPCOptions) (Client, error) {
	opts.Options = opts.Options.withDefaults()
	creds, addr, err := opts.transportCredentials(target)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("creating gRPC client for agent %s: %w", target, err)
	}
	first := opts.Package
	if first == "" {
		first = PackageSentinel
	}
	second := PackageZentinel
	if first == PackageZentinel {
		second = PackageSentinel
	}
	var lastErr error
	for _, pkg := range []string{first, second} {
		c, err := grpcHandshake(ctx, cc, pkg, target, opts)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if status.Code(err) != codes.Unimplemented {
			break
		}
		opts.Logger.Debug("agent does not implement gRPC package, trying the other", zap.String("package", pkg))
	}
	_ = cc.Close()
	return nil, lastErr
}

// grpcStatusError keeps the gRPC status visible to status.Code through wrapping.
type grpcStatusError struct {
	msg string
	st  error
}

// Error returns the message.
func (e *grpcStatusError) Error() string { return e.msg }

// Unwrap exposes ErrHandshake and the gRPC status error.
func (e *grpcStatusError) Unwrap() []error {
	return []error{ErrHandshake, e.st}
}

// GRPCStatus lets status.Code see the wrapped status.
func (e *grpcStatusError) GRPCStatus() *status.Status { return status.Convert(e.st) }

func grpcHandshake(ctx context.Context, cc *grpc.ClientConn, pkg, target string, opts GRPCOptions) (*client, error) {
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := cc.NewStream(sctx, &processStreamDesc, ProcessStreamMethod(pkg))
	if err != nil {
		cancel()
		return nil, &grpcStatusError{msg: fmt.Sprintf("%v: opening %s stream to %s: %v", ErrHandshake, pkg, target, err), st: err}
	}
	cfg := string(opts.Config)
	if cfg == "" {
		cfg = "{}"
	}
	hs := &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Handshake{Handshake: &agentpb.HandshakeRequest{
		SupportedVersions: []uint32{ProtocolVersion}, ProxyId: opts.ProxyID, ProxyVersion: opts.ProxyVersion, ConfigJson: cfg,
	}}}
	type res struct {
		m   *agentpb.AgentToProxy
		err error
	}
	ch := make(chan res, 1)
	go func() {
		if err := stream.SendMsg(hs); err != nil {
			// the real error (e.g. Unimplemented) is reported by RecvMsg
			_ = err
		}
		m := new(agentpb.AgentToProxy)
		err := stream.RecvMsg(m)
		ch <- res{m, err}
	}()
	timer := time.NewTimer(opts.HandshakeTimeout)
	defer timer.Stop()
	var r res
	select {
	case r = <-ch:
	case <-timer.C:
		cancel()
		<-ch
		return nil, fmt.Errorf("%w: no handshake response from %s (%s) within %s", ErrHandshake, target, pkg, opts.HandshakeTimeout)
	case <-ctx.Done():
		cancel()
		<-ch
		return nil, fmt.Errorf("%w: %s: %w", ErrHandshake, target, ctx.Err())
	}
	if r.err != nil {
		cancel()
		return nil, &grpcStatusError{msg: fmt.Sprintf("%v: %s (%s): %v", ErrHandshake, target, pkg, r.err), st: r.err}
	}
	resp := r.m.GetHandshake()
	if resp == nil {
		cancel()
		return nil, fmt.Errorf("%w: %s answered the handshake with %T", ErrHandshake, target, r.m.GetMessage())
	}
	if !resp.GetSuccess() {
		cancel()
		return nil, fmt.Errorf("%w: agent %s refused: %s", ErrHandshake, target, resp.GetError())
	}
	info := AgentInfo{
		Dialect: DialectGRPC, Transport: "grpc", Address: target, GRPCPackage: pkg,
		ProtocolVersion: resp.GetProtocolVersion(), Encoding: "protobuf",
		Capabilities: CapabilitiesFromPB(resp.GetCapabilities()),
	}
	tr := &grpcTransport{stream: stream, cancel: cancel, cc: cc, log: opts.Logger}
	return newClient(tr, info, opts.Options), nil
}

type grpcTransport struct {
	stream grpc.ClientStream
	cancel context.CancelFunc
	cc     *grpc.ClientConn
	log    *zap.Logger
	once   sync.Once
}

func (t *grpcTransport) encode(m *outMsg) (any, error) {
	switch m.kind {
	case outPing:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Ping{Ping: &agentpb.Ping{Sequence: m.ping.Sequence, TimestampMs: m.ping.TimestampMs}}}, nil
	case outCancel:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Cancel{Cancel: &agentpb.CancelRequest{
			CorrelationId: m.cancel.CorrelationID, Reason: int32(m.cancel.Reason) + 1, TimestampMs: m.cancel.TimestampMs,
		}}}, nil
	case outEvent:
		if _, ok := m.ev.(*Configure); ok {
			return nil, fmt.Errorf("%w: Configure cannot be answered over gRPC (the agent gets Options.Config in the handshake; use Notify to push)", ErrUnsupported)
		}
	}
	return EventToPB(m.ev)
}

func (t *grpcTransport) write(v any) error {
	if err := t.stream.SendMsg(v); err != nil {
		return fmt.Errorf("sending to gRPC agent: %w", err)
	}
	return nil
}

func (t *grpcTransport) read() (inMsg, error) {
	m := new(agentpb.AgentToProxy)
	if err := t.stream.RecvMsg(m); err != nil {
		if status.Code(err) == codes.Canceled {
			return inMsg{}, fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return inMsg{}, fmt.Errorf("%w: gRPC stream: %v", ErrProtocol, err)
	}
	switch {
	case m.GetResponse() != nil:
		return inMsg{kind: inResponse, corr: m.GetResponse().GetCorrelationId(), resp: ResponseFromPB(m.GetResponse())}, nil
	case m.GetPong() != nil:
		return inMsg{kind: inPong, pingTS: m.GetPong().GetPingTimestampMs()}, nil
	case m.GetHealth() != nil:
		h := m.GetHealth()
		return inMsg{kind: inHealth, health: HealthStatus{AgentID: h.GetAgentId(), State: HealthState(h.GetState()), Message: h.GetMessage(), TimestampMs: h.GetTimestampMs()}}, nil
	case m.GetFlowControl() != nil:
		f := m.GetFlowControl()
		return inMsg{kind: inFlow, flow: FlowControl{Action: FlowAction(f.GetAction()), CorrelationID: f.GetCorrelationId(), BufferAvailable: f.BufferAvailable, TimestampMs: f.GetTimestampMs()}}, nil
	case m.GetMetrics() != nil:
		return inMsg{kind: inMetrics, metrics: metricsFromPB(m.GetMetrics())}, nil
	case m.GetConfigUpdate() != nil:
		return inMsg{kind: inConfigUpdate, cfg: configUpdateFromPB(m.GetConfigUpdate())}, nil
	case m.GetLog() != nil:
		l := m.GetLog()
		t.log.Info("agent log", zap.Int32("level", l.GetLevel()), zap.String("message", l.GetMessage()), zap.String("correlation_id", l.GetCorrelationId()))
	}
	return inMsg{kind: inIgnore}, nil
}

func (t *grpcTransport) close() error {
	var err error
	t.once.Do(func() {
		t.cancel()
		err = t.cc.Close()
	})
	return err
}

func (t *grpcTransport) sweep(time.Duration) {}
