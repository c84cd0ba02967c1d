package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func roundTrip[T any](t *testing.T, in T) T {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("marshal %T: %v", in, err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %T from %s: %v", in, b, err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("%T round trip:\n in  %#v\n out %#v\n json %s", in, in, out, b)
	}
	return out
}

func keysOf(t *testing.T, v any) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantKeys(t *testing.T, v any, keys ...string) {
	t.Helper()
	m := keysOf(t, v)
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%T: key %q missing in %v", v, k, m)
		}
	}
	if len(m) != len(keys) {
		t.Errorf("%T: got keys %d, want %d (%v)", v, len(m), len(keys), m)
	}
}

func u64(v uint64) *uint64 { return &v }

func TestEventsJSONRoundTrip(t *testing.T) {
	rh := &RequestHeaders{CorrelationID: "c1", Metadata: RequestMetadata{
		CorrelationID: "c1", RequestID: "r1", ClientIP: "203.0.113.9:51234", Protocol: "HTTP/1.1",
		RouteID: "api", Timestamp: "2026-07-01T10:00:00.123456789+00:00", Traceparent: "00-abc-def-01",
	}, Method: "GET", URI: "/a?b=1", Headers: map[string][]string{"host": {"x"}, "accept": {"a", "b"}}}
	roundTrip(t, rh)
	wantKeys(t, rh, "correlation_id", "metadata", "method", "uri", "headers")
	wantKeys(t, rh.Metadata, "correlation_id", "request_id", "client_ip", "client_port", "server_name", "protocol",
		"tls_version", "tls_cipher", "route_id", "upstream_id", "timestamp", "traceparent")
	if m := keysOf(t, rh.Metadata); string(m["server_name"]) != "null" || string(m["route_id"]) != `"api"` {
		t.Errorf("optional strings: %s %s", m["server_name"], m["route_id"])
	}
	noTP := rh.Metadata
	noTP.Traceparent = ""
	if _, ok := keysOf(t, noTP)["traceparent"]; ok {
		t.Error("traceparent must be omitted when empty")
	}

	rb := &RequestBodyChunk{CorrelationID: "c1", Data: []byte("hello"), IsLast: true, TotalSize: u64(5), ChunkIndex: 0, BytesReceived: 5}
	roundTrip(t, rb)
	wantKeys(t, rb, "correlation_id", "data", "is_last", "total_size", "chunk_index", "bytes_received")
	if string(keysOf(t, rb)["data"]) != `"aGVsbG8="` {
		t.Errorf("data must be standard base64 with padding: %s", keysOf(t, rb)["data"])
	}
	sb := &ResponseBodyChunk{CorrelationID: "c1", Data: []byte{0, 1}, ChunkIndex: 2, BytesSent: 9}
	roundTrip(t, sb)
	wantKeys(t, sb, "correlation_id", "data", "is_last", "total_size", "chunk_index", "bytes_sent")
	rs := &ResponseHeaders{CorrelationID: "c1", Status: 404, Headers: map[string][]string{"a": {"b"}}}
	roundTrip(t, rs)
	wantKeys(t, rs, "correlation_id", "status", "headers")
	rc := &RequestComplete{CorrelationID: "c1", Status: 200, DurationMs: 12, RequestBodySize: 1, ResponseBodySize: 2, UpstreamAttempts: 1, Error: "x"}
	roundTrip(t, rc)
	wantKeys(t, rc, "correlation_id", "status", "duration_ms", "request_body_size", "response_body_size", "upstream_attempts", "error")
	ws := &WebSocketFrame{CorrelationID: "c1", Opcode: "text", Data: []byte("hi"), ClientToServer: true, FrameIndex: 3, Fin: true, ClientIP: "1.2.3.4"}
	roundTrip(t, ws)
	wantKeys(t, ws, "correlation_id", "opcode", "data", "client_to_server", "frame_index", "fin", "route_id", "client_ip")
	gi := &GuardrailInspect{CorrelationID: "c1", InspectionType: "pii_detection", Content: "x", Categories: []string{"email"}, Metadata: map[string]string{"a": "b"}}
	roundTrip(t, gi)
	wantKeys(t, gi, "correlation_id", "inspection_type", "content", "categories", "metadata")
	cf := &Configure{CorrelationID: "c", Config: json.RawMessage(`{"a":1}`), ConfigVersion: "v1"}
	roundTrip(t, cf)
	wantKeys(t, cf, "correlation_id", "config", "config_version")

	for _, ev := range []Event{rh, rb, sb, rs, rc, ws, gi, cf} {
		if ev.Correlation() == "" || ev.EventType().MessageType() == 0 {
			t.Errorf("%T: correlation %q type %v", ev, ev.Correlation(), ev.EventType())
		}
	}
	if (&RequestHeaders{CorrelationID: "top"}).Correlation() != "top" {
		t.Error("RequestHeaders falls back to the top-level correlation id")
	}
}

