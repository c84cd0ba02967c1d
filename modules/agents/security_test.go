package agents

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

// serveAgentWith runs h over a Unix socket with opts until the test ends.
func serveAgentWith(t testing.TB, h sdk.Handler, opts sdk.Options) (path string, stop func()) {
	t.Helper()
	path = sockPath(t, "a.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.ServeUDS(ctx, path, h, opts)
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	waitFor(t, func() bool {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return path, stop
}

// logText renders observed log entries with their fields as JSON, the
// way the production encoder would.
func logText(t testing.TB, logs *observer.ObservedLogs) string {
	t.Helper()
	var b strings.Builder
	for _, e := range logs.All() {
		b.WriteString(e.Message)
		enc := zapcore.NewMapObjectEncoder()
		for _, f := range e.Context {
			f.AddTo(enc)
		}
		j, _ := json.Marshal(enc.Fields)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestRegistrationRefusesConfiguredID: with a token but without
// allow_configured_ids, a live agent cannot register with the id of a
// configured agent (issue 12.6: an impersonator took 7 of 20 requests
// past a block-all WAF). It is told why, the refusal is logged without
// the token, and the WAF keeps all the traffic. With the opt-in, the
// connection joins the configured pool.
func TestRegistrationRefusesConfiguredID(t *testing.T) {
	const token = "Zx9-registration-secret"
	waf := &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { return block(403, "waf", nil) }}
	wafSock := serveAgent(t, waf)
	sock := sockPath(t, "reg.sock")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{
		Agents:       []*AgentConfig{uds("waf", wafSock, func(c *AgentConfig) { c.FailureMode = "closed" })},
		Registration: &RegistrationConfig{UnixSocket: sock, TokenSHA256: []string{TokenHash(token)}},
	}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	app.log = zap.New(core)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = app.Stop()
		_ = app.Cleanup()
		drains.Wait()
	}()
	wafPool := app.pools["waf"]
	waitFor(t, func() bool { return wafPool.connected() == 1 })

	// The impersonator: right token, configured id, allows everything.
	imp := &scripted{}
	err := sdk.Register(context.Background(), sock, token, imp, sdk.Options{AgentID: "waf", HandshakeTimeout: 5 * time.Second})
	if !errors.Is(err, protocol.ErrRegistrationRefused) || !strings.Contains(err.Error(), `agent "waf" is a configured agent`) || !strings.Contains(err.Error(), "allow-configured-ids") {
		t.Fatalf("impersonation: %v", err)
	}
	if wafPool.connected() != 1 || reg.livePool("waf") != nil {
		t.Fatalf("impersonator added: waf pool %d connections, live %v", wafPool.connected(), reg.livePool("waf"))
	}
	h := testHandler(t, app, &Filter{Agent: "waf"})
	for i := 0; i < 20; i++ {
		if w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 403 {
			t.Fatalf("request %d passed the block-all WAF: %d", i, w.Code)
		}
	}
	if imp.calls.Load() != 0 {
		t.Fatalf("the impersonator saw %d requests", imp.calls.Load())
	}
	// A wrong token is refused with a reason too.
	err = sdk.Register(context.Background(), sock, "Zx9-wrong", imp, sdk.Options{AgentID: "bot", HandshakeTimeout: 5 * time.Second})
	if !errors.Is(err, protocol.ErrRegistrationRefused) || !strings.Contains(err.Error(), "wrong token") {
		t.Fatalf("wrong token: %v", err)
	}
	text := logText(t, logs)
	if !strings.Contains(text, `agent registration refused{"agent":"waf"`) || !strings.Contains(text, "is a configured agent") {
		t.Errorf("no audit line for the refusal:\n%s", text)
	}
	if strings.Contains(text, "Zx9") {
		t.Errorf("a token was logged:\n%s", text)
	}

	// The explicit opt-in lets a live connection join the configured pool.
	rs := *app.regCfg
	rs.allowConfigured = true
	_, ln, err := claimListener(&rs, app.log)
	if err != nil {
		t.Fatal(err)
	}
	ln.use(&rs)
	defer reg.listeners.Delete("unix:" + sock)
	actx, acancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.Register(actx, sock, token, imp, sdk.Options{AgentID: "waf"})
	}()
	waitFor(t, func() bool { return wafPool.connected() == 2 })
	acancel()
	<-done
}

// TestTokenSHA256: the hashed form is accepted and checked; malformed
// hashes are refused without echoing them.
func TestTokenSHA256(t *testing.T) {
	if h := TokenHash("abc"); h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("TokenHash = %s", h)
	}
	rs, err := (&RegistrationConfig{UnixSocket: "/x", TokenSHA256: []string{TokenHash("abc")}, Tokens: []string{"plain"}}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !rs.tokenOK("abc") || !rs.tokenOK("plain") || rs.tokenOK("abd") || rs.tokenOK("") {
		t.Fatal("token check")
	}
	for _, bad := range []string{"zz", strings.ToUpper(TokenHash("abc")), TokenHash("abc")[:62]} {
		_, err := (&RegistrationConfig{UnixSocket: "/x", TokenSHA256: []string{bad}}).resolve()
		if err == nil || !strings.Contains(err.Error(), "token_sha256[0] is not a SHA-256 digest") || strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestUnhealthyAgentIsDown: an agent that reports itself unhealthy over
// the protocol but still answers is not used (issue 13.6): fail-open
// skips it, fail-closed answers 503, until it reports healthy again.
func TestUnhealthyAgentIsDown(t *testing.T) {
	ctl := sdk.NewController()
	ag := &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { return block(403, "blocked", nil) }}
	path, _ := serveAgentWith(t, ag, sdk.Options{AgentID: "sick", Controller: ctl})
	app := testApp(t, uds("open", path), uds("closed", path, func(c *AgentConfig) { c.FailureMode = "closed" }))
	open, closed := testHandler(t, app, &Filter{Agent: "open"}), testHandler(t, app, &Filter{Agent: "closed"})
	if w := serve(t, open, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 403 {
		t.Fatalf("healthy agent: %d", w.Code)
	}
	ctl.SetHealth(protocol.HealthUnhealthy, "db down")
	waitFor(t, func() bool {
		return app.pools["open"].conns[0].c.Health().State == protocol.HealthUnhealthy && app.pools["closed"].conns[0].c.Health().State == protocol.HealthUnhealthy
	})
	before := ag.calls.Load()
	for i := 0; i < 5; i++ {
		if w := serve(t, open, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 200 {
			t.Fatalf("unhealthy agent, fail-open: %d (the agent decided)", w.Code)
		}
		if w := serve(t, closed, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 503 {
			t.Fatalf("unhealthy agent, fail-closed: %d", w.Code)
		}
	}
	if n := ag.calls.Load() - before; n != 0 {
		t.Fatalf("the unhealthy agent got %d calls", n)
	}
	ctl.SetHealth(protocol.HealthHealthy, "")
	waitFor(t, func() bool {
		return serve(t, open, nil, httptest.NewRequest("GET", "/", nil)).Code == 403 && serve(t, closed, nil, httptest.NewRequest("GET", "/", nil)).Code == 403
	})
	if got := outcomeLabel(errUnhealthy); got != "unhealthy" {
		t.Errorf("outcome label %q", got)
	}
}

// TestValidateDoesNotDial: provisioning (caddy validate, sentinel
// validate) does not connect to agents; Start does.
func TestValidateDoesNotDial(t *testing.T) {
	path := sockPath(t, "count.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer ln.Close()
	cfg := map[string]any{"agents": []any{map[string]any{"id": "a", "unix_socket": path, "pool": map[string]any{"connections": 2}}}}
	raw, _ := json.Marshal(cfg)
	if err := caddy.Validate(&caddy.Config{Admin: &caddy.AdminConfig{Disabled: true}, AppsRaw: caddy.ModuleMap{"sentinel_agents": raw}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("validate dialled the agent %d times", n)
	}
	drains.Wait()

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{Agents: []*AgentConfig{uds("a", path)}}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("Provision dialled the agent %d times", n)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return accepted.Load() > 0 })
	_ = app.Stop()
	_ = app.Cleanup()
	drains.Wait()
}

// TestAgentLogHasOneAgentKey: the protocol client's log lines carry the
// configured id once as "agent" and the agent's own id as
// "reported_id" (issue 14: `"agent":"deny","agent":"denylist"`).
func TestAgentLogHasOneAgentKey(t *testing.T) {
	// A raw agent that calls itself "denylist", then breaks the protocol.
	path := sockPath(t, "raw.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stop, done := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-done }() // no goroutine outlives the test (goleak)
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close() // later dials fail at once
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := protocol.ReadFrame(c, protocol.DialectRust); err != nil {
			return
		}
		resp := `{"protocol_version":2,"success":true,"error":null,"encoding":"json","capabilities":{"agent_id":"denylist","name":"denylist","version":"1","supported_events":[1],` +
			`"features":{"streaming_body":false,"websocket":false,"guardrails":false,"config_push":false,"metrics_export":false,"concurrent_requests":100,"cancellation":true,"flow_control":false,"health_reporting":false},` +
			`"limits":{"max_body_size":1048576,"max_concurrency":100,"preferred_chunk_size":65536}}}`
		_ = protocol.WriteFrame(c, protocol.MsgHandshakeResponse, []byte(resp))
		time.Sleep(50 * time.Millisecond)
		_ = protocol.WriteFrame(c, protocol.MsgAgentResponse, []byte("not json"))
		select {
		case <-stop:
		case <-time.After(time.Second):
		}
	}()
	s, err := uds("deny", path).resolve()
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	p := newPool(s, zap.New(core), false)
	p.start()
	defer p.drain()
	waitFor(t, func() bool { return logs.FilterMessage("agent connection failed").Len() > 0 })
	for _, e := range logs.All() {
		n := 0
		for _, f := range e.Context {
			if f.Key == "agent" {
				n++
			}
		}
		if n > 1 {
			t.Errorf("%q has %d agent keys: %v", e.Message, n, e.Context)
		}
	}
	text := logText(t, logs)
	if !strings.Contains(text, `agent connection failed{"agent":"deny"`) || !strings.Contains(text, `"reported_id":"denylist"`) {
		t.Errorf("log:\n%s", text)
	}
}

// TestAgentsSeeNormalisedPath: uri is the path route matching uses,
// raw_uri the one received (issue 13.2).
func TestAgentsSeeNormalisedPath(t *testing.T) {
	seen := make(chan [2]string, 1)
	ag := &scripted{headers: func(ev *protocol.RequestHeaders) *protocol.Response {
		seen <- [2]string{ev.URI, ev.RawURI}
		return nil
	}}
	app := testApp(t, uds("a", serveAgent(t, ag)))
	h := testHandler(t, app, &Filter{Agent: "a"})
	for _, tc := range []struct{ target, uri string }{
		{"/api/%73ecret", "/api/secret"},
		{"/api//secret", "/api/secret"},
		{"/api/./secret?q=%2e", "/api/secret?q=%2e"},
		{"/api/x/../secret", "/api/secret"},
		{"/api/%2e/secret", "/api/secret"},
		{"/api/%2E%2E/x/", "/x/"},
		{"/a%20b/%3f", "/a%20b/%3F"},
		{"/%2fetc", "/etc"},
	} {
		if w := serve(t, h, nil, httptest.NewRequest("GET", tc.target, nil)); w.Code != 200 {
			t.Fatalf("%s: %d", tc.target, w.Code)
		}
		got := <-seen
		if got[0] != tc.uri || got[1] != tc.target {
			t.Errorf("%s: uri %q raw_uri %q, want %q", tc.target, got[0], got[1], tc.uri)
		}
	}
}

// TestAgentHeaderOpsValidated: a malicious or broken agent's header
// operations with a CR or LF in the value, a name that is not a token,
// or a framing field (Content-Length, Transfer-Encoding, Host,
// Connection, Upgrade…) are dropped, on the request and on the response,
// as are such headers of a block and a redirect's Location: applied,
// they reached whichever writer sends the message, where a line break
// is a new header or a new request (smuggling on the upstream
// connection) and a framing field decides where the message ends.
// Valid operations of the same reply still apply.
func TestAgentHeaderOpsValidated(t *testing.T) {
	bad := []protocol.HeaderOp{
		{Op: protocol.HeaderSet, Name: "X-Injected", Value: "1\r\nX-Smuggled: 1"},
		{Op: protocol.HeaderAdd, Name: "X-Injected: 1\r\nX-Smuggled", Value: "1"},
		{Op: protocol.HeaderSet, Name: "Content-Length", Value: "0"},
		{Op: protocol.HeaderSet, Name: "transfer-encoding", Value: "chunked"},
		{Op: protocol.HeaderAdd, Name: "Connection", Value: "Upgrade"},
		{Op: protocol.HeaderSet, Name: "Upgrade", Value: "h2c"},
		{Op: protocol.HeaderSet, Name: "X-Fine", Value: "ok"},
	}
	ag := &scripted{
		headers: func(ev *protocol.RequestHeaders) *protocol.Response {
			r := protocol.AllowResponse()
			switch ev.URI {
			case "/block":
				return block(403, "no", map[string]string{"X-Block": "1\r\nSet-Cookie: s=attacker", "Content-Length": "1", "X-Block-Fine": "ok"})
			case "/redirect":
				return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Redirect, URL: "https://a.example/\r\nSet-Cookie: s=attacker", Status: 302}}
			case "/challenge":
				return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Challenge, ChallengeType: "captcha\r\nSet-Cookie: s=attacker",
					Params: map[string]string{"site": "k\r\nSet-Cookie: s=attacker"}}}
			}
			r.RequestHeaders = bad
			r.ResponseHeaders = bad
			return r
		},
	}
	app := testApp(t, uds("a", serveAgent(t, ag)))
	h := testHandler(t, app, &Filter{Agent: "a"})
	up := &upstream{}
	w := serve(t, h, up, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	check := func(side string, hdr http.Header) {
		t.Helper()
		for name, vs := range hdr {
			for _, v := range vs {
				if strings.ContainsAny(name+v, "\r\n") {
					t.Errorf("%s: header %q: %q has a line break", side, name, v)
				}
			}
		}
		for _, name := range []string{"X-Injected", "Transfer-Encoding", "Connection", "Upgrade"} {
			if v, ok := hdr[name]; ok {
				t.Errorf("%s: the agent's %s %q was applied", side, name, v)
			}
		}
		if hdr.Get("X-Fine") != "ok" {
			t.Errorf("%s: the valid operation was not applied: %v", side, hdr)
		}
	}
	up.mu.Lock()
	check("upstream request", up.header)
	if up.header.Get("Content-Length") != "" {
		t.Errorf("upstream request: the agent's Content-Length was applied")
	}
	up.mu.Unlock()
	check("response", w.Header())
	if w.Header().Get("Content-Length") == "0" {
		t.Errorf("response: the agent's Content-Length 0 was applied")
	}

	w = serve(t, h, up, httptest.NewRequest("GET", "/block", nil))
	if w.Code != 403 || w.Header().Get("X-Block") != "" || w.Header().Get("Content-Length") == "1" || w.Header().Get("X-Block-Fine") != "ok" {
		t.Errorf("block: %d %v", w.Code, w.Header())
	}
	hc := testHandler(t, app, &Filter{Agent: "a"})
	hc.Challenge = &ChallengeResponse{Headers: http.Header{"X-Site": {"{agent.challenge.param.site}"}, "X-Static": {"ok"}}}
	w = serve(t, hc, up, httptest.NewRequest("GET", "/challenge", nil))
	if w.Code != 403 || w.Header().Get("X-Sentinel-Challenge") != "" || w.Header().Get("X-Site") != "" || w.Header().Get("X-Static") != "ok" {
		t.Errorf("challenge with line breaks in its type and parameters: %d %v", w.Code, w.Header())
	}
	w = serve(t, h, up, httptest.NewRequest("GET", "/redirect", nil))
	if w.Code != 403 || w.Header().Get("Location") != "" {
		t.Errorf("redirect with a line break in Location: %d %v, want 403 without Location", w.Code, w.Header())
	}
}

// TestPlaintextRemoteGRPCAgentWarned: a gRPC agent reached without TLS
// on a non-loopback address receives every request's headers (cookies,
// Authorization) and bodies in clear: the config loads (a private
// network may be meant) with a warning naming the agent.
func TestPlaintextRemoteGRPCAgentWarned(t *testing.T) {
	for _, c := range []struct {
		grpc string
		warn bool
	}{
		{"http://10.0.0.5:50051", true},
		{"http://waf.internal:50051", true},
		{"https://10.0.0.5:50051", false},
		{"http://127.0.0.1:50051", false},
		{"http://[::1]:50051", false},
		{"http://localhost:50051", false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		s, err := (&AgentConfig{ID: "waf", GRPC: c.grpc}).resolve()
		if err != nil {
			t.Fatalf("%s: %v", c.grpc, err)
		}
		warnPlaintext(zap.New(core), s)
		got := strings.Contains(logText(t, logs), "without TLS")
		if got != c.warn {
			t.Errorf("%s: warned %v, want %v (%s)", c.grpc, got, c.warn, logText(t, logs))
		}
	}
}
