package protocol_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

// rawAgent accepts connections on a Unix socket and runs serve on each
// (a hand-written agent for fault and dialect tests).
func rawAgent(t *testing.T, serve func(conn net.Conn, br *bufio.Reader)) string {
	t.Helper()
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serve(conn, bufio.NewReader(conn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return path
}

func rustHandshake(t *testing.T, conn net.Conn, br *bufio.Reader) bool {
	f, err := protocol.ReadFrame(br, protocol.DialectAuto)
	if err != nil || f.Type != protocol.MsgHandshakeRequest {
		return false
	}
	resp := protocol.HandshakeResponse{ProtocolVersion: 2, Success: true, Encoding: "json", Capabilities: protocol.Capabilities{AgentID: "raw", Name: "raw"}}
	b, _ := json.Marshal(resp)
	return protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, b) == nil
}

// TestAgentProtocolErrorsFailPendingCalls: after garbage, an oversized
// frame or an unknown type from the agent, the waiting call fails at once
// with a clear error and the client is dead.
func TestAgentProtocolErrorsFailPendingCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		junk []byte
		want string
	}{
		{"oversized", binary.BigEndian.AppendUint32(nil, 0x7fffffff), "exceeds maximum"},
		{"zero length", []byte{0, 0, 0, 0}, "zero-length"},
		{"unknown type", []byte{0, 0, 0, 1, 0x77}, "0x77"},
		{"garbage json", append([]byte{0, 0, 0, 4, 0x20}, "{{{"...), "invalid agent response"},
		{"closed", nil, "agent closed the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
				if !rustHandshake(t, conn, br) {
					return
				}
				if _, err := protocol.ReadFrame(br, protocol.DialectAuto); err != nil { // the event
					return
				}
				conn.Write(tc.junk)
				if tc.junk == nil {
					conn.Close()
				}
				time.Sleep(100 * time.Millisecond)
			})
			c := dialUDS(t, path, protocol.Options{})
			start := time.Now()
			_, err := c.Call(ctxT(t, 30*time.Second), reqHeaders("g-1", "/"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if tc.junk != nil && !errors.Is(err, protocol.ErrProtocol) {
				t.Fatalf("not ErrProtocol: %v", err)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("pending call did not fail fast")
			}
			<-c.Done()
			if c.Err() == nil {
				t.Fatal("Err must tell why")
			}
		})
	}
}

func TestPingTimeoutDetected(t *testing.T) {
	path := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		if !rustHandshake(t, conn, br) {
			return
		}
		for { // swallow everything, answer nothing
			if _, err := protocol.ReadFrame(br, protocol.DialectAuto); err != nil {
				return
			}
		}
	})
	c := dialUDS(t, path, protocol.Options{PingInterval: 20 * time.Millisecond, PingTimeout: 150 * time.Millisecond})
	pending := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), reqHeaders("p-1", "/"))
		pending <- err
	}()
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("dead agent not detected")
	}
	if !errors.Is(c.Err(), protocol.ErrPingTimeout) {
		t.Fatalf("got %v", c.Err())
	}
	if err := <-pending; !errors.Is(err, protocol.ErrPingTimeout) {
		t.Fatalf("pending call: %v", err)
	}
}

