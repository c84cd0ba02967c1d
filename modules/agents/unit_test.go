package agents

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

func TestBreaker(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBreaker(&BreakerConfig{FailureThreshold: 2, SuccessThreshold: 2, Timeout: caddy.Duration(time.Second), HalfOpenMaxRequests: 1})
	b.now = func() time.Time { return now }
	for i := 0; i < 2; i++ {
		if !b.allow() {
			t.Fatal("closed breaker refused")
		}
		b.failure()
	}
	if b.allow() || b.current() != breakerOpen {
		t.Fatalf("breaker not open after 2 failures: %v", b.current())
	}
	now = now.Add(time.Second)
	if b.current() != breakerHalfOpen {
		t.Fatalf("want half-open after the timeout, got %v", b.current())
	}
	if !b.allow() {
		t.Fatal("half-open breaker refused the probe")
	}
	if b.allow() {
		t.Fatal("half-open breaker let a second probe through")
	}
	b.failure() // the probe failed: open again
	if b.allow() {
		t.Fatal("breaker not re-opened by a failed probe")
	}
	now = now.Add(time.Second)
	for i := 0; i < 2; i++ {
		if !b.allow() {
			t.Fatalf("probe %d refused", i)
		}
		b.success()
	}
	if b.current() != breakerClosed || b.current().String() != "closed" {
		t.Fatalf("breaker not closed after 2 successes: %v", b.current())
	}
	// A released probe frees its slot.
	b2 := newBreaker(&BreakerConfig{FailureThreshold: 1, Timeout: caddy.Duration(time.Nanosecond)})
	b2.allow()
	b2.failure()
	time.Sleep(time.Millisecond)
	if !b2.allow() {
		t.Fatal("probe refused")
	}
	b2.release()
	if !b2.allow() {
		t.Fatal("released probe slot not reusable")
	}
	if breakerOpen.String() != "open" || breakerHalfOpen.String() != "half_open" {
		t.Fatal("state names")
	}
}

func TestLimiterQueueFullFailsFast(t *testing.T) {
	l := newLimiter(1, 1)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	// One may wait…
	waited := make(chan error, 1)
	go func() { waited <- l.acquire(context.Background()) }()
	waitFor(t, func() bool { return l.queueDepth() == 1 })
	// …the next fails at once.
	start := time.Now()
	if err := l.acquire(context.Background()); !errors.Is(err, errQueueFull) {
		t.Fatalf("want errQueueFull, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("queue-full failure took %v", d)
	}
	if l.tryAcquire() {
		t.Fatal("tryAcquire took a taken slot")
	}
	l.release()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if l.inFlight() != 1 {
		t.Fatalf("in flight %d", l.inFlight())
	}
	// A waiter whose context ends leaves the queue.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline, got %v", err)
	}
	if l.queueDepth() != 0 {
		t.Fatal("queue not emptied")
	}
	l.release()
	if !l.tryAcquire() {
		t.Fatal("free slot refused")
	}
	l.release()
	if newLimiter(0, -1).maxQueue != 0 {
		t.Fatal("negative queue")
	}
}

