package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Client is the proxy side of one agent connection (UDS or gRPC stream).
// It is safe for concurrent use; many calls are multiplexed on the
// connection and matched to their answers by correlation id (UDS Rust
// dialect: audit.custom.correlation_id; SDK dialect: numeric request_id;
// gRPC: AgentResponse.correlation_id). At most one call per correlation id
// may be outstanding (a second one fails with ErrDuplicateCall), as in the
// Rust proxy.
type Client interface {
	// Call sends one event and waits for the agent's response (matched by
	// correlation id / request id). The context bounds the wait (use the
	// agent's timeout-ms); when it ends first, the call is abandoned, a
	// Cancel (reason timeout or client_disconnect) is sent to the agent
	// unless Options.NoCancelOnAbandon, and the context error is returned
	// wrapped. Errors: ErrPaused (flow control, unless
	// Options.WaitWhilePaused), ErrClosed/protocol errors once the
	// connection is dead, ErrUnsupported for an event the dialect cannot
	// carry, ErrDuplicateCall, ErrCanceled (Cancel was called meanwhile).
	Call(ctx context.Context, ev Event) (*Response, error)
	// Notify sends an event that needs no answer on the caller's path
	// (request_complete); it never blocks on the agent: when the send queue
	// is full it returns ErrQueueFull. An answer the agent sends anyway is
	// discarded.
	Notify(ctx context.Context, ev Event) error
	// Cancel tells the agent the request with this correlation id is
	// abandoned (reason: "client_disconnect", "timeout", "blocked_by_agent",
	// "upstream_error", "proxy_shutdown"; anything else = manual). A Call
	// waiting for that id returns ErrCanceled. Never blocks.
	Cancel(correlationID, reason string) error
	// Info is what the handshake told: agent name/id, dialect,
	// capabilities (events it wants, body inspection, max body), encoding.
	Info() AgentInfo
	// Health is the last health report / ping result.
	Health() Health
	// Paused reports whether the agent asked to pause (flow control).
	Paused() bool
	// Done is closed when the connection is dead.
	Done() <-chan struct{}
	// Err tells why the connection died (nil while alive).
	Err() error
	// Close closes the connection, fails pending calls with ErrClosed and
	// waits for the client's goroutines to end.
	Close() error
}

// Errors returned by clients (wrapped with context; test with errors.Is).
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("agent connection closed")
	// ErrPaused: the agent paused the connection (flow control).
	ErrPaused = errors.New("agent paused the connection (flow control)")
	// ErrProtocol: the agent violated the protocol; the connection is dead.
	ErrProtocol = errors.New("agent protocol error")
	// ErrPingTimeout: nothing was received from the agent within the liveness deadline.
	ErrPingTimeout = errors.New("agent liveness deadline exceeded (no pong)")
	// ErrHandshake: the handshake failed or was refused.
	ErrHandshake = errors.New("agent handshake failed")
	// ErrUnsupported: the event cannot be sent in this dialect/transport.
	ErrUnsupported = errors.New("event not supported by this agent transport")
	// ErrDuplicateCall: a call with the same correlation id is outstanding.
	ErrDuplicateCall = errors.New("a call with this correlation id is already outstanding")
	// ErrQueueFull: the send queue is full (Notify, Cancel).
	ErrQueueFull = errors.New("agent send queue full")
	// ErrCanceled: Cancel was called for the correlation id of a waiting Call.
	ErrCanceled = errors.New("request canceled")
	// ErrConfigRejected: the agent refused the configuration.
	ErrConfigRejected = errors.New("agent rejected its configuration")
)

// AgentInfo is what the handshake told about the agent.
type AgentInfo struct {
	// Dialect is DialectRust, DialectSDK (UDS) or DialectGRPC.
	Dialect Dialect
	// Transport is "uds" or "grpc".
	Transport string
	// Address is the socket path or gRPC target.
	Address string
	// GRPCPackage is the proto package that answered ("sentinel.agent.v2" or "zentinel.agent.v2").
	GRPCPackage string
	// ProtocolVersion is the agent's protocol version.
	ProtocolVersion uint32
	// Encoding is the payload encoding ("json"; "protobuf" for gRPC).
	Encoding string
	// Capabilities are the agent's capabilities (for the SDK dialect
	// converted from its handles_* flags).
	Capabilities Capabilities
}

