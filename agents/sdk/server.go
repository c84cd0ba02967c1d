package sdk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

func (o Options) withDefaults() Options {
	if o.AgentID == "" {
		o.AgentID = "go-agent"
	}
	if o.Name == "" {
		o.Name = o.AgentID
	}
	if o.Version == "" {
		o.Version = "0.1.0"
	}
	if len(o.Events) == 0 {
		o.Events = []protocol.EventType{protocol.EventRequestHeaders}
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = 100
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	return o
}

// Capabilities returns what the server announces for opts.
func (o Options) Capabilities() protocol.Capabilities {
	o = o.withDefaults()
	c := protocol.Capabilities{AgentID: o.AgentID, Name: o.Name, Version: o.Version, SupportedEvents: o.Events}
	if o.Features != nil {
		c.Features = *o.Features
	} else {
		c.Features = protocol.Features{ConcurrentRequests: uint32(o.MaxConcurrency), Cancellation: true, FlowControl: true, HealthReporting: true}
		for _, e := range o.Events {
			switch e {
			case protocol.EventRequestBodyChunk, protocol.EventResponseBodyChunk:
				c.Features.StreamingBody = true
			case protocol.EventWebSocketFrame:
				c.Features.WebSocket = true
			case protocol.EventGuardrailInspect:
				c.Features.Guardrails = true
			}
		}
	}
	if o.Limits != nil {
		c.Limits = *o.Limits
	} else {
		c.Limits = protocol.Limits{MaxBodySize: 1 << 20, MaxConcurrency: uint32(o.MaxConcurrency), PreferredChunkSize: 64 << 10}
	}
	return c
}

// Controller pushes agent → proxy control messages (flow control, health)
// to every connection of the servers it is given to (Options.Controller).
// A connection that opens while paused is told so at once.
type Controller struct {
	mu     sync.Mutex
	peers  map[peer]struct{}
	paused bool
	health *protocol.HealthStatus
}

type peer interface {
	sendFlow(protocol.FlowControl) error
	sendHealth(protocol.HealthStatus) error
}

// NewController returns a Controller to put in Options.
func NewController() *Controller { return &Controller{peers: map[peer]struct{}{}} }

func (c *Controller) add(p peer) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.peers[p] = struct{}{}
	paused, health := c.paused, c.health
	c.mu.Unlock()
	if paused {
		_ = p.sendFlow(protocol.FlowControl{Action: protocol.FlowPause, TimestampMs: nowMs()})
	}
	if health != nil {
		_ = p.sendHealth(*health)
	}
}

func (c *Controller) remove(p peer) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.peers, p)
	c.mu.Unlock()
}

func (c *Controller) each(f func(peer)) {
	c.mu.Lock()
	ps := make([]peer, 0, len(c.peers))
	for p := range c.peers {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	for _, p := range ps {
		f(p)
	}
}

// Connections returns the number of connected proxies.
func (c *Controller) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peers)
}

// Pause sends FlowControl pause to every connected proxy.
func (c *Controller) Pause() {
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
	c.each(func(p peer) { _ = p.sendFlow(protocol.FlowControl{Action: protocol.FlowPause, TimestampMs: nowMs()}) })
}

// Resume sends FlowControl resume to every connected proxy.
func (c *Controller) Resume() {
	c.mu.Lock()
	c.paused = false
	c.mu.Unlock()
	c.each(func(p peer) { _ = p.sendFlow(protocol.FlowControl{Action: protocol.FlowResume, TimestampMs: nowMs()}) })
}

// SetHealth sends a HealthStatus to every connected proxy.
func (c *Controller) SetHealth(state protocol.HealthState, msg string) {
	h := protocol.HealthStatus{State: state, Message: msg, TimestampMs: nowMs()}
	c.mu.Lock()
	c.health = &h
	c.mu.Unlock()
	c.each(func(p peer) { _ = p.sendHealth(h) })
}

func nowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// dispatcher runs handler calls with per-request cancellation.
type dispatcher struct {
	h    Handler
	opts Options
	sem  chan struct{}

	mu      sync.Mutex
	cancels map[string]context.CancelFunc
}

