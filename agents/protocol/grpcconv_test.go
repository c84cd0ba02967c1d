package protocol

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	agentpb "github.com/sentinel-proxy/sentinel/agents/protocol/proto"
)

func TestEventPBRoundTrip(t *testing.T) {
	size := uint64(9)
	events := []Event{
		&RequestHeaders{CorrelationID: "c", Metadata: RequestMetadata{CorrelationID: "c", RequestID: "r", ClientIP: "1.2.3.4", ClientPort: 5,
			ServerName: "h", Protocol: "HTTP/2.0", TLSVersion: "TLSv1.3", RouteID: "route", UpstreamID: "up", Traceparent: "tp"},
			Method: "POST", URI: "/x?y", RawURI: "/a/../x?y", Headers: map[string][]string{"a": {"1", "2"}, "b": {"3"}}},
		&RequestBodyChunk{CorrelationID: "c", Data: []byte("abc"), IsLast: true, TotalSize: &size, ChunkIndex: 2, BytesReceived: 9},
		&ResponseHeaders{CorrelationID: "c", Status: 418, Headers: map[string][]string{"x": {"y"}}},
		&ResponseBodyChunk{CorrelationID: "c", Data: []byte("z"), ChunkIndex: 1, BytesSent: 4},
		&RequestComplete{CorrelationID: "c", Status: 200, DurationMs: 5, RequestBodySize: 1, ResponseBodySize: 2, Error: "e"},
		&WebSocketFrame{CorrelationID: "c", Opcode: "binary", Data: []byte{1}, ClientToServer: true, Fin: true},
		&GuardrailInspect{CorrelationID: "c", InspectionType: "prompt_injection", Content: "x", Model: "m", Categories: []string{"a"}, RouteID: "r", Metadata: map[string]string{"k": "v"}},
		&Configure{Config: json.RawMessage(`{"a":1}`), ConfigVersion: "v"},
	}
	for _, ev := range events {
		pb, err := EventToPB(ev)
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		back := EventFromPB(pb)
		if rh, ok := back.(*RequestHeaders); ok {
			if rh.Metadata.Timestamp == "" {
				t.Error("timestamp not set")
			}
			rh.Metadata.Timestamp = ""
		}
		if !reflect.DeepEqual(back, ev) {
			t.Errorf("%T:\n in  %+v\n out %+v", ev, ev, back)
		}
	}
	if _, err := EventToPB(nil); err == nil {
		t.Error("nil event converted")
	}
	if EventFromPB(&agentpb.ProxyToAgent{}) != nil {
		t.Error("empty envelope is not an event")
	}
	// Defaults: HTTP version and top-level correlation id.
	pb, _ := EventToPB(&RequestHeaders{CorrelationID: "top"})
	if pb.GetRequestHeaders().GetHttpVersion() != "HTTP/1.1" || pb.GetRequestHeaders().GetMetadata().GetCorrelationId() != "top" {
		t.Errorf("defaults: %v", pb)
	}
	pb, _ = EventToPB(&Configure{})
	if pb.GetConfigure().GetConfigJson() != "null" {
		t.Error("empty config")
	}
}

func TestResponsePBRoundTrip(t *testing.T) {
	conf := float32(0.7)
	ms := uint64(3)
	for _, r := range []*Response{
		{Version: 2, Decision: Decision{Kind: Block, Status: 403, Body: "b", Headers: map[string]string{"x": "y"}},
			RequestHeaders:  []HeaderOp{{Op: HeaderSet, Name: "a", Value: "1"}, {Op: HeaderAdd, Name: "b", Value: "2"}, {Op: HeaderRemove, Name: "c"}},
			ResponseHeaders: []HeaderOp{{Op: HeaderSet, Name: "d", Value: "4"}},
			Audit:           Audit{Tags: []string{"t"}, RuleIDs: []string{"r"}, Confidence: &conf, ReasonCodes: []string{"rc"}, Custom: map[string]any{"correlation_id": "c", "s": "v"}},
			NeedsMore:       true, ProcessingTimeMs: &ms},
		{Version: 2, Decision: Decision{Kind: Redirect, URL: "/u", Status: 301}, Audit: Audit{Custom: map[string]any{"correlation_id": "c"}}},
		{Version: 2, Decision: Decision{Kind: Challenge, ChallengeType: "pow", Params: map[string]string{"n": "1"}}, Audit: Audit{Custom: map[string]any{"correlation_id": "c"}}},
		{Version: 2, Audit: Audit{Custom: map[string]any{"correlation_id": "c"}}},
	} {
		back := ResponseFromPB(ResponseToPB("c", r))
		if !reflect.DeepEqual(back, r) {
			t.Errorf("\n in  %+v\n out %+v", r, back)
		}
	}
	// Non-string custom values are JSON-rendered; nil is allow.
	pb := ResponseToPB("x", &Response{Audit: Audit{Custom: map[string]any{"n": 1.5}}})
	if pb.GetAudit().GetCustom()["n"] != "1.5" {
		t.Error(pb.GetAudit())
	}
	if ResponseToPB("x", nil).GetAllow() == nil {
		t.Error("nil response must be allow")
	}
}