// WantsEvent reports whether the agent announced the event in its
// capabilities (an empty list means "not said": true).
func (i AgentInfo) WantsEvent(e EventType) bool {
	if len(i.Capabilities.SupportedEvents) == 0 {
		return true
	}
	for _, s := range i.Capabilities.SupportedEvents {
		if s == e {
			return true
		}
	}
	return false
}

// Health is the last known health of the agent connection.
type Health struct {
	// State is the last reported state (HealthHealthy after the handshake).
	State HealthState
	// Message is the last reported message.
	Message string
	// ReportedAt is when the last health report arrived (zero: none yet).
	ReportedAt time.Time
	// LastPong is when the last pong arrived (zero: none yet).
	LastPong time.Time
	// RTT is the round trip of the last ping.
	RTT time.Duration
	// LastReceive is when any message last arrived from the agent.
	LastReceive time.Time
}

// Options configure a client (UDS and, embedded in GRPCOptions, gRPC).
type Options struct {
	// ProxyID is sent in the handshake (default "sentinel-proxy").
	ProxyID string
	// ProxyVersion is sent in the handshake (default "0.1.0").
	ProxyVersion string
	// Config is the agent's `config { }` block as JSON; when set it is
	// delivered after the handshake (Rust UDS dialect: Configure 0x17,
	// waiting for the ack; gRPC: HandshakeRequest.config_json). The Go-SDK
	// UDS dialect has no way to carry it: it is dropped with a warning.
	Config json.RawMessage
	// ConfigVersion is sent with the Configure event.
	ConfigVersion string
	// Dialect forces a UDS dialect; DialectAuto (default) detects it.
	Dialect Dialect
	// HandshakeTimeout bounds the handshake and the config ack (default 5s).
	HandshakeTimeout time.Duration
	// PingInterval is the keep-alive ping period (default 5s; < 0 disables pings and the liveness check).
	PingInterval time.Duration
	// PingTimeout is the liveness deadline: when nothing (pong or other
	// message) arrived for this long the connection is declared dead
	// (ErrPingTimeout) — provided the agent has answered a ping before or
	// calls are waiting, so that an idle agent that never answers pings
	// (the protocol does not require it) is not killed. Default 3×PingInterval.
	PingTimeout time.Duration
	// WriteTimeout bounds one frame write (default 10s); a stuck write kills the connection.
	WriteTimeout time.Duration
	// QueueSize is the send queue length (default 1024).
	QueueSize int
	// WaitWhilePaused makes Call wait for a resume (bounded by its
	// context) instead of failing fast with ErrPaused.
	WaitWhilePaused bool
	// NoCancelOnAbandon disables the automatic Cancel when a Call's context ends first.
	NoCancelOnAbandon bool
	// Logger receives debug/warn logs (default zap.NewNop()).
	Logger *zap.Logger
	// OnMetrics is called (on the reader goroutine) for each metrics report.
	OnMetrics func(MetricsReport)
	// OnConfigUpdate is called (on the reader goroutine) for each config-update request.
	OnConfigUpdate func(ConfigUpdateRequest)
}

