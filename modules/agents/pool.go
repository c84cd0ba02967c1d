package agents

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

// Call failures the failure mode turns into answers.
var (
	// errBreakerOpen: the agent's circuit breaker is open (503).
	errBreakerOpen = errors.New("agent circuit breaker open")
	// errAgentDown: no connection to the agent is up (503).
	errAgentDown = errors.New("agent not connected")
	// errDraining: the agent was removed or changed by a reload (503).
	errDraining = errors.New("agent pool draining")
	// errTooLarge: the body is over the agent's limit (413).
	errTooLarge = errors.New("body over the agent's limit")
	// errUnhealthy: every connection of the agent reported itself
	// unhealthy or draining (503); it is down until it reports healthy.
	errUnhealthy = errors.New("agent reports itself unhealthy")
)

// connBox holds one live client (atomic.Pointer needs a concrete type).
type connBox struct{ c protocol.Client }

// pool is the connections to one agent and its protection: its own
// limiter (bounded queue + concurrency), breaker and timeouts. Pools are
// shared across config reloads through the registry (see registry.go).
type pool struct {
	s    *settings
	log  *zap.Logger
	lim  *limiter
	brk  *breaker
	live bool // filled by the registration listener, not dialled

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   []*connBox // the live connections
	lastErr string
	errAt   time.Time

	next     atomic.Uint64
	draining atomic.Bool
	drained  chan struct{}
	// ready is closed when the pool's first connection attempt ended
	// (connected or failed): calls made before wait for it (within their
	// timeout) instead of failing as "not connected" right after a load.
	ready     chan struct{}
	readyOnce sync.Once
	// started makes start run once: a pool kept across a reload is
	// started by the first config only.
	started sync.Once
}

// newPool creates the pool; start dials it.
func newPool(s *settings, log *zap.Logger, live bool) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{
		s: s, log: log.With(zap.String("agent", s.id)), live: live,
		lim: newLimiter(s.concurrency, s.queue), brk: newBreaker(s.breaker),
		ctx: ctx, cancel: cancel, drained: make(chan struct{}), ready: make(chan struct{}),
	}
}

// start launches one supervisor per configured connection, once; it
// does nothing for a live pool or once the pool drains.
func (p *pool) start() {
	if p.live {
		return
	}
	p.started.Do(func() {
		if p.draining.Load() {
			return
		}
		for i := 0; i < p.s.connections; i++ {
			p.wg.Add(1)
			go p.supervise(i)
		}
	})
}

// options are the protocol client options of the agent.
func (p *pool) options() protocol.Options {
	ping := p.s.healthEvery
	if ping < 0 {
		ping = -1
	}
	return protocol.Options{
		ProxyID:          "sentinel-proxy",
		Config:           p.s.config,
		HandshakeTimeout: p.s.connectTO,
		PingInterval:     ping,
		Logger:           p.log,
	}
}

// dial opens one connection with its handshake.
func (p *pool) dial(ctx context.Context) (protocol.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, p.s.connectTO)
	defer cancel()
	if p.s.network == "unix" {
		return protocol.DialUDS(ctx, p.s.address, p.options())
	}
	o := protocol.GRPCOptions{Options: p.options(), Package: p.s.grpcPackage, TLS: p.s.grpcTLS}
	if t := p.s.tls; t != nil {
		o.CAFile, o.CertFile, o.KeyFile, o.ServerName, o.InsecureSkipVerify = t.CACert, t.ClientCert, t.ClientKey, t.ServerName, t.Insecure
	}
	scheme := "http://"
	if p.s.grpcTLS {
		scheme = "https://"
	}
	return protocol.DialGRPC(ctx, scheme+p.s.address, o)
}