func TestControlMessagesJSON(t *testing.T) {
	roundTrip(t, Cancel{CorrelationID: "c", Reason: CancelTimeout, TimestampMs: 5})
	wantKeys(t, Cancel{}, "correlation_id", "reason", "timestamp_ms")
	roundTrip(t, Ping{Sequence: 1, TimestampMs: 2})
	roundTrip(t, HealthStatus{AgentID: "a", State: HealthDegraded, Message: "m", TimestampMs: 1})
	roundTrip(t, FlowControl{Action: FlowPause, CorrelationID: "c", BufferAvailable: u64(3), TimestampMs: 4})
	roundTrip(t, MetricsReport{AgentID: "a", Counters: []CounterMetric{{Name: "n", Value: 1}}, Gauges: []GaugeMetric{{Name: "g", Value: 1.5}},
		Histograms: []HistogramMetric{{Name: "h", Sum: 1, Count: 1, Buckets: []HistogramBucket{{Le: json.RawMessage(`"+Inf"`), Count: 1}}}}})
	roundTrip(t, ConfigUpdateRequest{UpdateType: json.RawMessage(`{"type":"request_reload"}`), RequestID: "r", TimestampMs: 1})
	roundTrip(t, RegistrationHello{ProtocolVersion: 2, AgentID: "a", AuthToken: "t", Metadata: map[string]string{"k": "v"}})

	for r := CancelClientDisconnect; r <= CancelManual; r++ {
		if ParseCancelReason(r.String()) != r {
			t.Errorf("cancel reason %d", r)
		}
	}
	for s := HealthUnknown; s <= HealthUnhealthy; s++ {
		if s.String() == "" {
			t.Error("empty state name")
		}
	}
}