func TestConfigValidation(t *testing.T) {
	q := 3
	good := &AgentConfig{ID: "a", UnixSocket: "/x", Events: []string{"request-headers", "log", "response_body"}, FailureMode: "fail_closed",
		RequestBodyMode: "hybrid:100", ResponseBodyMode: "stream", Config: json.RawMessage(`{"k":1}`),
		Pool: &PoolConfig{Connections: 2, QueueDepth: &q, ReconnectBackoff: caddy.Duration(time.Second), MaxReconnectBackoff: caddy.Duration(time.Millisecond)}}
	s, err := good.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !s.failClosed || s.hybridBytes != 100 || s.reqMode != "hybrid" || s.respMode != "stream" || s.queue != 3 || s.connections != 2 ||
		!s.events[EventRequestComplete] || !s.events[EventRequestHeaders] || s.maxBackoff != time.Second || s.timeout != time.Second {
		t.Fatalf("resolved: %+v", s)
	}
	s2, _ := (&AgentConfig{ID: "a", UnixSocket: "/x", Events: []string{"request_headers", "log", "response_body"}, FailureMode: "closed",
		RequestBodyMode: "hybrid:100", ResponseBodyMode: "stream", Config: json.RawMessage(`{"k":1}`),
		Pool: &PoolConfig{Connections: 2, QueueDepth: &q, ReconnectBackoff: caddy.Duration(time.Second), MaxReconnectBackoff: caddy.Duration(time.Millisecond)}}).resolve()
	if s2.hash == s.hash {
		t.Fatal("different configs, same hash")
	}
	g, err := (&AgentConfig{ID: "g", GRPC: "https://h:1", GRPCPackage: "zentinel.agent.v2"}).resolve()
	if err != nil || !g.grpcTLS || g.address != "h:1" || g.network != "grpc" {
		t.Fatalf("grpc: %+v %v", g, err)
	}
	bad := map[string]*AgentConfig{
		"without an id":          {UnixSocket: "/x"},
		"needs a transport":      {ID: "a"},
		"not both":               {ID: "a", UnixSocket: "/x", GRPC: "http://h:1"},
		"tls applies to grpc":    {ID: "a", UnixSocket: "/x", TLS: &TLSConfig{}},
		"not an http://":         {ID: "a", GRPC: "ftp://h:1"},
		"grpc_package":           {ID: "a", GRPC: "http://h:1", GRPCPackage: "x"},
		"unknown event":          {ID: "a", UnixSocket: "/x", Events: []string{"request_hedaers"}},
		"failure mode":           {ID: "a", UnixSocket: "/x", FailureMode: "half"},
		"timeouts":               {ID: "a", UnixSocket: "/x", Timeout: -1},
		"byte sizes":             {ID: "a", UnixSocket: "/x", MaxRequestBodyBytes: -1},
		"body mode":              {ID: "a", UnixSocket: "/x", RequestBodyMode: "chunky"},
		"positive byte count":    {ID: "a", UnixSocket: "/x", ResponseBodyMode: "hybrid:0"},
		"max_concurrent_calls":   {ID: "a", UnixSocket: "/x", MaxConcurrentCalls: -1},
		"connections must be":    {ID: "a", UnixSocket: "/x", Pool: &PoolConfig{Connections: -1}},
		"circuit_breaker values": {ID: "a", UnixSocket: "/x", CircuitBreaker: &BreakerConfig{FailureThreshold: -1}},
		"not valid JSON":         {ID: "a", UnixSocket: "/x", Config: json.RawMessage(`{`)},
	}
	for want, c := range bad {
		if _, err := c.resolve(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
	// Filters.
	for want, f := range map[string]*Filter{
		"has no agent": {},
		"phase":        {Agent: "a", Phase: "sideways"},
		"failure mode": {Agent: "a", FailureMode: "x"},
		"body mode":    {Agent: "a", BodyMode: "x"},
		"negative":     {Agent: "a", Timeout: -1},
	} {
		h := &Handler{Filters: []*Filter{f}}
		if err := h.setup(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("filter %s: got %v", want, err)
		}
	}
	if err := (&Handler{}).setup(); err == nil {
		t.Error("handler without filters accepted")
	}
	// Registration.
	for want, rc := range map[string]*RegistrationConfig{
		"exactly one":       {},
		"needs tls":         {Address: "127.0.0.1:1", Tokens: []string{"t"}},
		"must authenticate": {UnixSocket: "/x"},
		"empty token":       {UnixSocket: "/x", Tokens: []string{""}},
		"defaults":          {UnixSocket: "/x", Tokens: []string{"t"}, Defaults: &AgentConfig{FailureMode: "x"}},
		"registration tls":  {Address: "127.0.0.1:1", TLS: &ServerTLSConfig{CertFile: "/nonexistent"}},
	} {
		if _, err := rc.resolve(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("registration %s: got %v", want, err)
		}
	}
	rs, err := (&RegistrationConfig{UnixSocket: "/x", Tokens: []string{"s3cret", "other"}}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !rs.tokenOK("s3cret") || !rs.tokenOK("other") || rs.tokenOK("s3cre") || rs.tokenOK("") {
		t.Fatal("token comparison")
	}
}

// TestDrain: on drain, an in-flight call that finishes within the drain
// timeout gets its answer; one that does not is cancelled when the
// timeout ends; new calls fail at once.
func TestDrain(t *testing.T) {
	release := make(chan struct{})
	path := serveAgent(t, &scripted{headers: func(ev *protocol.RequestHeaders) *protocol.Response {
		if ev.URI == "/slow" {
			<-release
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}})
	defer close(release)
	s, err := uds("d", path, func(c *AgentConfig) {
		c.Timeout = caddy.Duration(30 * time.Second)
		c.Pool.DrainTimeout = caddy.Duration(500 * time.Millisecond)
	}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(s, zap.NewNop(), false)
	p.start()
	waitFor(t, func() bool { return p.connected() == 1 })
	ev := func(uri string) *protocol.RequestHeaders {
		return &protocol.RequestHeaders{Metadata: protocol.RequestMetadata{CorrelationID: uri}, Method: "GET", URI: uri, Headers: map[string][]string{}}
	}
	fast, slow := make(chan callResult, 1), make(chan callResult, 1)
	go func() { fast <- p.call(context.Background(), ev("/fast"), s.timeout, nil) }()
	go func() { slow <- p.call(context.Background(), ev("/slow"), s.timeout, nil) }()
	waitFor(t, func() bool { return p.lim.inFlight() == 2 })
	start := time.Now()
	_ = p.Destruct()
	if r := <-fast; r.err != nil {
		t.Fatalf("in-flight call within the drain timeout: %v", r.err)
	}
	if r := p.call(context.Background(), ev("/new"), s.timeout, nil); !errors.Is(r.err, errDraining) {
		t.Fatalf("new call while draining: %v", r.err)
	}
	r := <-slow
	if r.err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("call past the drain timeout: %v after %v", r.err, time.Since(start))
	}
	drains.Wait()
	if p.connected() != 0 {
		t.Fatal("connections left after the drain")
	}
}