// supervise keeps connection i up: dial, wait for it to die, redial with
// a doubling backoff while dialling fails.
func (p *pool) supervise(i int) {
	defer p.wg.Done()
	backoff := p.s.backoff
	for {
		c, err := p.dial(p.ctx)
		if i == 0 && err != nil {
			p.readyOnce.Do(func() { close(p.ready) })
		}
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.setErr(fmt.Errorf("connecting: %w", err))
			switch {
			case i != 0:
			case configRejected(err):
				p.log.Error("agent refused its configuration: fix the agent's config { } block; retrying", zap.Error(err), zap.Duration("backoff", backoff))
			default:
				p.log.Warn("agent connection failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
			}
			t := time.NewTimer(backoff)
			select {
			case <-p.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, p.s.maxBackoff)
			continue
		}
		backoff = p.s.backoff
		b := p.add(c)
		select {
		case <-p.ctx.Done():
			p.remove(b)
			_ = c.Close()
			return
		case <-c.Done():
			p.remove(b)
			p.setErr(fmt.Errorf("connection lost: %w", c.Err()))
			_ = c.Close()
		}
	}
}

// configRejected reports whether a dial failed because the agent refused
// its config block (UDS: the Configure ack; gRPC: the handshake answer
// of an agents/sdk agent).
func configRejected(err error) bool {
	return errors.Is(err, protocol.ErrConfigRejected) ||
		(errors.Is(err, protocol.ErrHandshake) && strings.Contains(err.Error(), "configuration rejected"))
}

// add makes a connected client available to calls.
func (p *pool) add(c protocol.Client) *connBox {
	b := &connBox{c: c}
	p.mu.Lock()
	p.conns = append(p.conns, b)
	p.mu.Unlock()
	p.readyOnce.Do(func() { close(p.ready) })
	return b
}

// remove takes a client out of rotation.
func (p *pool) remove(b *connBox) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.conns {
		if x == b {
			p.conns = append(p.conns[:i:i], p.conns[i+1:]...)
			return
		}
	}
}

// adopt adds a live-registered connection; it is removed when it dies or
// the pool drains.
func (p *pool) adopt(c protocol.Client, onEmpty func()) {
	b := p.add(c)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-p.ctx.Done():
		case <-c.Done():
			p.setErr(fmt.Errorf("connection lost: %w", c.Err()))
		}
		p.remove(b)
		_ = c.Close()
		if p.connected() == 0 && onEmpty != nil {
			onEmpty()
		}
	}()
}

func (p *pool) setErr(err error) {
	p.mu.Lock()
	p.lastErr, p.errAt = err.Error(), time.Now()
	p.mu.Unlock()
}