func TestHandshakeJSON(t *testing.T) {
	hr := handshakeRequest(DialectRust, Options{}.withDefaults())
	b, _ := json.Marshal(hr)
	if got, want := string(b), `{"supported_versions":[2],"proxy_id":"sentinel-proxy","proxy_version":"0.1.0","config":null,"supported_encodings":["json"]}`; got != want {
		t.Fatalf("rust handshake:\n got %s\nwant %s", got, want)
	}
	b, _ = json.Marshal(handshakeRequest(DialectSDK, Options{}.withDefaults()))
	if !strings.HasPrefix(string(b), `{"protocol_version":2,"client_name":"sentinel-proxy"`) {
		t.Fatalf("sdk handshake: %s", b)
	}
	ref := `{"protocol_version":2,"success":true,"error":null,"encoding":"json",
 "capabilities":{"agent_id":"waf","name":"waf","version":"1.0.0","supported_events":[1,2],
  "features":{"streaming_body":false,"websocket":false,"guardrails":false,"config_push":false,
   "metrics_export":false,"concurrent_requests":100,"cancellation":true,"flow_control":false,
   "health_reporting":false},
  "limits":{"max_body_size":1048576,"max_concurrency":100,"preferred_chunk_size":65536}}}`
	var resp HandshakeResponse
	if err := json.Unmarshal([]byte(ref), &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.Capabilities.AgentID != "waf" || resp.Capabilities.Limits.MaxBodySize != 1048576 ||
		!reflect.DeepEqual(resp.Capabilities.SupportedEvents, []EventType{EventRequestHeaders, EventRequestBodyChunk}) {
		t.Fatalf("decoded %+v", resp)
	}
	roundTrip(t, resp)
	wantKeys(t, resp.Capabilities.Features, "streaming_body", "websocket", "guardrails", "config_push", "metrics_export",
		"concurrent_requests", "cancellation", "flow_control", "health_reporting")
	wantKeys(t, resp.Capabilities.Limits, "max_body_size", "max_concurrency", "preferred_chunk_size")
	mc := uint32(4)
	roundTrip(t, SDKHandshakeResponse{ProtocolVersion: 2, AgentName: "a", Accepted: true, Capabilities: &SDKCapabilities{HandlesRequestHeaders: true, MaxConcurrentRequests: &mc}})
}

func TestResponseJSON(t *testing.T) {
	conf := float32(0.5)
	full := &Response{
		Version:              2,
		Decision:             Decision{Kind: Block, Status: 403, Body: "Forbidden", Headers: map[string]string{"x-reason": "sqli"}},
		RequestHeaders:       []HeaderOp{{Op: HeaderSet, Name: "x-user", Value: "42"}, {Op: HeaderAdd, Name: "a", Value: "b"}, {Op: HeaderRemove, Name: "cookie"}},
		ResponseHeaders:      []HeaderOp{{Op: HeaderSet, Name: "x", Value: "y"}},
		RoutingMetadata:      map[string]string{"k": "v"},
		Audit:                Audit{Tags: []string{"t"}, RuleIDs: []string{"r"}, Confidence: &conf, ReasonCodes: []string{"c"}, Custom: map[string]any{"correlation_id": "c1", "n": 1.0}},
		NeedsMore:            true,
		RequestBodyMutation:  &BodyMutation{Data: []byte("new"), ChunkIndex: 1},
		ResponseBodyMutation: &BodyMutation{Data: []byte{}, ChunkIndex: 0},
		WebSocketDecision:    &WebSocketDecision{Kind: WSClose, Code: 1008, Reason: "policy"},
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Fatalf("round trip:\n in  %+v\n out %+v\n %s", full, got, b)
	}
	if got.CorrelationID() != "c1" {
		t.Fatal("correlation id")
	}
	if !strings.Contains(string(b), `"response_body_mutation":{"data":"","chunk_index":0}`) {
		t.Errorf("drop mutation must be \"\": %s", b)
	}
	for _, d := range []Decision{{Kind: Allow}, {Kind: Redirect, URL: "https://x", Status: 302}, {Kind: Challenge, ChallengeType: "captcha", Params: map[string]string{"a": "b"}}} {
		r := &Response{Version: 2, Decision: d, RequestHeaders: []HeaderOp{}, ResponseHeaders: []HeaderOp{}, RoutingMetadata: map[string]string{},
			Audit: Audit{Tags: []string{}, RuleIDs: []string{}, ReasonCodes: []string{}, Custom: map[string]any{}}}
		b, _ := json.Marshal(r)
		got, err := DecodeResponse(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("%s: %v\n%+v\n%+v", d.Kind, err, got, r)
		}
	}
	for _, w := range []WebSocketDecision{{Kind: WSAllow}, {Kind: WSDrop}} {
		roundTrip(t, w)
	}
	// Minimal reference form and the empty defaults.
	r, err := DecodeResponse([]byte(`{"version":1,"decision":"allow"}`))
	if err != nil || r.Decision.Kind != Allow || r.CorrelationID() != "" {
		t.Fatalf("minimal: %v %+v", err, r)
	}
	b, _ = json.Marshal(AllowResponse())
	if want := `{"version":2,"decision":"allow","request_headers":[],"response_headers":[],"routing_metadata":{},"audit":{"tags":[],"rule_ids":[],"confidence":null,"reason_codes":[],"custom":{}},"needs_more":false,"request_body_mutation":null,"response_body_mutation":null,"websocket_decision":null}`; string(b) != want {
		t.Fatalf("allow:\n got %s\nwant %s", b, want)
	}
	if k := (DecisionKind(9)); k.String() != "allow" {
		t.Error(k)
	}
	if _, err := json.Marshal(Decision{Kind: 9}); err == nil {
		t.Error("unknown kind must not marshal")
	}
	if _, err := json.Marshal(HeaderOp{Op: 9}); err == nil {
		t.Error("unknown op must not marshal")
	}
}

func TestDecodeResponseErrors(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{`[]`, "cannot unmarshal"},
		{`null`, "not an object"},
		{`{"decision":"allow"}`, `"version" missing`},
		{`{"version":2}`, `"decision" missing`},
		{`{"version":"x","decision":"allow"}`, `"version"`},
		{`{"version":2,"decision":"maybe"}`, `unknown decision "maybe"`},
		{`{"version":2,"decision":{"block":{}}}`, "decision.block.status: missing"},
		{`{"version":2,"decision":{"block":{"status":7}}}`, "decision.block.status: 7 out of range"},
		{`{"version":2,"decision":{"block":{"status":"x"}}}`, "decision.block"},
		{`{"version":2,"decision":{"redirect":{"status":302}}}`, "decision.redirect.url: missing"},
		{`{"version":2,"decision":{"redirect":{"url":"/"}}}`, "decision.redirect.status: missing"},
		{`{"version":2,"decision":{"redirect":{"url":"/","status":1}}}`, "out of range"},
		{`{"version":2,"decision":{"redirect":1}}`, "decision.redirect"},
		{`{"version":2,"decision":{"challenge":{}}}`, "challenge_type: missing"},
		{`{"version":2,"decision":{"challenge":[]}}`, "decision.challenge"},
		{`{"version":2,"decision":{"a":1,"b":2}}`, "exactly one key"},
		{`{"version":2,"decision":{"nope":{}}}`, `unknown decision "nope"`},
		{`{"version":2,"decision":null}`, "want a string or an object"},
		{`{"version":2,"decision":"allow","request_headers":[{"set":{"value":"v"}}]}`, "header op.set.name: missing"},
		{`{"version":2,"decision":"allow","request_headers":[{"set":{"name":"v"}}]}`, "header op.set.value: missing"},
		{`{"version":2,"decision":"allow","request_headers":[{"zap":{"name":"v"}}]}`, `unknown op "zap"`},
		{`{"version":2,"decision":"allow","request_headers":[{}]}`, "exactly one key"},
		{`{"version":2,"decision":"allow","response_headers":[1]}`, "header op"},
		{`{"version":2,"decision":"allow","request_headers":[{"operation":"zap","name":"a"}]}`, "header op.operation"},
		{`{"version":2,"decision":"allow","request_headers":[{"operation":1}]}`, "header op.operation"},
		{`{"version":2,"decision":"allow","request_headers":[{"operation":"set","name":1}]}`, "header op.name"},
		{`{"version":2,"decision":"allow","request_headers":[{"operation":"set","name":"a","value":1}]}`, "header op.value"},
		{`{"version":2,"decision":"allow","request_headers":[{"set":1}]}`, "header op.set"},
		{`{"version":2,"decision":"allow","audit":{"tags":"x"}}`, `"audit"`},
		{`{"version":2,"decision":"allow","needs_more":1}`, `"needs_more"`},
		{`{"version":2,"decision":"allow","routing_metadata":[]}`, `"routing_metadata"`},
		{`{"version":2,"decision":"allow","request_body_mutation":{"data":"!"}}`, `"request_body_mutation"`},
		{`{"version":2,"decision":"allow","response_body_mutation":1}`, `"response_body_mutation"`},
		{`{"version":2,"decision":"allow","websocket_decision":"x"}`, `websocket_decision: unknown "x"`},
		{`{"version":2,"decision":"allow","websocket_decision":{}}`, "websocket_decision"},
		{`{"version":2,"decision":"allow","websocket_decision":1}`, "websocket_decision"},
	} {
		_, err := DecodeResponse([]byte(tc.in))
		if err == nil || !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: got %v, want error containing %q", tc.in, err, tc.field)
		}
	}
	// Lenient forms.
	for in, want := range map[string]DecisionKind{
		`{"version":2,"decision":{"allow":{}}}`:                                            Allow,
		`{"version":2,"decision":{"needs_more":true}}`:                                     Allow,
		`{"version":2,"decision":"block"}`:                                                 Block,
		`{"version":2,"decision":{"challenge":{"challenge_type":"pow","params":{"n":3}}}}`: Challenge,
	} {
		r, err := DecodeResponse([]byte(in))
		if err != nil || r.Decision.Kind != want {
			t.Errorf("%s: %v %v", in, err, r)
		}
	}
}