func TestHandshakeFailures(t *testing.T) {
	refuse := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, []byte(`{"protocol_version":2,"success":false,"error":"go away","capabilities":{}}`))
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), refuse, protocol.Options{}); !errors.Is(err, protocol.ErrHandshake) || !strings.Contains(err.Error(), "go away") {
		t.Fatalf("refused: %v", err)
	}
	wrongType := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		protocol.WriteFrame(conn, protocol.MsgAgentResponse, []byte(`{}`))
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), wrongType, protocol.Options{}); !errors.Is(err, protocol.ErrHandshake) || !strings.Contains(err.Error(), "AgentResponse") {
		t.Fatalf("wrong type: %v", err)
	}
	msgpack := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, []byte(`{"protocol_version":2,"success":true,"encoding":"msgpack","capabilities":{}}`))
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), msgpack, protocol.Options{}); !errors.Is(err, protocol.ErrHandshake) || !strings.Contains(err.Error(), "msgpack") {
		t.Fatalf("msgpack: %v", err)
	}
	neither := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, []byte(`{"protocol_version":2}`))
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), neither, protocol.Options{Dialect: protocol.DialectRust}); !errors.Is(err, protocol.ErrHandshake) {
		t.Fatalf("neither: %v", err)
	}
	badJSON := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, []byte(`{"success":"yes"}`))
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), badJSON, protocol.Options{}); !errors.Is(err, protocol.ErrHandshake) {
		t.Fatalf("bad json: %v", err)
	}
	silent := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		time.Sleep(2 * time.Second)
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), silent, protocol.Options{HandshakeTimeout: 100 * time.Millisecond, Dialect: protocol.DialectRust}); !errors.Is(err, protocol.ErrHandshake) {
		t.Fatalf("silent: %v", err)
	}
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), sockPath(t), protocol.Options{}); err == nil || !strings.Contains(err.Error(), "dialing agent socket") {
		t.Fatalf("no socket: %v", err)
	}
}