func (o Options) withDefaults() Options {
	if o.ProxyID == "" {
		o.ProxyID = "sentinel-proxy"
	}
	if o.ProxyVersion == "" {
		o.ProxyVersion = "0.1.0"
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 5 * time.Second
	}
	if o.PingInterval == 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.PingTimeout <= 0 && o.PingInterval > 0 {
		o.PingTimeout = 3 * o.PingInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

type outKind int

const (
	outEvent outKind = iota
	outNotify
	outCancel
	outPing
)

type outMsg struct {
	kind   outKind
	ev     Event
	cancel Cancel
	ping   Ping
	// result receives the per-message encode error (nil on success) for calls; buffered.
	result chan error
}

type inKind int

const (
	inIgnore inKind = iota
	inResponse
	inPong
	inHealth
	inFlow
	inMetrics
	inConfigUpdate
)

type inMsg struct {
	kind    inKind
	corr    string
	resp    *Response
	pingTS  uint64
	health  HealthStatus
	flow    FlowControl
	metrics MetricsReport
	cfg     ConfigUpdateRequest
}

// transport is one connection in one dialect. encode/write run on the
// writer goroutine only, read on the reader goroutine only.
type transport interface {
	// encode turns a message into what write sends; an error fails only that message.
	encode(m *outMsg) (any, error)
	// write sends an encoded message; an error kills the connection.
	write(v any) error
	// read returns the next inbound message; an error kills the connection.
	read() (inMsg, error)
	// close closes the connection (unblocks read and write).
	close() error
	// sweep drops per-request state older than ttl (SDK request ids).
	sweep(ttl time.Duration)
}

type callResult struct {
	resp *Response
	err  error
}

type client struct {
	opts Options
	info AgentInfo
	tr   transport
	log  *zap.Logger

	out  chan *outMsg
	done chan struct{}

	mu       sync.Mutex
	pending  map[string]chan callResult
	err      error
	health   Health
	resumeCh chan struct{}

	paused    atomic.Bool
	lastRecv  atomic.Int64
	pingSeq   atomic.Uint64
	failOnce  sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Interface guard.
var _ Client = (*client)(nil)

func newClient(tr transport, info AgentInfo, opts Options) *client {
	c := &client{
		opts:     opts,
		info:     info,
		tr:       tr,
		log:      opts.Logger.With(zap.String("reported_id", info.Capabilities.AgentID), zap.String("dialect", info.Dialect.String())),
		out:      make(chan *outMsg, opts.QueueSize),
		done:     make(chan struct{}),
		pending:  make(map[string]chan callResult),
		resumeCh: make(chan struct{}),
	}
	now := time.Now()
	c.health = Health{State: HealthHealthy, LastReceive: now}
	c.lastRecv.Store(now.UnixNano())
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	if opts.PingInterval > 0 {
		c.wg.Add(1)
		go c.pingLoop()
	}
	return c
}

// fail kills the connection with err (first error wins).
func (c *client) fail(err error) {
	c.failOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		pend := c.pending
		c.pending = map[string]chan callResult{}
		c.mu.Unlock()
		close(c.done)
		_ = c.tr.close()
		for _, ch := range pend {
			ch <- callResult{err: err}
		}
		if !errors.Is(err, ErrClosed) {
			c.log.Warn("agent connection failed", zap.Error(err))
		}
	})
}

func (c *client) readLoop() {
	defer c.wg.Done()
	for {
		m, err := c.tr.read()
		if err != nil {
			select {
			case <-c.done:
				c.fail(ErrClosed)
			default:
				c.fail(err)
			}
			return
		}
		now := time.Now()
		c.lastRecv.Store(now.UnixNano())
		switch m.kind {
		case inResponse:
			c.mu.Lock()
			ch, ok := c.pending[m.corr]
			if ok {
				delete(c.pending, m.corr)
			}
			c.mu.Unlock()
			if ok {
				ch <- callResult{resp: m.resp}
			} else {
				c.log.Debug("dropping agent response for unknown correlation id", zap.String("correlation_id", m.corr))
			}
		case inPong:
			c.mu.Lock()
			c.health.LastPong = now
			if m.pingTS > 0 {
				c.health.RTT = now.Sub(time.UnixMilli(int64(m.pingTS)))
			}
			c.mu.Unlock()
		case inHealth:
			c.mu.Lock()
			c.health.State = m.health.State
			c.health.Message = m.health.Message
			c.health.ReportedAt = now
			c.mu.Unlock()
		case inFlow:
			c.setPaused(m.flow.Action == FlowPause)
		case inMetrics:
			if c.opts.OnMetrics != nil {
				c.opts.OnMetrics(m.metrics)
			}
		case inConfigUpdate:
			if c.opts.OnConfigUpdate != nil {
				c.opts.OnConfigUpdate(m.cfg)
			}
		}
	}
}

func (c *client) setPaused(p bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.paused.Swap(p)
	if was && !p {
		close(c.resumeCh)
		c.resumeCh = make(chan struct{})
	}
}

func (c *client) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case m := <-c.out:
			v, err := c.tr.encode(m)
			if err != nil {
				if m.result != nil {
					m.result <- err
				} else {
					c.log.Debug("dropping message that cannot be encoded", zap.Error(err))
				}
				continue
			}
			if v == nil { // nothing to send in this dialect
				if m.result != nil {
					m.result <- nil
				}
				continue
			}
			if err := c.tr.write(v); err != nil {
				if m.result != nil {
					m.result <- err
				}
				select {
				case <-c.done:
					c.fail(ErrClosed)
				default:
					c.fail(err)
				}
				return
			}
			if m.result != nil {
				m.result <- nil
			}
		}
	}
}