// spawn runs fn in a goroutine counted by wg once one of the
// MaxConcurrency slots is free; it returns false, without running fn,
// when ctx ends first.
func (d *dispatcher) spawn(ctx context.Context, wg *sync.WaitGroup, fn func()) bool {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-d.sem }()
		fn()
	}()
	return true
}

func newDispatcher(h Handler, opts Options) *dispatcher {
	return &dispatcher{h: h, opts: opts, sem: make(chan struct{}, opts.MaxConcurrency), cancels: map[string]context.CancelFunc{}}
}

// handle calls the handler for ev and returns the response to send
// (nil for RequestComplete over gRPC is never asked: callers decide).
func (d *dispatcher) handle(ctx context.Context, ev protocol.Event) (resp *protocol.Response) {
	corr := ev.Correlation()
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.cancels[corr] = cancel
	d.mu.Unlock()
	start := time.Now()
	defer func() {
		d.mu.Lock()
		delete(d.cancels, corr)
		d.mu.Unlock()
		cancel()
		if r := recover(); r != nil {
			d.opts.Logger.Error("agent handler panicked", zap.Any("panic", r), zap.String("correlation_id", corr))
			resp = protocol.BlockResponse(500, "agent handler failed")
		}
		resp = finish(resp, corr, start)
	}()
	switch e := ev.(type) {
	case *protocol.RequestHeaders:
		return d.h.OnRequestHeaders(ctx, e)
	case *protocol.RequestBodyChunk:
		return d.h.OnRequestBody(ctx, e)
	case *protocol.ResponseHeaders:
		return d.h.OnResponseHeaders(ctx, e)
	case *protocol.ResponseBodyChunk:
		return d.h.OnResponseBody(ctx, e)
	case *protocol.RequestComplete:
		d.h.OnRequestComplete(ctx, e)
		return nil
	case *protocol.WebSocketFrame:
		return d.h.OnWebSocketFrame(ctx, e)
	case *protocol.GuardrailInspect:
		return d.h.OnGuardrailInspect(ctx, e)
	case *protocol.Configure:
		if err := d.h.OnConfigure(ctx, e); err != nil {
			d.opts.Logger.Warn("configuration rejected", zap.Error(err))
			r := protocol.BlockResponse(500, "configuration rejected: "+err.Error())
			r.Audit.ReasonCodes = []string{err.Error()}
			return r
		}
		return nil
	}
	return nil
}

// finish copies r (nil = allow) and stamps version and correlation id.
func finish(r *protocol.Response, corr string, start time.Time) *protocol.Response {
	var out protocol.Response
	if r != nil {
		out = *r
	}
	out.Version = protocol.ProtocolVersion
	custom := make(map[string]any, len(out.Audit.Custom)+1)
	for k, v := range out.Audit.Custom {
		custom[k] = v
	}
	custom["correlation_id"] = corr
	out.Audit.Custom = custom
	ms := uint64(time.Since(start).Milliseconds())
	out.ProcessingTimeMs = &ms
	return &out
}

func (d *dispatcher) cancel(ctx context.Context, c *protocol.Cancel) {
	d.mu.Lock()
	f := d.cancels[c.CorrelationID]
	d.mu.Unlock()
	if f != nil {
		f()
	}
	d.h.OnCancel(ctx, c)
}

// ---------------------------------------------------------------- UDS

// ServeUDS listens on the Unix socket path (a stale socket file is
// removed first, the socket is made 0660) and serves h until ctx ends;
// then it closes the listener and every connection, waits for them and
// removes the socket file.
func ServeUDS(ctx context.Context, path string, h Handler, opts Options) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on agent socket %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o660)
	defer os.Remove(path)
	return Serve(ctx, ln, h, opts)
}

// Serve accepts proxy connections on ln (UDS framing, Rust dialect) until
// ctx ends, then closes ln and all connections and waits for them.
func Serve(ctx context.Context, ln net.Listener, h Handler, opts Options) error {
	opts = opts.withDefaults()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		_ = ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting agent connection: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ServeConn(ctx, conn, h, opts); err != nil {
				opts.Logger.Debug("agent connection ended", zap.Error(err))
			}
		}()
	}
}