func TestNewClientOverAcceptedConn(t *testing.T) {
	// The "agent" dials the proxy; the proxy runs the handshake as client on the accepted conn.
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(b)
		if !rustHandshake(t, b, br) {
			return
		}
		for {
			f, err := protocol.ReadFrame(br, protocol.DialectAuto)
			if err != nil {
				return
			}
			if f.Type == protocol.MsgRequestHeaders {
				r := protocol.AllowResponse()
				r.SetCorrelationID("n-1")
				out, _ := json.Marshal(r)
				protocol.WriteFrame(b, protocol.MsgAgentResponse, out)
			}
		}
	}()
	c, err := protocol.NewClient(ctxT(t, 10*time.Second), a, protocol.Options{PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Call(ctxT(t, 10*time.Second), reqHeaders("n-1", "/")); err != nil || r.CorrelationID() != "n-1" {
		t.Fatalf("%v %+v", err, r)
	}
	c.Close()
	b.Close()
	<-done

	// A conn whose peer closes during the handshake fails without redialing.
	x, y := net.Pipe()
	go func() { protocol.ReadFrame(y, protocol.DialectAuto); y.Close() }()
	if _, err := protocol.NewClient(ctxT(t, 10*time.Second), x, protocol.Options{}); !errors.Is(err, protocol.ErrHandshake) {
		t.Fatalf("closed during handshake: %v", err)
	}
}

func TestRegistrationHello(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go protocol.WriteRegistrationHello(a, protocol.RegistrationHello{AgentID: "waf", AuthToken: "s3cret"})
	h, err := protocol.ReadRegistrationHello(b)
	if err != nil || h.AgentID != "waf" || h.AuthToken != "s3cret" || h.ProtocolVersion != 2 {
		t.Fatalf("%v %+v", err, h)
	}
	for _, tc := range []struct {
		frame func(net.Conn)
		want  string
	}{
		{func(c net.Conn) { protocol.WriteFrame(c, protocol.MsgHandshakeRequest, []byte(`{}`)) }, "want Registration"},
		{func(c net.Conn) { protocol.WriteFrame(c, protocol.MsgRegistration, []byte(`{`)) }, "decoding"},
		{func(c net.Conn) { protocol.WriteFrame(c, protocol.MsgRegistration, []byte(`{}`)) }, "agent_id"},
		{func(c net.Conn) {
			protocol.WriteFrame(c, protocol.MsgRegistration, []byte(`{"agent_id":"a","protocol_version":9}`))
		}, "protocol_version 9"},
		{func(c net.Conn) { c.Close() }, "reading registration hello"},
	} {
		x, y := net.Pipe()
		go tc.frame(x)
		if _, err := protocol.ReadRegistrationHello(y); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
		x.Close()
		y.Close()
	}
}

// ---------------------------------------------------------------- Go-SDK dialect

// sdkAgent is a minimal agent of the zentinel-agent-go-sdk v2 dialect,
// written from its documented behaviour: it refuses a handshake without
// protocol_version 2 (but keeps the connection), answers 0x10–0x13 with a
// 0x20 Decision keyed by the numeric request_id, 0xF0 with 0xF1, records
// 0x30 cancels, and (strict) may close on any key it does not know.
type sdkAgent struct {
	strict  bool
	mu      sync.Mutex
	cancels []uint64
	hellos  int
}

func (a *sdkAgent) serve(conn net.Conn, br *bufio.Reader) {
	f, err := protocol.ReadFrame(br, protocol.DialectAuto)
	if err != nil || f.Type != protocol.MsgHandshakeRequest {
		return
	}
	var keys map[string]json.RawMessage
	json.Unmarshal(f.Payload, &keys)
	if _, rust := keys["supported_versions"]; rust && a.strict {
		return // closes the connection
	}
	a.mu.Lock()
	a.hellos++
	a.mu.Unlock()
	var hr struct {
		ProtocolVersion uint32 `json:"protocol_version"`
	}
	json.Unmarshal(f.Payload, &hr)
	resp := map[string]any{"protocol_version": 2, "agent_name": "sdk-agent", "accepted": hr.ProtocolVersion == 2,
		"capabilities": map[string]any{"handles_request_headers": true, "handles_request_body": true, "handles_response_headers": false,
			"handles_response_body": false, "supports_streaming": true, "supports_cancellation": true, "max_concurrent_requests": 8}}
	if hr.ProtocolVersion != 2 {
		resp["error"] = "unsupported protocol version"
		resp["capabilities"] = nil
	}
	b, _ := json.Marshal(resp)
	protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, b)
	for {
		f, err := protocol.ReadFrame(br, protocol.DialectSDK)
		if err != nil {
			return
		}
		var req struct {
			RequestID uint64 `json:"request_id"`
			URI       string `json:"uri"`
			IsLast    bool   `json:"is_last"`
			Metadata  struct {
				CorrelationID string `json:"correlation_id"`
			} `json:"metadata"`
		}
		json.Unmarshal(f.Payload, &req)
		var out any
		var typ protocol.MessageType
		switch f.Type {
		case protocol.MsgRequestHeaders:
			typ = protocol.SDKMsgDecision
			var decision any = "allow"
			if req.URI == "/blocked" {
				decision = map[string]any{"block": map[string]any{"status": 403, "body": "sdk says no"}}
			}
			out = map[string]any{"request_id": req.RequestID, "decision": decision,
				"request_headers": []any{map[string]any{"operation": "set", "name": "x-corr", "value": req.Metadata.CorrelationID}},
				"audit":           map[string]any{"tags": []string{"sdk"}}}
		case protocol.MsgRequestBodyChunk, protocol.MsgResponseHeaders, protocol.MsgResponseBodyChunk:
			typ = protocol.SDKMsgDecision
			var decision any = "allow"
			if f.Type == protocol.MsgRequestBodyChunk && !req.IsLast {
				decision = map[string]any{"needs_more": true}
			}
			out = map[string]any{"request_id": req.RequestID, "decision": decision}
		case protocol.SDKMsgPing:
			typ, out = protocol.SDKMsgPong, json.RawMessage(f.Payload)
		case protocol.SDKMsgCancelRequest:
			a.mu.Lock()
			a.cancels = append(a.cancels, req.RequestID)
			a.mu.Unlock()
			continue
		default:
			typ, out = protocol.SDKMsgDecision, map[string]any{"request_id": 0, "decision": "allow"}
		}
		b, _ := json.Marshal(out)
		if protocol.WriteFrame(conn, typ, b) != nil {
			return
		}
	}
}