// connected is the number of live connections.
func (p *pool) connected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// pick returns a live, unpaused client, round robin; prefer (the
// request's pinned client) when it is still usable. A connection whose
// agent reported itself unhealthy or draining is never picked: when no
// connection is usable, pick returns errUnhealthy (the agent is down
// and its failure mode applies) or, with no connection at all, nil and
// no error.
func (p *pool) pick(prefer protocol.Client) (protocol.Client, error) {
	if prefer != nil {
		select {
		case <-prefer.Done():
		default:
			if usable(prefer.Health().State) {
				return prefer, nil
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	if n == 0 {
		return nil, nil
	}
	// Round robin over the connections that are neither paused (flow
	// control) nor reported unhealthy or draining by the agent; when
	// all the healthy ones are paused, one of them (the call then fails
	// with ErrPaused).
	start := int(p.next.Add(1) % uint64(n))
	var paused protocol.Client
	for i := 0; i < n; i++ {
		c := p.conns[(start+i)%n].c
		if !usable(c.Health().State) {
			continue
		}
		if !c.Paused() {
			return c, nil
		}
		if paused == nil {
			paused = c
		}
	}
	if paused != nil {
		return paused, nil
	}
	return nil, errUnhealthy
}

// usable reports whether a connection in this health state takes calls.
func usable(h protocol.HealthState) bool {
	return h != protocol.HealthUnhealthy && h != protocol.HealthDraining
}

// callResult is one call's outcome.
type callResult struct {
	resp   *protocol.Response
	err    error
	client protocol.Client
}

// send sends ev with the agent's protection: breaker, limiter (a full
// queue fails at once), the timeout and the request's context (the
// client's disconnect cancels the call, and the agent is told). call
// (tracing.go) calls it, in a span when the request is traced.
func (p *pool) send(ctx context.Context, ev protocol.Event, timeout time.Duration, prefer protocol.Client) callResult {
	event := eventName(ev.EventType())
	start := time.Now()
	if p.draining.Load() {
		return p.outcome(event, start, callResult{err: errDraining})
	}
	if !p.brk.allow() {
		return p.outcome(event, start, callResult{err: errBreakerOpen})
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.lim.acquire(cctx); err != nil {
		p.brk.release()
		if !errors.Is(err, errQueueFull) {
			err = fmt.Errorf("waiting in the agent queue: %w", err)
		}
		return p.outcome(event, start, callResult{err: err})
	}
	defer p.lim.release()
	c, err := p.pick(prefer)
	if c == nil && err == nil && !p.live {
		select {
		case <-p.ready: // the first attempt ended: the agent is down
		case <-cctx.Done(): // still making the first connection
		}
		c, err = p.pick(prefer)
	}
	if err != nil {
		// The agent's own report, not a failure of the call: the
		// breaker is left alone.
		p.brk.release()
		return p.outcome(event, start, callResult{err: err})
	}
	if c == nil {
		p.brk.failure()
		return p.outcome(event, start, callResult{err: errAgentDown})
	}
	resp, err := c.Call(cctx, ev)
	switch {
	case err == nil:
		p.brk.success()
	case ctx.Err() != nil:
		p.brk.release() // the client went away: says nothing about the agent
	case errors.Is(err, protocol.ErrPaused) || errors.Is(err, protocol.ErrUnsupported):
		p.brk.release()
	default:
		p.brk.failure()
	}
	if err != nil {
		p.setErr(err)
	}
	return p.outcome(event, start, callResult{resp: resp, err: err, client: c})
}

// notify sends ev without waiting (request_complete); dropped when no
// connection is up or the send queue is full.
func (p *pool) notify(ctx context.Context, ev protocol.Event, prefer protocol.Client) {
	c, _ := p.pick(prefer)
	if c == nil {
		metrics.calls.WithLabelValues(p.s.id, eventName(ev.EventType()), "unavailable").Inc()
		return
	}
	outcome := "ok"
	if err := c.Notify(ctx, ev); err != nil {
		outcome = "error"
	}
	metrics.calls.WithLabelValues(p.s.id, eventName(ev.EventType()), outcome).Inc()
}

// outcome records the call's metrics.
func (p *pool) outcome(event string, start time.Time, r callResult) callResult {
	metrics.latency.WithLabelValues(p.s.id, event).Observe(time.Since(start).Seconds())
	metrics.calls.WithLabelValues(p.s.id, event, outcomeLabel(r.err)).Inc()
	if r.err == nil && r.resp != nil {
		metrics.decisions.WithLabelValues(p.s.id, event, r.resp.Decision.Kind.String()).Inc()
	}
	return r
}

// outcomeLabel classifies an error for the calls_total metric.
func outcomeLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, errBreakerOpen):
		return "breaker_open"
	case errors.Is(err, errQueueFull):
		return "queue_full"
	case errors.Is(err, errAgentDown), errors.Is(err, errDraining):
		return "unavailable"
	case errors.Is(err, errUnhealthy):
		return "unhealthy"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// drain stops new calls, lets the in-flight and queued ones finish
// within the drain timeout (woken by the limiter as each one ends, no
// polling), then closes the connections (cancelling what is left) and
// waits for the pool's goroutines. It runs once; drained is closed at
// the end.
func (p *pool) drain() {
	if p.draining.Swap(true) {
		<-p.drained
		return
	}
	if idle := p.lim.waitIdle(time.Now().Add(p.s.drainTO)); !idle && p.lim.inFlight() > 0 {
		n := p.lim.inFlight()
		p.log.Warn("agent drain timeout: cancelling in-flight calls", zap.Int("in_flight", n))
	}
	p.cancel()
	p.mu.Lock()
	conns := append([]*connBox(nil), p.conns...)
	p.mu.Unlock()
	for _, b := range conns {
		_ = b.c.Close()
	}
	p.wg.Wait()
	close(p.drained)
}

// Destruct implements caddy.Destructor: the last config using the pool
// let it go. The drain runs in the background (a reload never waits for
// a slow agent).
func (p *pool) Destruct() error {
	drains.Add(1)
	go func() {
		defer drains.Done()
		p.drain()
	}()
	return nil
}

// drains tracks background drains, so tests can wait for them.
var drains sync.WaitGroup

// eventName is the metric label of an event type.
func eventName(t protocol.EventType) string { return t.String() }
