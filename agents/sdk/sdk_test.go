package sdk_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	agentpb "github.com/sentinel-proxy/sentinel/agents/protocol/proto"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type panicky struct{ sdk.Base }

func (panicky) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	if ev.URI == "/panic" {
		panic("boom")
	}
	return nil
}

func serveUDS(t *testing.T, h sdk.Handler, opts sdk.Options) string {
	t.Helper()
	path := sockPath(t)
	// A stale socket file is replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.ServeUDS(ctx, path, h, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUDS: %v", err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("socket file left behind: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return path
		}
		if time.Now().After(deadline) {
			t.Fatal("ServeUDS did not come up")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rh(corr, uri string) *protocol.RequestHeaders {
	return &protocol.RequestHeaders{Metadata: protocol.RequestMetadata{CorrelationID: corr}, Method: "GET", URI: uri, Headers: map[string][]string{}}
}

func TestServeUDSDefaultsAndPanic(t *testing.T) {
	path := serveUDS(t, panicky{}, sdk.Options{AgentID: "p", Events: []protocol.EventType{protocol.EventRequestHeaders}})
	c, err := protocol.DialUDS(ctxT(t, 10*time.Second), path, protocol.Options{PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)
	for _, ev := range []protocol.Event{
		rh("a", "/"),
		&protocol.RequestBodyChunk{CorrelationID: "a", IsLast: true},
		&protocol.ResponseHeaders{CorrelationID: "a", Status: 200},
		&protocol.ResponseBodyChunk{CorrelationID: "a", IsLast: true},
		&protocol.WebSocketFrame{CorrelationID: "a", Opcode: "text"},
		&protocol.GuardrailInspect{CorrelationID: "a", InspectionType: "pii_detection"},
		&protocol.RequestComplete{CorrelationID: "a", Status: 200},
		&protocol.Configure{CorrelationID: "a", Config: json.RawMessage(`{}`)},
	} {
		r, err := c.Call(ctx, ev)
		if err != nil || r.Decision.Kind != protocol.Allow || r.CorrelationID() != "a" || r.Version != 2 {
			t.Fatalf("%T: %v %+v", ev, err, r)
		}
	}
	r, err := c.Call(ctx, rh("b", "/panic"))
	if err != nil || r.Decision.Kind != protocol.Block || r.Decision.Status != 500 {
		t.Fatalf("panic: %v %+v", err, r)
	}
	if _, err := c.Call(ctx, rh("c", "/")); err != nil {
		t.Fatalf("server survives a panic: %v", err)
	}
}

func TestServeConnProtocolEdges(t *testing.T) {
	path := serveUDS(t, sdk.Base{}, sdk.Options{})
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn, bufio.NewReader(conn)
	}
	// Not a handshake first: the agent closes.
	conn, br := dial()
	protocol.WriteFrame(conn, protocol.MsgPing, []byte(`{}`))
	if _, err := protocol.ReadFrame(br, protocol.DialectAuto); err == nil {
		t.Fatal("agent answered a non-handshake first message")
	}
	// Unsupported versions: success false.
	conn, br = dial()
	protocol.WriteFrame(conn, protocol.MsgHandshakeRequest, []byte(`{"supported_versions":[1],"proxy_id":"x","proxy_version":"0","config":null}`))
	f, err := protocol.ReadFrame(br, protocol.DialectAuto)
	var hr protocol.HandshakeResponse
	if err != nil || json.Unmarshal(f.Payload, &hr) != nil || hr.Success || !strings.Contains(string(hr.Error), "unsupported") {
		t.Fatalf("versions: %v %s", err, f.Payload)
	}
	// Broken handshake JSON: success false.
	conn, br = dial()
	protocol.WriteFrame(conn, protocol.MsgHandshakeRequest, []byte(`{`))
	if f, err := protocol.ReadFrame(br, protocol.DialectAuto); err != nil || !strings.Contains(string(f.Payload), `"success":false`) {
		t.Fatalf("bad json: %v %s", err, f.Payload)
	}
	// A good connection: pong echoes the ping bytes, an undecodable event is
	// answered allow with the correlation id it carries, cancel and unknown
	// directions are ignored.
	conn, br = dial()
	protocol.WriteFrame(conn, protocol.MsgHandshakeRequest, []byte(`{"supported_versions":[2],"proxy_id":"x","proxy_version":"0","config":null,"supported_encodings":["json"]}`))
	f, err = protocol.ReadFrame(br, protocol.DialectAuto)
	if err != nil || json.Unmarshal(f.Payload, &hr) != nil || !hr.Success || hr.Encoding != "json" || hr.Capabilities.Features.ConcurrentRequests != 100 {
		t.Fatalf("handshake: %v %s", err, f.Payload)
	}
	for _, k := range []string{`"agent_id"`, `"streaming_body"`, `"health_reporting"`, `"preferred_chunk_size"`} {
		if !strings.Contains(string(f.Payload), k) {
			t.Errorf("handshake response lacks %s", k)
		}
	}
	ping := []byte(`{"sequence":0,"timestamp_ms":1}`)
	protocol.WriteFrame(conn, protocol.MsgCancel, []byte(`{"correlation_id":"zz","reason":0,"timestamp_ms":1}`))
	protocol.WriteFrame(conn, protocol.MsgHealthStatus, []byte(`{"state":1}`))
	protocol.WriteFrame(conn, protocol.MsgPing, ping)
	f, err = protocol.ReadFrame(br, protocol.DialectAuto)
	if err != nil || f.Type != protocol.MsgPong || string(f.Payload) != string(ping) {
		t.Fatalf("pong: %v %v %s", err, f.Type, f.Payload)
	}
	protocol.WriteFrame(conn, protocol.MsgRequestHeaders, []byte(`{"correlation_id":"top","metadata":{"correlation_id":"meta"},"headers":7}`))
	f, err = protocol.ReadFrame(br, protocol.DialectAuto)
	r, derr := protocol.DecodeResponse(f.Payload)
	if err != nil || derr != nil || r.CorrelationID() != "meta" || r.Decision.Kind != protocol.Allow {
		t.Fatalf("undecodable event: %v %v %s", err, derr, f.Payload)
	}
	if _, _, err := sdk.DecodeEvent(protocol.Frame{Type: protocol.MsgPing}); err == nil {
		t.Fatal("ping is not an event")
	}
}

func TestCapabilitiesOverride(t *testing.T) {
	f := protocol.Features{Guardrails: true}
	l := protocol.Limits{MaxBodySize: 7}
	c := sdk.Options{AgentID: "x", Features: &f, Limits: &l}.Capabilities()
	if !c.Features.Guardrails || c.Limits.MaxBodySize != 7 || c.Name != "x" || c.Version == "" {
		t.Fatalf("%+v", c)
	}
	c = sdk.Options{Events: []protocol.EventType{protocol.EventWebSocketFrame, protocol.EventGuardrailInspect, protocol.EventResponseBodyChunk}}.Capabilities()
	if !c.Features.WebSocket || !c.Features.Guardrails || !c.Features.StreamingBody || c.AgentID != "go-agent" {
		t.Fatalf("%+v", c)
	}
}

type cfgHandler struct {
	sdk.Base
	got chan string
}

func (h cfgHandler) OnConfigure(_ context.Context, c *protocol.Configure) error {
	h.got <- string(c.Config)
	if strings.Contains(string(c.Config), "bad") {
		return errors.New("bad config")
	}
	return nil
}

// TestRegister plays the proxy's registration listener: read the hello,
// check the token, then run the normal handshake as client with NewClient.
func TestRegister(t *testing.T) {
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := cfgHandler{got: make(chan string, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	regDone := make(chan error, 1)
	go func() { regDone <- sdk.Register(ctx, "unix:"+path, "s3cret", h, sdk.Options{AgentID: "reg-agent"}) }()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	hello, err := protocol.ReadRegistrationHello(conn)
	if err != nil || hello.AgentID != "reg-agent" || hello.AuthToken != "s3cret" {
		t.Fatalf("%v %+v", err, hello)
	}
	c, err := protocol.NewClient(ctxT(t, 10*time.Second), conn, protocol.Options{Config: json.RawMessage(`{"k":1}`), PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-h.got; got != `{"k":1}` {
		t.Fatalf("config %q", got)
	}
	if r, err := c.Call(ctxT(t, 10*time.Second), rh("r-1", "/")); err != nil || r.CorrelationID() != "r-1" || c.Info().Capabilities.AgentID != "reg-agent" {
		t.Fatalf("%v %+v", err, r)
	}
	cancel()
	<-c.Done()
	if err := <-regDone; err != nil {
		t.Fatalf("Register after ctx end: %v", err)
	}
	c.Close()

	// A rejected registration (the proxy closes) is an error.
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			protocol.ReadRegistrationHello(conn)
			conn.Close()
		}
	}()
	if err := sdk.Register(ctxT(t, 10*time.Second), path, "wrong", h, sdk.Options{}); err == nil {
		t.Fatal("rejected registration returned nil")
	}
	if err := sdk.Register(ctxT(t, 10*time.Second), testutil.FreeAddr(t), "", h, sdk.Options{}); err == nil {
		t.Fatal("no listener: nil error")
	}
}

func TestServeGRPCUnaryAndErrors(t *testing.T) {
	addr := testutil.FreeAddr(t)
	h := cfgHandler{got: make(chan string, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.ServeGRPC(ctx, addr, h, sdk.Options{AgentID: "u"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := agentpb.NewAgentServiceV2Client(cc)
	var out *agentpb.AgentToProxy
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err = cl.ProcessEvent(ctxT(t, 5*time.Second), &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Handshake{Handshake: &agentpb.HandshakeRequest{SupportedVersions: []uint32{2}, ConfigJson: `{"bad":1}`}}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || out.GetHandshake().GetSuccess() || !strings.Contains(out.GetHandshake().GetError(), "configuration rejected") {
		t.Fatalf("unary handshake: %v %v", err, out)
	}
	<-h.got
	out, err = cl.ProcessEvent(ctxT(t, 5*time.Second), &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Handshake{Handshake: &agentpb.HandshakeRequest{SupportedVersions: []uint32{1}}}})
	if err != nil || out.GetHandshake().GetSuccess() {
		t.Fatalf("versions: %v %v", err, out)
	}
	out, err = cl.ProcessEvent(ctxT(t, 5*time.Second), &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Ping{Ping: &agentpb.Ping{Sequence: 4, TimestampMs: 9}}})
	if err != nil || out.GetPong().GetSequence() != 4 || out.GetPong().GetPingTimestampMs() != 9 {
		t.Fatalf("ping: %v %v", err, out)
	}
	ev, _ := protocol.EventToPB(rh("u-1", "/"))
	out, err = cl.ProcessEvent(ctxT(t, 5*time.Second), ev)
	if err != nil || out.GetResponse().GetCorrelationId() != "u-1" || out.GetResponse().GetAllow() == nil {
		t.Fatalf("event: %v %v", err, out)
	}
	if _, err := cl.ProcessEvent(ctxT(t, 5*time.Second), &agentpb.ProxyToAgent{}); err == nil {
		t.Fatal("empty message accepted")
	}
	// Stream: events before the handshake are ignored; configure gets no reply.
	st, err := cl.ProcessStream(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	st.Send(ev)
	st.Send(&agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Handshake{Handshake: &agentpb.HandshakeRequest{SupportedVersions: []uint32{2}}}})
	if m, err := st.Recv(); err != nil || !m.GetHandshake().GetSuccess() {
		t.Fatalf("stream handshake: %v %v", err, m)
	}
	st.Send(&agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Configure{Configure: &agentpb.ConfigureEvent{ConfigJson: `{"bad":2}`}}})
	<-h.got
	st.Send(ev)
	if m, err := st.Recv(); err != nil || m.GetResponse().GetCorrelationId() != "u-1" {
		t.Fatalf("stream event: %v %v", err, m)
	}
	st.CloseSend()
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream not closed")
	}
	if err := sdk.ServeGRPC(ctxT(t, time.Second), addr, h, sdk.Options{}); err == nil {
		t.Fatal("address in use accepted")
	}
	if err := sdk.ServeUDS(ctxT(t, time.Second), "/nonexistent-dir/x.sock", h, sdk.Options{}); err == nil {
		t.Fatal("bad socket path accepted")
	}
}