// udsPeer is one proxy connection on the agent side.
type udsPeer struct {
	conn net.Conn
	mu   sync.Mutex
}

func (p *udsPeer) send(t protocol.MessageType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", t, err)
	}
	return p.sendRaw(t, b)
}

func (p *udsPeer) sendRaw(t protocol.MessageType, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return protocol.WriteFrame(p.conn, t, b)
}

func (p *udsPeer) sendFlow(f protocol.FlowControl) error {
	return p.send(protocol.MsgFlowControl, f)
}

func (p *udsPeer) sendHealth(h protocol.HealthStatus) error {
	return p.send(protocol.MsgHealthStatus, h)
}

// ServeConn serves one proxy connection (the agent side of UDS v2, Rust
// dialect): handshake, then one 0x20 answer per event (events are handled
// concurrently), pong for ping, cancellation, configure. It returns when
// the connection or ctx ends (nil on a clean close by the proxy).
func ServeConn(ctx context.Context, conn net.Conn, h Handler, opts Options) error {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = conn.Close()
		wg.Wait()
	}()
	go func() {
		<-ctx.Done()
		_ = conn.Close()
	}()
	p := &udsPeer{conn: conn}
	br := bufio.NewReaderSize(conn, 64<<10)
	if err := udsHandshake(ctx, br, p, h, opts); err != nil {
		return err
	}
	opts.Controller.add(p)
	defer opts.Controller.remove(p)
	d := newDispatcher(h, opts)
	for {
		f, err := protocol.ReadFrame(br, protocol.DialectAuto)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading from proxy: %w", err)
		}
		switch f.Type {
		case protocol.MsgPing:
			if err := p.sendRaw(protocol.MsgPong, f.Payload); err != nil {
				return err
			}
		case protocol.MsgCancel:
			var c protocol.Cancel
			if json.Unmarshal(f.Payload, &c) == nil {
				d.cancel(ctx, &c)
			}
		case protocol.MsgRequestHeaders, protocol.MsgRequestBodyChunk, protocol.MsgResponseHeaders,
			protocol.MsgResponseBodyChunk, protocol.MsgRequestComplete, protocol.MsgWebSocketFrame,
			protocol.MsgGuardrailInspect, protocol.MsgConfigure:
			ev, corr, derr := DecodeEvent(f)
			if !d.spawn(ctx, &wg, func() {
				var resp *protocol.Response
				if derr != nil {
					opts.Logger.Warn("cannot decode event; answering allow", zap.Error(derr))
					resp = finish(nil, corr, time.Now())
				} else {
					resp = d.handle(ctx, ev)
				}
				resp.ProcessingTimeMs = nil
				if err := p.send(protocol.MsgAgentResponse, resp); err != nil {
					opts.Logger.Debug("writing response", zap.Error(err))
				}
			}) {
				return nil
			}
		default:
			opts.Logger.Debug("ignoring message", zap.Stringer("type", f.Type))
		}
	}
}

func udsHandshake(ctx context.Context, br *bufio.Reader, p *udsPeer, h Handler, opts Options) error {
	_ = p.conn.SetReadDeadline(time.Now().Add(opts.HandshakeTimeout))
	f, err := protocol.ReadFrame(br, protocol.DialectAuto)
	if err != nil {
		return fmt.Errorf("reading handshake: %w", err)
	}
	_ = p.conn.SetReadDeadline(time.Time{})
	if f.Type == protocol.MsgHandshakeResponse {
		// A registration listener refusing this agent says why.
		return protocol.RegistrationRefusal(f)
	}
	if f.Type != protocol.MsgHandshakeRequest {
		return fmt.Errorf("first message is %s, want HandshakeRequest", f.Type)
	}
	var req protocol.HandshakeRequest
	resp := protocol.HandshakeResponse{ProtocolVersion: protocol.ProtocolVersion, Success: true, Encoding: "json", Capabilities: opts.Capabilities()}
	if err := json.Unmarshal(f.Payload, &req); err != nil {
		resp.Success, resp.Error = false, protocol.OptString("invalid handshake: "+err.Error())
	} else if len(req.SupportedVersions) > 0 && !containsVersion(req.SupportedVersions) {
		resp.Success, resp.Error = false, protocol.OptString(fmt.Sprintf("unsupported protocol versions %v", req.SupportedVersions))
	} else if len(req.Config) > 0 && string(req.Config) != "null" {
		if err := h.OnConfigure(ctx, &protocol.Configure{Config: req.Config}); err != nil {
			resp.Success, resp.Error = false, protocol.OptString("configuration rejected: "+err.Error())
		}
	}
	if err := p.send(protocol.MsgHandshakeResponse, resp); err != nil {
		return fmt.Errorf("sending handshake response: %w", err)
	}
	if !resp.Success {
		return fmt.Errorf("handshake refused: %s", resp.Error)
	}
	return nil
}