func (c *client) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			last := time.Unix(0, c.lastRecv.Load())
			c.mu.Lock()
			pending, ponged := len(c.pending), !c.health.LastPong.IsZero()
			c.mu.Unlock()
			if now.Sub(last) > c.opts.PingTimeout && (ponged || pending > 0) {
				c.fail(fmt.Errorf("%w: nothing received for %s", ErrPingTimeout, now.Sub(last).Round(time.Millisecond)))
				return
			}
			c.tr.sweep(5 * time.Minute)
			p := Ping{Sequence: c.pingSeq.Add(1), TimestampMs: uint64(now.UnixMilli())}
			select {
			case c.out <- &outMsg{kind: outPing, ping: p}:
			default:
			}
		}
	}
}

// Call implements Client.
func (c *client) Call(ctx context.Context, ev Event) (*Response, error) {
	if ev == nil {
		return nil, errors.New("agent call: nil event")
	}
	corr := ev.Correlation()
	if corr == "" {
		return nil, fmt.Errorf("agent call %s: empty correlation id", ev.EventType())
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	for c.paused.Load() {
		if !c.opts.WaitWhilePaused {
			return nil, fmt.Errorf("agent call %s: %w", ev.EventType(), ErrPaused)
		}
		c.mu.Lock()
		ch := c.resumeCh
		c.mu.Unlock()
		if !c.paused.Load() {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("agent call %s: waiting for resume: %w", ev.EventType(), ctx.Err())
		case <-c.done:
			return nil, c.Err()
		}
	}
	resCh := make(chan callResult, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	if _, dup := c.pending[corr]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("agent call %s %q: %w", ev.EventType(), corr, ErrDuplicateCall)
	}
	c.pending[corr] = resCh
	c.mu.Unlock()

	m := &outMsg{kind: outEvent, ev: ev, result: make(chan error, 1)}
	select {
	case c.out <- m:
	case <-ctx.Done():
		c.drop(corr, resCh)
		return nil, fmt.Errorf("agent call %s: queueing: %w", ev.EventType(), ctx.Err())
	case <-c.done:
		return nil, c.Err()
	}
	for {
		select {
		case err := <-m.result:
			if err != nil {
				c.drop(corr, resCh)
				return nil, fmt.Errorf("agent call %s: %w", ev.EventType(), err)
			}
			m.result = nil // sent; keep waiting for the answer
		case r := <-resCh:
			if r.err != nil {
				return nil, r.err
			}
			return r.resp, nil
		case <-ctx.Done():
			if c.drop(corr, resCh) && !c.opts.NoCancelOnAbandon {
				reason := CancelTimeout
				if errors.Is(ctx.Err(), context.Canceled) {
					reason = CancelClientDisconnect
				}
				_ = c.enqueueCancel(corr, reason)
			}
			return nil, fmt.Errorf("agent call %s: %w", ev.EventType(), ctx.Err())
		}
	}
}

// drop removes corr's pending entry if it is still ch; reports whether it did.
func (c *client) drop(corr string, ch chan callResult) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.pending[corr]; ok && cur == ch {
		delete(c.pending, corr)
		return true
	}
	return false
}

// Notify implements Client.
func (c *client) Notify(ctx context.Context, ev Event) error {
	if ev == nil {
		return errors.New("agent notify: nil event")
	}
	if err := c.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("agent notify %s: %w", ev.EventType(), err)
	}
	select {
	case c.out <- &outMsg{kind: outNotify, ev: ev}:
		return nil
	case <-c.done:
		return c.Err()
	default:
		return fmt.Errorf("agent notify %s: %w", ev.EventType(), ErrQueueFull)
	}
}

