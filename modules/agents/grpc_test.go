package agents

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// serveGRPCAgent runs h over gRPC on a loopback listener (TLS when
// tlsConf is set) until the test ends.
func serveGRPCAgent(t *testing.T, h sdk.Handler, tlsConf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.ServeGRPCListener(ctx, ln, h, sdk.Options{AgentID: "g", TLS: tlsConf})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// selfSigned writes a certificate for "agent" and 127.0.0.1 (its own CA,
// for server and client authentication) and returns its files.
func selfSigned(t *testing.T) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	certFile, keyFile = testutil.WriteCert(t, t.TempDir(), "agent", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func grpcCfg(id, addr string, tlsC *TLSConfig) *AgentConfig {
	c := uds(id, "")
	c.UnixSocket, c.GRPC, c.TLS = "", "http://"+addr, tlsC
	return c
}

func TestGRPCAgents(t *testing.T) {
	ag := &scripted{headers: func(ev *protocol.RequestHeaders) *protocol.Response {
		if ev.URI == "/deny" {
			return block(403, "grpc says no", map[string]string{"X-Why": "path"})
		}
		return &protocol.Response{RequestHeaders: []protocol.HeaderOp{{Op: protocol.HeaderSet, Name: "X-Grpc", Value: "1"}}}
	}}
	plain := serveGRPCAgent(t, ag, nil)
	certFile, keyFile, cert := selfSigned(t)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	secure := serveGRPCAgent(t, ag, &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	app := testApp(t, grpcCfg("plain", plain, nil),
		grpcCfg("mtls", secure, &TLSConfig{CACert: certFile, ClientCert: certFile, ClientKey: keyFile, ServerName: "agent"}))
	for _, id := range []string{"plain", "mtls"} {
		h := testHandler(t, app, &Filter{Agent: id, FailureMode: "closed"})
		up := &upstream{}
		if w := serve(t, h, up, httptest.NewRequest("GET", "/ok", nil)); w.Code != 200 || up.header.Get("X-Grpc") != "1" {
			t.Errorf("%s allow: %d %v", id, w.Code, up.header)
		}
		if w := serve(t, h, nil, httptest.NewRequest("GET", "/deny", nil)); w.Code != 403 || w.Header().Get("X-Why") != "path" {
			t.Errorf("%s block: %d", id, w.Code)
		}
	}
	reg.current.Store(app)
	defer reg.current.Store(nil)
	for _, e := range List() {
		if e.Transport != "grpc" || e.Dialect != "grpc" {
			t.Errorf("list: %v", e)
		}
	}
}

func TestResponseBodyLimits(t *testing.T) {
	path := serveAgent(t, &scripted{}, protocol.EventResponseBodyChunk)
	evs := func(c *AgentConfig) { c.Events = []string{"response_body"}; c.MaxResponseBodyBytes = 10 }
	app := testApp(t, uds("open", path, evs), uds("closed", path, evs, func(c *AgentConfig) { c.FailureMode = "closed" }),
		uds("hy", path, evs, func(c *AgentConfig) { c.ResponseBodyMode = "hybrid:4"; c.MaxResponseBodyBytes = 1000 }))
	long := strings.Repeat("y", 50)
	w := serve(t, testHandler(t, app, &Filter{Agent: "open"}), &upstream{reply: long}, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || w.Body.String() != long {
		t.Fatalf("too large fail-open: %d %q", w.Code, w.Body.String())
	}
	w = serve(t, testHandler(t, app, &Filter{Agent: "closed"}), &upstream{reply: long}, httptest.NewRequest("GET", "/", nil))
	if w.Code != 413 {
		t.Fatalf("too large fail-closed: %d", w.Code)
	}
	// hybrid: past its buffer the body streams; flushes go through.
	fl := caddyFlushUpstream{parts: []string{"abc", "defgh", "ij"}}
	w = serve(t, testHandler(t, app, &Filter{Agent: "hy"}), fl, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || w.Body.String() != "abcdefghij" {
		t.Fatalf("hybrid: %d %q", w.Code, w.Body.String())
	}
}

// caddyFlushUpstream writes parts with flushes, the last through io.Copy
// (the writer's ReadFrom).
type caddyFlushUpstream struct{ parts []string }

func (u caddyFlushUpstream) ServeHTTP(w http.ResponseWriter, _ *http.Request) error {
	rc := http.NewResponseController(w)
	for i, p := range u.parts {
		if i == len(u.parts)-1 {
			_, _ = io.Copy(w, strings.NewReader(p))
			continue
		}
		_, _ = w.Write([]byte(p))
		_ = rc.Flush()
	}
	return nil
}

// TestRegistrationTLS: registration over TCP + TLS with a client
// certificate whose CN is the agent id (mTLS identity, no token).
func TestRegistrationTLS(t *testing.T) {
	certFile, keyFile, cert := selfSigned(t) // CN "agent"
	addr := testutil.FreeAddr(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{Registration: &RegistrationConfig{Address: addr, TLS: &ServerTLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCA: certFile}}}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Stop(); _ = app.Cleanup(); drains.Wait() }()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	register := func(id string) (func(), error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "agent", Certificates: []tls.Certificate{cert}})
		if err != nil {
			return nil, err
		}
		if err := protocol.WriteRegistrationHello(conn, protocol.RegistrationHello{AgentID: id}); err != nil {
			conn.Close()
			return nil, err
		}
		sctx, scancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = sdk.ServeConn(sctx, conn, &scripted{}, sdk.Options{AgentID: id})
		}()
		return func() { scancel(); <-done }, nil
	}
	// Wrong identity: the proxy closes the connection, nothing registers.
	stop, err := register("someone-else")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if reg.livePool("someone-else") != nil {
		t.Fatal("wrong identity registered")
	}
	stop, err = register("agent")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p := reg.livePool("agent"); return p != nil && p.connected() == 1 })
	h := testHandler(t, app, &Filter{Agent: "agent", FailureMode: "closed"})
	if w := serve(t, h, nil, httptest.NewRequest("GET", "/", nil)); w.Code != 200 {
		t.Fatalf("registered over TLS: %d", w.Code)
	}
	stop()
	waitFor(t, func() bool { return reg.livePool("agent") == nil })
}