func checkSDKClient(t *testing.T, c protocol.Client) {
	t.Helper()
	info := c.Info()
	if info.Dialect != protocol.DialectSDK || info.Capabilities.Name != "sdk-agent" || !info.WantsEvent(protocol.EventRequestBodyChunk) ||
		info.WantsEvent(protocol.EventResponseHeaders) || info.Capabilities.Limits.MaxConcurrency != 8 || !info.Capabilities.Features.Cancellation {
		t.Fatalf("info: %+v", info)
	}
	ctx := ctxT(t, 10*time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			corr := "s-" + string(rune('a'+i))
			r, err := c.Call(ctx, reqHeaders(corr, "/"))
			if err != nil || r.Decision.Kind != protocol.Allow || r.RequestHeaders[0].Value != corr || r.CorrelationID() != corr || r.Audit.Tags[0] != "sdk" {
				t.Errorf("%s: %v %+v", corr, err, r)
			}
		}()
	}
	wg.Wait()
	r, err := c.Call(ctx, reqHeaders("s-block", "/blocked"))
	if err != nil || r.Decision.Kind != protocol.Block || r.Decision.Body != "sdk says no" {
		t.Fatalf("block: %v %+v", err, r)
	}
	r, err = c.Call(ctx, &protocol.RequestBodyChunk{CorrelationID: "s-block", Data: []byte("a")})
	if err != nil || !r.NeedsMore {
		t.Fatalf("needs more: %v %+v", err, r)
	}
	for _, ev := range []protocol.Event{
		&protocol.RequestBodyChunk{CorrelationID: "s-block", Data: []byte("b"), IsLast: true},
		&protocol.ResponseHeaders{CorrelationID: "s-block", Status: 200, Headers: map[string][]string{"content-length": {"3"}}},
		&protocol.ResponseBodyChunk{CorrelationID: "s-block", Data: []byte("c"), IsLast: true},
	} {
		if r, err := c.Call(ctx, ev); err != nil || r.Decision.Kind != protocol.Allow {
			t.Fatalf("%T: %v", ev, err)
		}
	}
	if err := c.Notify(ctx, &protocol.RequestComplete{CorrelationID: "s-block"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, &protocol.RequestComplete{CorrelationID: "rc"}); !errors.Is(err, protocol.ErrUnsupported) {
		t.Fatalf("request complete call in SDK dialect: %v", err)
	}
	if _, err := c.Call(ctx, &protocol.WebSocketFrame{CorrelationID: "w"}); !errors.Is(err, protocol.ErrUnsupported) {
		t.Fatalf("websocket in SDK dialect: %v", err)
	}
	waitFor(t, "sdk pong", func() bool { return !c.Health().LastPong.IsZero() })
}

func TestSDKDialectDetected(t *testing.T) {
	a := &sdkAgent{}
	path := rawAgent(t, a.serve)
	c := dialUDS(t, path, protocol.Options{PingInterval: 20 * time.Millisecond, Config: json.RawMessage(`{"dropped":true}`)})
	checkSDKClient(t, c)
	// Cancel maps the correlation id to the SDK's numeric request id.
	if _, err := c.Call(ctxT(t, 10*time.Second), reqHeaders("s-cancel", "/")); err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel("s-cancel", "timeout"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sdk cancel", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.cancels) == 1 && a.cancels[0] > 0
	})
	a.mu.Lock()
	hellos := a.hellos
	a.mu.Unlock()
	if hellos != 1 {
		t.Fatalf("auto detection used %d handshakes, want 1", hellos)
	}
}

func TestSDKDialectStrictAgentRedial(t *testing.T) {
	a := &sdkAgent{strict: true}
	path := rawAgent(t, a.serve)
	c := dialUDS(t, path, protocol.Options{PingInterval: 20 * time.Millisecond})
	checkSDKClient(t, c)
	forced := dialUDS(t, path, protocol.Options{Dialect: protocol.DialectSDK, PingInterval: -1})
	if forced.Info().Dialect != protocol.DialectSDK {
		t.Fatal("forced dialect")
	}
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), path, protocol.Options{Dialect: protocol.DialectRust}); !errors.Is(err, protocol.ErrHandshake) {
		t.Fatalf("rust-only against SDK agent: %v", err)
	}
}