// Cancel implements Client.
func (c *client) Cancel(correlationID, reason string) error {
	if err := c.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	ch, ok := c.pending[correlationID]
	if ok {
		delete(c.pending, correlationID)
	}
	c.mu.Unlock()
	if ok {
		ch <- callResult{err: fmt.Errorf("agent call %q: %w (%s)", correlationID, ErrCanceled, reason)}
	}
	return c.enqueueCancel(correlationID, ParseCancelReason(reason))
}

func (c *client) enqueueCancel(corr string, reason CancelReason) error {
	m := &outMsg{kind: outCancel, cancel: Cancel{CorrelationID: corr, Reason: reason, TimestampMs: uint64(time.Now().UnixMilli())}}
	select {
	case c.out <- m:
		return nil
	case <-c.done:
		return c.Err()
	default:
		return fmt.Errorf("agent cancel %q: %w", corr, ErrQueueFull)
	}
}

// Info implements Client.
func (c *client) Info() AgentInfo { return c.info }

// Health implements Client.
func (c *client) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.health
	h.LastReceive = time.Unix(0, c.lastRecv.Load())
	if c.err != nil {
		h.State = HealthUnhealthy
		h.Message = c.err.Error()
	}
	return h
}

// Paused implements Client.
func (c *client) Paused() bool { return c.paused.Load() }

// Done implements Client.
func (c *client) Done() <-chan struct{} { return c.done }

// Err implements Client.
func (c *client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close implements Client.
func (c *client) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// configure delivers opts.Config with a Configure call and checks the ack.
func (c *client) configure(ctx context.Context) error {
	if len(c.opts.Config) == 0 {
		return nil
	}
	if c.info.Dialect == DialectSDK {
		c.log.Warn("the Go-SDK UDS dialect cannot carry the agent config block; not delivered")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.HandshakeTimeout)
	defer cancel()
	resp, err := c.Call(ctx, &Configure{CorrelationID: "configure-1", Config: c.opts.Config, ConfigVersion: OptString(c.opts.ConfigVersion)})
	if err != nil {
		return fmt.Errorf("delivering agent config: %w", err)
	}
	if resp.Decision.Kind != Allow {
		return fmt.Errorf("%w: %s %d %s", ErrConfigRejected, resp.Decision.Kind, resp.Decision.Status, resp.Decision.Body)
	}
	return nil
}

// DialUDS connects to an agent's Unix socket, runs the handshake (detecting
// the dialect unless opts.Dialect forces one), delivers opts.Config and
// returns the running client. See NewClient for the detection. A pool that
// opens several connections to one agent can pass the first connection's
// Info().Dialect as opts.Dialect to remember the dialect and skip detection.
func DialUDS(ctx context.Context, path string, opts Options) (Client, error) {
	opts = opts.withDefaults()
	dial := func() (net.Conn, error) {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
		defer cancel()
		conn, err := d.DialContext(dctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("dialing agent socket %s: %w", path, err)
		}
		return conn, nil
	}
	c, err := handshakeUDS(ctx, dial, opts, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// NewClient runs the proxy side of the handshake over an already connected
// conn (e.g. one accepted by a registration listener after reading the
// RegistrationHello) and returns the running client; it owns conn. With
// DialectAuto the handshake carries both dialects' keys: the reply's keys
// (`success` → Rust, `accepted`/`agent_name` → Go SDK) tell the dialect. If
// the agent closes the connection instead, NewClient cannot redial and
// fails; DialUDS redials with the pure Rust and then the pure SDK handshake.
func NewClient(ctx context.Context, conn net.Conn, opts Options) (Client, error) {
	opts = opts.withDefaults()
	used := false
	dial := func() (net.Conn, error) {
		if used {
			return nil, fmt.Errorf("%w: the agent closed the connection during the handshake", ErrHandshake)
		}
		used = true
		return conn, nil
	}
	return handshakeUDS(ctx, dial, opts, conn.RemoteAddr().String())
}