func TestSDKDecisionDecode(t *testing.T) {
	r, id, err := DecodeSDKDecision([]byte(`{"request_id":7,"decision":{"block":{"status":401,"body":"no"}},"request_headers":[{"operation":"set","name":"x","value":"1"},{"operation":"remove","name":"y"},{"operation":"add","name":"z","value":"2"}],"audit":{"tags":["t"]}}`))
	if err != nil || id != 7 || r.Decision.Kind != Block || r.Decision.Status != 401 || r.Decision.Body != "no" || len(r.RequestHeaders) != 3 || r.RequestHeaders[1].Op != HeaderRemove || r.RequestHeaders[2].Op != HeaderAdd || r.Audit.Tags[0] != "t" {
		t.Fatalf("%v %d %+v", err, id, r)
	}
	r, _, err = DecodeSDKDecision([]byte(`{"request_id":1,"decision":{"needs_more":true}}`))
	if err != nil || !r.NeedsMore || r.Decision.Kind != Allow {
		t.Fatalf("needs_more: %v %+v", err, r)
	}
	for _, in := range []string{`{`, `{"request_id":1}`, `{"request_id":1,"decision":"nope"}`} {
		if _, _, err := DecodeSDKDecision([]byte(in)); err == nil || !errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"version":2,"decision":"allow"}`))
	f.Add([]byte(`{"version":2,"decision":{"block":{"status":403,"body":"x","headers":{"a":"b"}}},"request_headers":[{"set":{"name":"a","value":"b"}}]}`))
	f.Add([]byte(`{"version":2,"decision":{"redirect":{"url":"/","status":302}},"audit":{"custom":{"correlation_id":"c"}}}`))
	f.Add([]byte(`{"version":2,"decision":{"challenge":{"challenge_type":"c","params":{}}},"websocket_decision":{"close":{"code":1008,"reason":"r"}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := DecodeResponse(in)
		if err != nil {
			if r != nil || !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error %v with response %v", err, r)
			}
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeResponse(b); err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		_, _, _ = DecodeSDKDecision(in)
	})
}