func TestSDKDialectRefusal(t *testing.T) {
	path := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		protocol.ReadFrame(br, protocol.DialectAuto)
		protocol.WriteFrame(conn, protocol.MsgHandshakeResponse, []byte(`{"protocol_version":2,"agent_name":"x","accepted":false,"error":"busy","capabilities":null}`))
	})
	if _, err := protocol.DialUDS(ctxT(t, 10*time.Second), path, protocol.Options{}); !errors.Is(err, protocol.ErrHandshake) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("got %v", err)
	}
}

func TestAgentControlCallbacks(t *testing.T) {
	path := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		if !rustHandshake(t, conn, br) {
			return
		}
		protocol.WriteFrame(conn, protocol.MsgMetricsReport, []byte(`{"agent_id":"raw","timestamp_ms":1,"interval_ms":10,"counters":[{"name":"hits","value":3}],"gauges":[],"histograms":[]}`))
		protocol.WriteFrame(conn, protocol.MsgConfigUpdateRequest, []byte(`{"update_type":{"type":"request_reload"},"request_id":"u1","timestamp_ms":1}`))
		protocol.WriteFrame(conn, protocol.MsgHealthStatus, []byte(`{"state":4,"message":"sick"}`))
		protocol.WriteFrame(conn, protocol.MsgFlowControl, []byte(`{"action":1}`))
		protocol.WriteFrame(conn, protocol.MsgHandshakeRequest, []byte(`{}`)) // wrong direction: ignored
		protocol.WriteFrame(conn, protocol.MsgAgentResponse, []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"nobody"}}}`))
		protocol.WriteFrame(conn, protocol.MsgFlowControl, []byte(`{"action":2}`))
		for {
			if _, err := protocol.ReadFrame(br, protocol.DialectAuto); err != nil {
				return
			}
		}
	})
	metrics := make(chan protocol.MetricsReport, 1)
	updates := make(chan protocol.ConfigUpdateRequest, 1)
	c := dialUDS(t, path, protocol.Options{PingInterval: -1,
		OnMetrics:      func(m protocol.MetricsReport) { metrics <- m },
		OnConfigUpdate: func(u protocol.ConfigUpdateRequest) { updates <- u }})
	if m := <-metrics; m.AgentID != "raw" || m.Counters[0].Value != 3 {
		t.Fatalf("metrics %+v", m)
	}
	if u := <-updates; u.RequestID != "u1" || !strings.Contains(string(u.UpdateType), "request_reload") {
		t.Fatalf("update %+v", u)
	}
	waitFor(t, "health and resume", func() bool {
		h := c.Health()
		return h.State == protocol.HealthUnhealthy && h.Message == "sick" && !h.ReportedAt.IsZero() && !c.Paused()
	})
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

func TestIdleAgentWithoutPongsStaysUp(t *testing.T) {
	path := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		if !rustHandshake(t, conn, br) {
			return
		}
		for {
			if _, err := protocol.ReadFrame(br, protocol.DialectAuto); err != nil {
				return
			}
		}
	})
	c := dialUDS(t, path, protocol.Options{PingInterval: 10 * time.Millisecond, PingTimeout: 30 * time.Millisecond})
	select {
	case <-c.Done():
		t.Fatalf("idle agent that never pongs was killed: %v", c.Err())
	case <-time.After(300 * time.Millisecond):
	}
}

func TestAgentThatStopsPongingIsDeclaredDead(t *testing.T) {
	path := rawAgent(t, func(conn net.Conn, br *bufio.Reader) {
		if !rustHandshake(t, conn, br) {
			return
		}
		ponged := false
		for {
			f, err := protocol.ReadFrame(br, protocol.DialectAuto)
			if err != nil {
				return
			}
			if f.Type == protocol.MsgPing && !ponged {
				ponged = true
				protocol.WriteFrame(conn, protocol.MsgPong, f.Payload)
			}
		}
	})
	c := dialUDS(t, path, protocol.Options{PingInterval: 20 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("silent agent not detected")
	}
	if !errors.Is(c.Err(), protocol.ErrPingTimeout) || c.Health().LastPong.IsZero() {
		t.Fatalf("got %v", c.Err())
	}
}
