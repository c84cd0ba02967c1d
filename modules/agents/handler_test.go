package agents

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/httperr"
)

func uds(id, path string, mods ...func(*AgentConfig)) *AgentConfig {
	c := &AgentConfig{ID: id, UnixSocket: path, Pool: &PoolConfig{Connections: 1, HealthCheckInterval: -1, ReconnectBackoff: caddy.Duration(20 * time.Millisecond), DrainTimeout: caddy.Duration(time.Second)}}
	for _, m := range mods {
		m(c)
	}
	return c
}

func TestDecisions(t *testing.T) {
	ag := &scripted{headers: func(ev *protocol.RequestHeaders) *protocol.Response {
		switch ev.Headers["x-want"][0] {
		case "block":
			return block(451, "nope", map[string]string{"X-Reason": "sqli"})
		case "redirect":
			return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Redirect, URL: "https://login.example/", Status: 307}}
		case "challenge":
			return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Challenge, ChallengeType: "captcha", Params: map[string]string{"site": "k1"}}}
		}
		return &protocol.Response{
			RequestHeaders:  []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-User", Value: "42"}, {Op: protocol.HeaderRemove, Name: "Cookie"}, {Op: protocol.HeaderAdd, Name: "X-Tag", Value: "b"}},
			ResponseHeaders: []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-Agent", Value: "seen"}, {Op: protocol.HeaderRemove, Name: "X-Upstream"}},
		}
	}}
	path := serveAgent(t, ag)
	app := testApp(t, uds("waf", path))
	h := testHandler(t, app, &Filter{Agent: "waf"})

	req := func(want string) *http.Request {
		r := httptest.NewRequest("GET", "http://example.com/p?q=1", nil)
		r.Header.Set("X-Want", want)
		r.Header.Set("Cookie", "secret")
		r.Header.Set("X-Tag", "a")
		return r
	}
	up := &upstream{}
	w := serve(t, h, up, req("allow"))
	if w.Code != 200 || w.Header().Get("X-Agent") != "seen" || w.Header().Get("X-Upstream") != "" {
		t.Fatalf("allow: %d %v", w.Code, w.Header())
	}
	if up.header.Get("X-User") != "42" || up.header.Get("Cookie") != "" || strings.Join(up.header.Values("X-Tag"), ",") != "a,b" {
		t.Fatalf("request header ops: %v", up.header)
	}
	w = serve(t, h, up, req("block"))
	if w.Code != 451 || w.Body.String() != "nope" || w.Header().Get("X-Reason") != "sqli" {
		t.Fatalf("block: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	w = serve(t, h, up, req("redirect"))
	if w.Code != 307 || w.Header().Get("Location") != "https://login.example/" {
		t.Fatalf("redirect: %d %v", w.Code, w.Header())
	}
	w = serve(t, h, up, req("challenge"))
	if w.Code != 403 || !strings.Contains(w.Body.String(), `"challenge":"captcha"`) || w.Header().Get("X-Sentinel-Challenge") != "captcha" {
		t.Fatalf("challenge: %d %q", w.Code, w.Body.String())
	}
	h.Challenge = &ChallengeResponse{Status: 429, Body: "solve {agent.challenge.type} {agent.challenge.param.site}", Headers: http.Header{"X-Challenge-Site": {"{agent.challenge.param.site}"}}}
	w = serve(t, h, up, req("challenge"))
	if w.Code != 429 || w.Body.String() != "solve captcha k1" || w.Header().Get("X-Challenge-Site") != "k1" {
		t.Fatalf("configured challenge: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if up.hits.Load() != 1 {
		t.Fatalf("upstream saw %d requests, want 1", up.hits.Load())
	}
}

// TestParallelFanOut: each agent waits for the other's call; a
// sequential fan-out would time out.
func TestParallelFanOut(t *testing.T) {
	aIn, bIn := make(chan struct{}, 10), make(chan struct{}, 10)
	wait := func(mine, other chan struct{}) func(*protocol.RequestHeaders) *protocol.Response {
		return func(*protocol.RequestHeaders) *protocol.Response {
			mine <- struct{}{}
			select {
			case <-other:
				return nil
			case <-time.After(3 * time.Second):
				return block(500, "not parallel", nil)
			}
		}
	}
	pa := serveAgent(t, &scripted{headers: wait(aIn, bIn)})
	pb := serveAgent(t, &scripted{headers: wait(bIn, aIn)})
	to := func(c *AgentConfig) { c.Timeout = caddy.Duration(10 * time.Second) }
	app := testApp(t, uds("a", pa, to), uds("b", pb, to))
	h := testHandler(t, app, &Filter{Agent: "a"}, &Filter{Agent: "b"})
	w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 {
		t.Fatalf("fan-out: %d %q", w.Code, w.Body.String())
	}
}

// TestFirstNonAllowInFilterOrder: both agents block; the first filter's
// block wins even when the second answers first.
func TestFirstNonAllowInFilterOrder(t *testing.T) {
	pa := serveAgent(t, &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response {
		time.Sleep(50 * time.Millisecond)
		return block(401, "first", nil)
	}})
	pb := serveAgent(t, &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { return block(402, "second", nil) }})
	app := testApp(t, uds("a", pa), uds("b", pb))
	w := serve(t, testHandler(t, app, &Filter{Agent: "a"}, &Filter{Agent: "b"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 401 {
		t.Fatalf("want the first filter's block, got %d %q", w.Code, w.Body.String())
	}
	w = serve(t, testHandler(t, app, &Filter{Agent: "b"}, &Filter{Agent: "a"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 402 {
		t.Fatalf("want the first filter's block, got %d", w.Code)
	}
}

func counter(t *testing.T, agent, event, outcome string) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := metrics.calls.WithLabelValues(agent, event, outcome).Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestFailureModes(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	hung := serveAgent(t, &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { <-hang; return nil }})
	short := func(c *AgentConfig) { c.Timeout = caddy.Duration(100 * time.Millisecond) }
	closed := func(c *AgentConfig) { c.FailureMode = "closed" }
	app := testApp(t, uds("hung-closed", hung, short, closed), uds("hung-open", hung, short))
	// The down agent never connects.
	down := newTestPool(t, uds("down", sockPath(t, "none.sock"), closed))
	app.pools["down"] = down

	w := serve(t, testHandler(t, app, &Filter{Agent: "hung-closed"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 504 {
		t.Fatalf("timeout fail-closed: %d", w.Code)
	}
	before := counter(t, "hung-open", "request_headers", "timeout")
	up := &upstream{}
	w = serve(t, testHandler(t, app, &Filter{Agent: "hung-open"}), up, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || up.hits.Load() != 1 {
		t.Fatalf("timeout fail-open: %d", w.Code)
	}
	if counter(t, "hung-open", "request_headers", "timeout") != before+1 {
		t.Fatal("timeout not counted")
	}
	// The filter overrides the agent's mode.
	w = serve(t, testHandler(t, app, &Filter{Agent: "hung-open", FailureMode: "closed", Timeout: caddy.Duration(50 * time.Millisecond)}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 504 {
		t.Fatalf("filter override: %d", w.Code)
	}
	w = serve(t, testHandler(t, app, &Filter{Agent: "down"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 {
		t.Fatalf("agent down fail-closed: %d", w.Code)
	}
	w = serve(t, testHandler(t, app, &Filter{Agent: "nobody", FailureMode: "closed"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 {
		t.Fatalf("unknown agent fail-closed: %d", w.Code)
	}
	w = serve(t, testHandler(t, app, &Filter{Agent: "nobody"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 {
		t.Fatalf("unknown agent fail-open: %d", w.Code)
	}
	// Breaker: after 5 timeouts it is open and calls fail at once (503).
	for i := 0; i < 5; i++ {
		serve(t, testHandler(t, app, &Filter{Agent: "hung-closed"}), nil, httptest.NewRequest("GET", "/", nil))
	}
	start := time.Now()
	w = serve(t, testHandler(t, app, &Filter{Agent: "hung-closed"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 || time.Since(start) > 90*time.Millisecond*10 {
		t.Fatalf("breaker open: %d after %v", w.Code, time.Since(start))
	}
	if app.pools["hung-closed"].brk.current() != breakerOpen {
		t.Fatal("breaker not open")
	}
}

// TestQueueFullIsolation: a hung agent with one slot and no queue fails
// new calls at once (503 fail-closed) and does not slow a healthy agent.
func TestQueueFullIsolation(t *testing.T) {
	hang := make(chan struct{})
	hung := serveAgent(t, &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { <-hang; return nil }})
	healthy := serveAgent(t, &scripted{})
	zero := 0
	app := testApp(t, uds("hung", hung, func(c *AgentConfig) {
		c.FailureMode, c.MaxConcurrentCalls, c.Pool.QueueDepth, c.Timeout = "closed", 1, &zero, caddy.Duration(30*time.Second)
	}), uds("ok", healthy))
	defer close(hang)
	hh := testHandler(t, app, &Filter{Agent: "hung"})
	first := make(chan int)
	go func() { first <- serve(t, hh, nil, httptest.NewRequest("GET", "/", nil)).Code }()
	waitFor(t, func() bool { return app.pools["hung"].lim.inFlight() == 1 })
	start := time.Now()
	w := serve(t, hh, nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 || time.Since(start) > 5*time.Second {
		t.Fatalf("queue full: %d after %v", w.Code, time.Since(start))
	}
	if counter(t, "hung", "request_headers", "queue_full") < 1 {
		t.Fatal("queue_full not counted")
	}
	okh := testHandler(t, app, &Filter{Agent: "ok"})
	for i := 0; i < 20; i++ {
		start := time.Now()
		if w := serve(t, okh, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 200 || time.Since(start) > 5*time.Second {
			t.Fatalf("healthy agent: %d after %v", w.Code, time.Since(start))
		}
	}
	// The list shows the hung agent's state.
	reg.current.Store(app)
	defer reg.current.Store(nil)
	var hungEntry *Status
	for _, e := range List() {
		if e.ID == "hung" {
			hungEntry = &e
		}
	}
	if hungEntry == nil || hungEntry.InFlight != 1 || !hungEntry.Connected || hungEntry.Dialect != "rust" {
		t.Fatalf("list: %v", List())
	}
	hang <- struct{}{}
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d", code)
	}
}

func TestRequestBodyModes(t *testing.T) {
	ag := &scripted{body: func(ev *protocol.RequestBodyChunk) *protocol.Response {
		if strings.Contains(string(ev.Data), "evil") {
			return block(403, "body blocked", nil)
		}
		if strings.Contains(string(ev.Data), "x") {
			return nil
		}
		return &protocol.Response{RequestBodyMutation: &protocol.BodyMutation{Data: []byte(strings.ToUpper(string(ev.Data)))}}
	}}
	path := serveAgent(t, ag, protocol.EventRequestHeaders, protocol.EventRequestBodyChunk)
	ev := func(c *AgentConfig) {
		c.Events = []string{"request_headers", "request_body"}
		c.MaxRequestBodyBytes = 64
		c.ChunkBytes = 8
	}
	app := testApp(t, uds("buf", path, ev), uds("str", path, ev, func(c *AgentConfig) { c.RequestBodyMode = "stream" }),
		uds("hyb", path, ev, func(c *AgentConfig) { c.RequestBodyMode = "hybrid:16" }),
		uds("closed", path, ev, func(c *AgentConfig) { c.FailureMode = "closed" }))
	post := func(body string) *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader(body)) }
	for _, id := range []string{"buf", "str", "hyb"} {
		h := testHandler(t, app, &Filter{Agent: id})
		up := &upstream{}
		if w := serve(t, h, up, post("please upper this")); w.Code != 200 || up.body != "PLEASE UPPER THIS" {
			t.Errorf("%s mutation: %d %q", id, w.Code, up.body)
		}
		up = &upstream{}
		if w := serve(t, h, up, post("an evil body here, long enough to stream")); w.Code != 403 || w.Body.String() != "body blocked" {
			t.Errorf("%s block: %d %q", id, w.Code, w.Body.String())
		}
	}
	// Over the limit: fail-open skips (the body still reaches the upstream), fail-closed answers 413.
	big := strings.Repeat("x", 100)
	up := &upstream{}
	if w := serve(t, testHandler(t, app, &Filter{Agent: "buf"}), up, post(big)); w.Code != 200 || up.body != big {
		t.Fatalf("too large fail-open: %d %d", w.Code, len(up.body))
	}
	if w := serve(t, testHandler(t, app, &Filter{Agent: "closed"}), nil, post(big)); w.Code != 413 {
		t.Fatalf("too large fail-closed: %d", w.Code)
	}
	if w := serve(t, testHandler(t, app, &Filter{Agent: "str", FailureMode: "closed"}), nil, post(big)); w.Code != 413 {
		t.Fatalf("too large stream fail-closed: %d", w.Code)
	}
	// An agent that does not want the body leaves it alone.
	plain := serveAgent(t, &scripted{})
	app.pools["plain"] = testApp(t, uds("plain", plain)).pools["plain"]
	up = &upstream{}
	if w := serve(t, testHandler(t, app, &Filter{Agent: "plain"}), up, post(big)); w.Code != 200 || up.body != big {
		t.Fatalf("no body agent: %d", w.Code)
	}
}

func TestNeedsMoreHoldsChunks(t *testing.T) {
	var seen []string
	ag := &scripted{body: func(ev *protocol.RequestBodyChunk) *protocol.Response {
		seen = append(seen, string(ev.Data))
		if !ev.IsLast {
			return &protocol.Response{NeedsMore: true}
		}
		if strings.Contains(strings.Join(seen, ""), "evilword") {
			return block(403, "late block", nil)
		}
		return nil
	}}
	path := serveAgent(t, ag, protocol.EventRequestBodyChunk)
	app := testApp(t, uds("s", path, func(c *AgentConfig) {
		c.Events, c.RequestBodyMode, c.ChunkBytes = []string{"request_body"}, "stream", 4
	}))
	up := &upstream{}
	// "evil" + "word" straddle chunks: held back until the last chunk, then blocked.
	w := serve(t, testHandler(t, app, &Filter{Agent: "s"}), up, httptest.NewRequest("POST", "/", strings.NewReader("xxevilwordyy")))
	if w.Code != 403 || up.body != "" {
		t.Fatalf("needs_more: %d upstream got %q", w.Code, up.body)
	}
	seen = nil
	w = serve(t, testHandler(t, app, &Filter{Agent: "s"}), up, httptest.NewRequest("POST", "/", strings.NewReader("fine body")))
	if w.Code != 200 || up.body != "fine body" {
		t.Fatalf("needs_more allow: %d %q", w.Code, up.body)
	}
}

func TestResponsePhase(t *testing.T) {
	ag := &scripted{
		respHdr: func(ev *protocol.ResponseHeaders) *protocol.Response {
			if ev.Status == 500 {
				return block(502, "hidden error", map[string]string{"X-Masked": "1"})
			}
			return &protocol.Response{ResponseHeaders: []protocol.HeaderOp{{Op: protocol.HeaderAdd, Name: "X-Resp", Value: "1"}}}
		},
		respBody: func(ev *protocol.ResponseBodyChunk) *protocol.Response {
			if strings.Contains(string(ev.Data), "secret") {
				return &protocol.Response{ResponseBodyMutation: &protocol.BodyMutation{Data: []byte(strings.ReplaceAll(string(ev.Data), "secret", "******"))}}
			}
			if strings.Contains(string(ev.Data), "leak") {
				return block(451, "leak", nil)
			}
			return nil
		},
	}
	path := serveAgent(t, ag, protocol.EventResponseHeaders, protocol.EventResponseBodyChunk)
	evs := func(c *AgentConfig) {
		c.Events = []string{"response_headers", "response_body"}
		c.MaxResponseBodyBytes = 1024
	}
	app := testApp(t, uds("rb", path, evs), uds("rs", path, evs, func(c *AgentConfig) { c.ResponseBodyMode = "stream" }))
	h := testHandler(t, app, &Filter{Agent: "rb", Phase: "response"})
	w := serve(t, h, &upstream{reply: "the secret is out"}, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || w.Body.String() != "the ****** is out" || w.Header().Get("X-Resp") != "1" {
		t.Fatalf("response mutation: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	w = serve(t, h, &upstream{reply: "a leak"}, httptest.NewRequest("GET", "/", nil))
	if w.Code != 451 {
		t.Fatalf("response body block: %d", w.Code)
	}
	w = serve(t, h, &upstream{status: 500, reply: "stack trace"}, httptest.NewRequest("GET", "/", nil))
	if w.Code != 502 || w.Body.String() != "hidden error" || w.Header().Get("X-Masked") != "1" || w.Header().Get("X-Upstream") != "" {
		t.Fatalf("response header block: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	hs := testHandler(t, app, &Filter{Agent: "rs"})
	w = serve(t, hs, &upstream{reply: "stream secret"}, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || w.Body.String() != "stream ******" {
		t.Fatalf("stream mutation: %d %q", w.Code, w.Body.String())
	}
	// The request phase only: response events are not sent.
	before := ag.calls.Load()
	serve(t, testHandler(t, app, &Filter{Agent: "rb", Phase: "request"}), nil, httptest.NewRequest("GET", "/", nil))
	if ag.calls.Load() != before {
		t.Fatal("response events sent to a request-phase filter")
	}
}

func TestRequestComplete(t *testing.T) {
	ag := &scripted{complete: make(chan *protocol.RequestComplete, 1)}
	path := serveAgent(t, ag, protocol.EventRequestHeaders, protocol.EventRequestComplete)
	app := testApp(t, uds("log", path, func(c *AgentConfig) { c.Events = []string{"request_headers", "log"} }))
	w := serve(t, testHandler(t, app, &Filter{Agent: "log"}), &upstream{status: 201, reply: "12345"}, httptest.NewRequest("POST", "/", strings.NewReader("abc")))
	if w.Code != 201 {
		t.Fatal(w.Code)
	}
	select {
	case ev := <-ag.complete:
		if ev.Status != 201 || ev.ResponseBodySize != 5 || ev.RequestBodySize != 3 {
			t.Fatalf("request_complete: %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no request_complete")
	}
}

// TestAppReuseAcrossReload: an unchanged agent keeps its pool (and
// connection) across a reload; a changed one gets a new pool and the
// old one drains; the config block reaches the agent.
func TestAppReuseAcrossReload(t *testing.T) {
	ag := &scripted{}
	path := serveAgent(t, ag)
	load := func(cfgs ...*AgentConfig) (*App, context.CancelFunc) {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		a := &App{Agents: cfgs}
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		return a, cancel
	}
	withCfg := func(c *AgentConfig) { c.Config = []byte(`{"rules":["x"]}`) }
	a1, c1 := load(uds("keep", path, withCfg), uds("change", path))
	waitFor(t, func() bool { return a1.pools["keep"].connected() == 1 })
	a2, c2 := load(uds("keep", path, withCfg), uds("change", path, func(c *AgentConfig) { c.Timeout = caddy.Duration(2 * time.Second) }))
	if a2.pools["keep"] != a1.pools["keep"] {
		t.Fatal("unchanged agent got a new pool")
	}
	if a2.pools["change"] == a1.pools["change"] {
		t.Fatal("changed agent kept its pool")
	}
	old := a1.pools["change"]
	_ = a1.Stop()
	_ = a1.Cleanup()
	c1()
	select {
	case <-old.drained:
	case <-time.After(10 * time.Second):
		t.Fatal("old pool not drained")
	}
	if a2.pools["keep"].draining.Load() {
		t.Fatal("kept pool drained")
	}
	ag.mu.Lock()
	cfg := string(ag.config)
	ag.mu.Unlock()
	if cfg != `{"rules":["x"]}` {
		t.Fatalf("config delivered: %q", cfg)
	}
	if _, err := (&App{Agents: []*AgentConfig{uds("d", path), uds("d", path)}}).provisionOnly(); err == nil {
		t.Fatal("duplicate id accepted")
	}
	_ = a2.Stop()
	_ = a2.Cleanup()
	c2()
	drains.Wait()
}

// provisionOnly provisions with a bare context and cleans up.
func (a *App) provisionOnly() (*App, error) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := a.Provision(ctx)
	_ = a.Cleanup()
	drains.Wait()
	return a, err
}

func TestCaddyModule(t *testing.T) {
	if (App{}).CaddyModule().ID != "sentinel_agents" || (Handler{}).CaddyModule().ID != "http.handlers.sentinel_agents" {
		t.Fatal("module ids")
	}
	var _ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ = io.EOF
}

// TestSameAgentTwice: a route naming one agent twice gets two calls
// (distinct correlation ids), not a duplicate-call failure.
func TestSameAgentTwice(t *testing.T) {
	ag := &scripted{}
	path := serveAgent(t, ag)
	app := testApp(t, uds("a", path, func(c *AgentConfig) { c.FailureMode = "closed" }))
	before := ag.calls.Load()
	w := serve(t, testHandler(t, app, &Filter{Agent: "a"}, &Filter{Agent: "a"}), nil, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || ag.calls.Load() != before+2 {
		t.Fatalf("same agent twice: %d, %d calls", w.Code, ag.calls.Load()-before)
	}
}

// TestFlowControlAndHealth: an agent that pauses its connections gets no
// calls (fail-closed: 503) until it resumes; its health reports show in
// the API list.
func TestFlowControlAndHealth(t *testing.T) {
	ctl := sdk.NewController()
	path := sockPath(t, "fc.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.ServeUDS(ctx, path, &scripted{}, sdk.Options{AgentID: "fc", Controller: ctl})
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { _, err := os.Stat(path); return err == nil })
	app := testApp(t, uds("fc", path, func(c *AgentConfig) { c.FailureMode = "closed" }))
	h := testHandler(t, app, &Filter{Agent: "fc"})
	if w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 200 {
		t.Fatalf("before pause: %d", w.Code)
	}
	ctl.Pause()
	waitFor(t, func() bool { return serve(t, h, nil, httptest.NewRequest("GET", "/", nil)).Code == 503 })
	ctl.Resume()
	waitFor(t, func() bool { return serve(t, h, nil, httptest.NewRequest("GET", "/", nil)).Code == 200 })
	ctl.SetHealth(protocol.HealthDegraded, "busy")
	reg.current.Store(app)
	defer reg.current.Store(nil)
	waitFor(t, func() bool { return List()[0].Health == "degraded" })
}

// cancelAgent hangs on request headers and reports cancels.
type cancelAgent struct {
	scripted
	got      chan struct{}
	canceled chan *protocol.Cancel
}

func (c *cancelAgent) OnRequestHeaders(ctx context.Context, _ *protocol.RequestHeaders) *protocol.Response {
	c.got <- struct{}{}
	<-ctx.Done()
	return nil
}

func (c *cancelAgent) OnCancel(_ context.Context, cl *protocol.Cancel) { c.canceled <- cl }

// TestClientDisconnectCancels: a client that goes away cancels the agent
// call, and the agent is told why.
func TestClientDisconnectCancels(t *testing.T) {
	ag := &cancelAgent{got: make(chan struct{}, 1), canceled: make(chan *protocol.Cancel, 4)}
	path := serveAgent(t, ag)
	app := testApp(t, uds("c", path, func(c *AgentConfig) { c.Timeout = caddy.Duration(30 * time.Second) }))
	h := testHandler(t, app, &Filter{Agent: "c"})
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); serve(t, h, nil, r) }()
	<-ag.got
	cancel()
	select {
	case cl := <-ag.canceled:
		if cl.Reason != protocol.CancelClientDisconnect {
			t.Fatalf("cancel reason %v", cl.Reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent not told of the disconnect")
	}
	<-done
	if counter(t, "c", "request_headers", "canceled") < 1 {
		t.Fatal("canceled call not counted")
	}
}

// TestFailureIsHandlerError: a fail-closed failure is the handler's
// error (caddyhttp.Error with a public message), for Caddy's logs and
// error routes, not a response written by the handler; in the response
// phase nothing of the upstream's response goes out.
func TestFailureIsHandlerError(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	path := serveAgent(t, &scripted{
		headers: func(*protocol.RequestHeaders) *protocol.Response { <-hang; return nil },
		respHdr: func(*protocol.ResponseHeaders) *protocol.Response { <-hang; return nil },
	}, protocol.EventRequestHeaders, protocol.EventResponseHeaders)
	cfg := func(c *AgentConfig) {
		c.Timeout = caddy.Duration(50 * time.Millisecond)
		c.FailureMode = "closed"
		c.Events = []string{"request_headers", "response_headers"}
	}
	app := testApp(t, uds("fe", path, cfg))
	for phase, want := range map[string]int{"request": 504, "response": 504} {
		h := testHandler(t, app, &Filter{Agent: "fe", Phase: phase})
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		err := h.ServeHTTP(w, r, &upstream{reply: "upstream secret"})
		he, ok := err.(caddyhttp.HandlerError)
		if !ok || he.StatusCode != want {
			t.Fatalf("%s: %#v, want a %d handler error", phase, err, want)
		}
		if p := httperr.As(err); p == nil || p.Message != "Gateway timeout" || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: public part %+v of %v", phase, p, err)
		}
		if w.Body.Len() != 0 || w.Header().Get("X-Upstream") != "" || w.Header().Get("Content-Type") != "" {
			t.Errorf("%s: written %v %q", phase, w.Header(), w.Body.String())
		}
		if breaker := app.pools["fe"].brk; breaker.current() == breakerOpen {
			breaker.success()
		}
	}
	if got := failError(http.StatusBadRequest, nil); httperr.As(got).Message != "Bad request" {
		t.Errorf("400: %v", got)
	}
}