func TestSDKDialectMessagesJSON(t *testing.T) {
	sn := "host"
	roundTrip(t, SDKRequestHeaders{RequestID: 1, Method: "GET", URI: "/", Headers: map[string][]string{"a": {"b"}}, HasBody: true,
		Metadata: SDKRequestMetadata{CorrelationID: "c", ClientIP: "1.2.3.4", ClientPort: 9, ServerName: &sn, Protocol: "HTTP/1.1"}})
	wantKeys(t, SDKRequestHeaders{}, "request_id", "method", "uri", "headers", "has_body", "metadata")
	roundTrip(t, SDKBodyChunk{RequestID: 1, ChunkIndex: 2, Data: []byte("x"), IsLast: true})
	wantKeys(t, SDKBodyChunk{}, "request_id", "chunk_index", "data", "is_last")
	roundTrip(t, SDKResponseHeaders{RequestID: 1, StatusCode: 200, Headers: map[string][]string{}, HasBody: false})
	wantKeys(t, SDKResponseHeaders{}, "request_id", "status_code", "headers", "has_body")
	reason := "timeout"
	roundTrip(t, SDKCancel{RequestID: 3, Reason: &reason})
	roundTrip(t, SDKPing{Timestamp: 5})
	d := SDKDecision{RequestID: 4, Decision: json.RawMessage(`"allow"`), RequestHeaders: []HeaderOp{{Op: HeaderSet, Name: "a", Value: "b"}}}
	b, _ := json.Marshal(d)
	r, id, err := DecodeSDKDecision(b)
	if err != nil || id != 4 || r.RequestHeaders[0] != d.RequestHeaders[0] {
		t.Fatalf("%v %d %+v", err, id, r)
	}
}