func TestCapabilitiesAndControlPB(t *testing.T) {
	c := Capabilities{AgentID: "a", Name: "n", Version: "v", SupportedEvents: []EventType{1, 2},
		Features: Features{StreamingBody: true, WebSocket: true, Guardrails: true, ConfigPush: true, MetricsExport: true, ConcurrentRequests: 3, Cancellation: true, FlowControl: true, HealthReporting: true},
		Limits:   Limits{MaxBodySize: 1, MaxConcurrency: 2, PreferredChunkSize: 3}}
	if back := CapabilitiesFromPB(CapabilitiesToPB(c)); !reflect.DeepEqual(back, c) {
		t.Fatalf("%+v", back)
	}
	help := "h"
	m := metricsFromPB(&agentpb.MetricsReport{AgentId: "a", TimestampMs: 1, IntervalMs: 2,
		Counters:   []*agentpb.CounterMetric{{Name: "c", Help: &help, Value: 3}},
		Gauges:     []*agentpb.GaugeMetric{{Name: "g", Value: 0.5}},
		Histograms: []*agentpb.HistogramMetric{{Name: "h", Sum: 1, Count: 2, Buckets: []*agentpb.HistogramBucket{{Le: 0.1, Count: 1}, {Le: math.Inf(1), Count: 2}}}}})
	b, err := json.Marshal(m)
	if err != nil || m.Counters[0].Help != "h" || string(m.Histograms[0].Buckets[1].Le) != `"+Inf"` || string(m.Histograms[0].Buckets[0].Le) != "0.1" {
		t.Fatalf("%v %s", err, b)
	}
	for _, tc := range []struct {
		in   *agentpb.ConfigUpdateRequest
		want string
	}{
		{&agentpb.ConfigUpdateRequest{}, "request_reload"},
		{&agentpb.ConfigUpdateRequest{UpdateType: &agentpb.ConfigUpdateRequest_RuleUpdate{RuleUpdate: &agentpb.RuleUpdate{RuleSet: "s"}}}, "rule_update"},
		{&agentpb.ConfigUpdateRequest{UpdateType: &agentpb.ConfigUpdateRequest_ListUpdate{ListUpdate: &agentpb.ListUpdate{ListId: "l"}}}, "list_update"},
		{&agentpb.ConfigUpdateRequest{UpdateType: &agentpb.ConfigUpdateRequest_RestartRequired{RestartRequired: &agentpb.RestartRequired{Reason: "r"}}}, "restart_required"},
		{&agentpb.ConfigUpdateRequest{UpdateType: &agentpb.ConfigUpdateRequest_ConfigError{ConfigError: &agentpb.ConfigError{Error: "e"}}}, "config_error"},
	} {
		var ut struct {
			Type string `json:"type"`
		}
		cu := configUpdateFromPB(tc.in)
		if err := json.Unmarshal(cu.UpdateType, &ut); err != nil || ut.Type != tc.want {
			t.Errorf("%v %s", err, cu.UpdateType)
		}
	}
}

func TestRustInboundControl(t *testing.T) {
	for _, tc := range []struct {
		f    Frame
		kind inKind
		bad  bool
	}{
		{Frame{Type: MsgMetricsReport, Payload: []byte(`{"agent_id":"a","timestamp_ms":1,"interval_ms":1,"counters":[],"gauges":[],"histograms":[]}`)}, inMetrics, false},
		{Frame{Type: MsgMetricsReport, Payload: []byte(`[`)}, inIgnore, false},
		{Frame{Type: MsgConfigUpdateRequest, Payload: []byte(`{"update_type":{"type":"request_reload"},"request_id":"r","timestamp_ms":1}`)}, inConfigUpdate, false},
		{Frame{Type: MsgConfigUpdateRequest, Payload: []byte(`1`)}, inIgnore, false},
		{Frame{Type: MsgHealthStatus, Payload: []byte(`{"state":{"status":"healthy"}}`)}, 0, true},
		{Frame{Type: MsgFlowControl, Payload: []byte(`{"action":"x"}`)}, 0, true},
		{Frame{Type: MsgRequestHeaders, Payload: []byte(`{}`)}, inIgnore, false},
	} {
		m, err := decodeRustInbound(tc.f)
		if (err != nil) != tc.bad || (!tc.bad && m.kind != tc.kind) {
			t.Errorf("%s: %v %v", tc.f.Type, err, m.kind)
		}
	}
}