func containsVersion(vs []uint32) bool {
	for _, v := range vs {
		if v == protocol.ProtocolVersion {
			return true
		}
	}
	return false
}

// DecodeEvent decodes a Rust-dialect event frame (0x10–0x17). When the
// payload cannot be decoded it returns the error and whatever correlation
// id it could extract (so the agent can still answer allow).
func DecodeEvent(f protocol.Frame) (protocol.Event, string, error) {
	var ev protocol.Event
	switch f.Type {
	case protocol.MsgRequestHeaders:
		ev = &protocol.RequestHeaders{}
	case protocol.MsgRequestBodyChunk:
		ev = &protocol.RequestBodyChunk{}
	case protocol.MsgResponseHeaders:
		ev = &protocol.ResponseHeaders{}
	case protocol.MsgResponseBodyChunk:
		ev = &protocol.ResponseBodyChunk{}
	case protocol.MsgRequestComplete:
		ev = &protocol.RequestComplete{}
	case protocol.MsgWebSocketFrame:
		ev = &protocol.WebSocketFrame{}
	case protocol.MsgGuardrailInspect:
		ev = &protocol.GuardrailInspect{}
	case protocol.MsgConfigure:
		ev = &protocol.Configure{}
	default:
		return nil, "", fmt.Errorf("%s is not an event", f.Type)
	}
	if err := json.Unmarshal(f.Payload, ev); err != nil {
		var probe struct {
			CorrelationID string `json:"correlation_id"`
			Metadata      struct {
				CorrelationID string `json:"correlation_id"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(f.Payload, &probe)
		corr := probe.Metadata.CorrelationID
		if corr == "" {
			corr = probe.CorrelationID
		}
		return nil, corr, fmt.Errorf("decoding %s: %w", f.Type, err)
	}
	return ev, ev.Correlation(), nil
}

// Register connects to a proxy's registration listener at addr ("/path"
// or "unix:/path" = Unix socket, otherwise TCP host:port), sends a
// protocol.RegistrationHello with opts.AgentID and token, then serves h on
// the connection (the proxy runs the normal handshake as client). It
// returns when the connection or ctx ends; a refused registration is an
// error wrapping protocol.ErrRegistrationRefused with the proxy's reason
// (wrong token, id not allowed, id of a configured agent), and a proxy
// that closes the connection before the handshake is an error too.
func Register(ctx context.Context, addr, token string, h Handler, opts Options) error {
	opts = opts.withDefaults()
	network, address := "tcp", addr
	if strings.HasPrefix(addr, "unix:") {
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	} else if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	conn, err := dialer.DialContext(dctx, network, address)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting to proxy registration listener %s: %w", addr, err)
	}
	hello := protocol.RegistrationHello{ProtocolVersion: protocol.ProtocolVersion, AgentID: opts.AgentID, AuthToken: token,
		Metadata: map[string]string{"name": opts.Name, "version": opts.Version}}
	_ = conn.SetWriteDeadline(time.Now().Add(opts.HandshakeTimeout))
	if err := protocol.WriteRegistrationHello(conn, hello); err != nil {
		_ = conn.Close()
		return fmt.Errorf("registering with proxy %s: %w", addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	if err := ServeConn(ctx, conn, h, opts); err != nil {
		return fmt.Errorf("registered connection to %s: %w", addr, err)
	}
	return nil
}
