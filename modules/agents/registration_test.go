package agents

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
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

// TestRegistrationPreAuthBounded: connections to the registration
// listener that never authenticate are bounded, in number
// (maxPendingRegistrations: the ones beyond are closed at once) and in
// what each makes the proxy read (a hello over 64 KiB is refused before
// its payload is read; up to 16 MiB per connection were read and held
// for the registration timeout). A real agent registers once they are
// gone.
func TestRegistrationPreAuthBounded(t *testing.T) {
	sock := sockPath(t, "reg.sock")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{Registration: &RegistrationConfig{UnixSocket: sock, Tokens: []string{"s3cret"}, AllowedAgents: []string{"ok"},
		Timeout: caddy.Duration(30 * time.Second)}}
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

	// A 16 MiB hello: the proxy closes the connection after its length.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1, 0, 0, 0, byte(protocol.MsgRegistration)}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a hello announcing 16 MiB: connection still open (%v)", err)
	}

	// Idle connections: those beyond the limit are closed at once.
	idle := make([]net.Conn, 0, maxPendingRegistrations+20)
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range maxPendingRegistrations + 20 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	var closed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second) // far within the registration timeout
	for _, c := range idle {
		_ = c.SetReadDeadline(deadline)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				closed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := closed.Load(); n < 20 {
		t.Errorf("%d of %d idle connections closed at once, want at least 20", n, len(idle))
	}
	for _, c := range idle {
		c.Close()
	}
	idle = idle[:0]

	// A real agent registers once slots are free again.
	actx, acancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.Register(actx, sock, "s3cret", &scripted{}, sdk.Options{AgentID: "ok"})
	}()
	waitFor(t, func() bool { p := reg.livePool("ok"); return p != nil && p.connected() == 1 })
	acancel()
	<-done
}
