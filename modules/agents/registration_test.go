package agents

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

// TestLiveRegistration: an agent registers over the UDS listener with
// its token, serves the route that names it, is listed as live, and
// goes away when it disconnects; a wrong token is refused.
func TestLiveRegistration(t *testing.T) {
	sock := sockPath(t, "reg.sock")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{Registration: &RegistrationConfig{UnixSocket: sock, Tokens: []string{"s3cret"}, AllowedAgents: []string{"bot", "intruder", "cfg"}, AllowConfiguredIDs: true,
		Defaults: &AgentConfig{FailureMode: "closed", Timeout: caddy.Duration(2 * time.Second)}}}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = app.Stop()
		_ = app.Cleanup()
		drains.Wait()
	}()
	h := testHandler(t, app, &Filter{Agent: "bot"})
	// Not registered yet: down, fail-closed by the defaults… but the
	// defaults apply to live pools only; an unknown id is fail-open.
	if w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 200 {
		t.Fatalf("before registration: %d", w.Code)
	}

	// Wrong token: refused, never added.
	wrong := make(chan error, 1)
	go func() {
		wrong <- sdk.Register(context.Background(), sock, "guess", &scripted{}, sdk.Options{AgentID: "intruder", HandshakeTimeout: 5 * time.Second})
	}()
	select {
	case err := <-wrong:
		if err == nil {
			t.Fatal("wrong token accepted")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wrong token: no refusal")
	}
	// Not in allowed_agents: refused.
	if err := sdk.Register(context.Background(), sock, "s3cret", &scripted{}, sdk.Options{AgentID: "other"}); err == nil {
		t.Fatal("agent outside allowed_agents accepted")
	}
	if reg.livePool("intruder") != nil || reg.livePool("other") != nil {
		t.Fatal("refused agent in the live registry")
	}

	actx, acancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ag := &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { return block(429, "bot", nil) }}
	go func() {
		defer close(done)
		_ = sdk.Register(actx, sock, "s3cret", ag, sdk.Options{AgentID: "bot"})
	}()
	waitFor(t, func() bool { p := reg.livePool("bot"); return p != nil && p.connected() == 1 })
	if w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 429 {
		t.Fatalf("live agent: %d", w.Code)
	}
	found := false
	for _, e := range List() {
		if e.ID == "bot" && e.Source == "live" && e.Connected && e.FailureMode == "closed" {
			found = true
		}
	}
	if !found {
		t.Fatalf("live agent not listed: %v", List())
	}
	// The metrics gather with live pools.
	r := prometheus.NewRegistry()
	r.MustRegister(metrics.gauges)
	if mfs, err := r.Gather(); err != nil || len(mfs) == 0 {
		t.Fatalf("gather: %v", err)
	}
	acancel()
	<-done
	waitFor(t, func() bool { return reg.livePool("bot") == nil })
	if w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 200 {
		t.Fatalf("after disconnect: %d", w.Code)
	}
	// A configured agent of the same id takes registered connections
	// (allow_configured_ids).
	cfgApp := testApp(t)
	sp := newTestPool(t, uds("cfg", sockPath(t, "none.sock")))
	sp.live = false
	cfgApp.pools["cfg"] = sp
	reg.current.Store(cfgApp)
	defer reg.current.Store(app)
	actx2, acancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		_ = sdk.Register(actx2, sock, "s3cret", &scripted{}, sdk.Options{AgentID: "cfg"})
	}()
	waitFor(t, func() bool { return sp.connected() == 1 })
	acancel2()
	<-done2
}
