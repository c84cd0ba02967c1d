package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"google.golang.org/grpc"

	agentpb "github.com/sentinel-proxy/sentinel/agents/protocol/proto"
)

// GRPCServiceDesc returns the AgentServiceV2 service descriptor under the
// given proto package (PackageSentinel or PackageZentinel): the generated
// descriptor with its ServiceName changed, so one implementation serves
// both full method names.
func GRPCServiceDesc(pkg string) *grpc.ServiceDesc {
	d := agentpb.AgentServiceV2_ServiceDesc
	d.ServiceName = pkg + ".AgentServiceV2"
	return &d
}

// RegisterGRPCService registers impl under each package (default both).
func RegisterGRPCService(s grpc.ServiceRegistrar, impl agentpb.AgentServiceV2Server, packages ...string) {
	if len(packages) == 0 {
		packages = []string{PackageSentinel, PackageZentinel}
	}
	for _, p := range packages {
		s.RegisterService(GRPCServiceDesc(p), impl)
	}
}

func optStr(s OptString) *string {
	if s == "" {
		return nil
	}
	v := string(s)
	return &v
}

func fromOpt(p *string) OptString {
	if p == nil {
		return ""
	}
	return OptString(*p)
}

func flattenHeaders(h map[string][]string) []*agentpb.Header {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []*agentpb.Header
	for _, k := range names {
		for _, v := range h[k] {
			out = append(out, &agentpb.Header{Name: k, Value: v})
		}
	}
	return out
}

func groupHeaders(hs []*agentpb.Header) map[string][]string {
	out := make(map[string][]string, len(hs))
	for _, h := range hs {
		out[h.GetName()] = append(out[h.GetName()], h.GetValue())
	}
	return out
}

var wsFrameTypes = map[string]int32{"continuation": 0, "text": 1, "binary": 2, "ping": 3, "pong": 4, "close": 5}

func nowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// EventToPB converts an event to the gRPC envelope. Configure carries
// its Config as config_json.
func EventToPB(ev Event) (*agentpb.ProxyToAgent, error) {
	switch e := ev.(type) {
	case *RequestHeaders:
		md := e.Metadata
		if md.CorrelationID == "" {
			md.CorrelationID = e.CorrelationID
		}
		ver := md.Protocol
		if ver == "" {
			ver = "HTTP/1.1"
		}
		var tp *string
		if md.Traceparent != "" {
			tp = &md.Traceparent
		}
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_RequestHeaders{RequestHeaders: &agentpb.RequestHeadersEvent{
			Metadata: &agentpb.RequestMetadata{
				CorrelationId: md.CorrelationID, RequestId: md.RequestID, ClientIp: md.ClientIP,
				ClientPort: uint32(md.ClientPort), ServerName: optStr(md.ServerName), Protocol: md.Protocol,
				TlsVersion: optStr(md.TLSVersion), RouteId: optStr(md.RouteID), UpstreamId: optStr(md.UpstreamID),
				TimestampMs: nowMs(), Traceparent: tp,
			},
			Method: e.Method, Uri: e.URI, RawUri: e.RawURI, HttpVersion: ver, Headers: flattenHeaders(e.Headers),
		}}}, nil
	case *RequestBodyChunk:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentpb.BodyChunkEvent{
			CorrelationId: e.CorrelationID, ChunkIndex: e.ChunkIndex, Data: e.Data, IsLast: e.IsLast,
			TotalSize: e.TotalSize, BytesTransferred: e.BytesReceived, TimestampMs: nowMs(),
		}}}, nil
	case *ResponseHeaders:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentpb.ResponseHeadersEvent{
			CorrelationId: e.CorrelationID, StatusCode: uint32(e.Status), Headers: flattenHeaders(e.Headers),
		}}}, nil
	case *ResponseBodyChunk:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentpb.BodyChunkEvent{
			CorrelationId: e.CorrelationID, ChunkIndex: e.ChunkIndex, Data: e.Data, IsLast: e.IsLast,
			TotalSize: e.TotalSize, BytesTransferred: e.BytesSent, TimestampMs: nowMs(),
		}}}, nil
	case *RequestComplete:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_RequestComplete{RequestComplete: &agentpb.RequestCompleteEvent{
			CorrelationId: e.CorrelationID, StatusCode: uint32(e.Status), DurationMs: e.DurationMs,
			BytesReceived: e.RequestBodySize, BytesSent: e.ResponseBodySize, Error: optStr(e.Error),
		}}}, nil
	case *WebSocketFrame:
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentpb.WebSocketFrameEvent{
			CorrelationId: e.CorrelationID, ClientToServer: e.ClientToServer, FrameType: wsFrameTypes[e.Opcode], Payload: e.Data,
		}}}, nil
	case *GuardrailInspect:
		ctxJSON, _ := json.Marshal(map[string]any{"inspection_type": e.InspectionType, "categories": e.Categories, "route_id": e.RouteID, "metadata": e.Metadata})
		var model *string
		if e.Model != "" {
			model = &e.Model
		}
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Guardrail{Guardrail: &agentpb.GuardrailInspectEvent{
			CorrelationId: e.CorrelationID, Content: e.Content, ContentType: 1, Model: model, ContextJson: string(ctxJSON),
		}}}, nil
	case *Configure:
		cfg := string(e.Config)
		if cfg == "" {
			cfg = "null"
		}
		return &agentpb.ProxyToAgent{Message: &agentpb.ProxyToAgent_Configure{Configure: &agentpb.ConfigureEvent{
			ConfigJson: cfg, ConfigVersion: optStr(e.ConfigVersion), IsInitial: true, TimestampMs: nowMs(),
		}}}, nil
	}
	return nil, fmt.Errorf("%w: event %T over gRPC", ErrUnsupported, ev)
}

// EventFromPB converts a gRPC event envelope to an event; it returns nil
// for non-event messages (handshake, cancel, ping).
func EventFromPB(m *agentpb.ProxyToAgent) Event {
	switch {
	case m.GetRequestHeaders() != nil:
		e := m.GetRequestHeaders()
		md := e.GetMetadata()
		ts := ""
		if md.GetTimestampMs() != 0 {
			ts = time.UnixMilli(int64(md.GetTimestampMs())).UTC().Format(time.RFC3339Nano)
		}
		return &RequestHeaders{
			CorrelationID: md.GetCorrelationId(),
			Metadata: RequestMetadata{
				CorrelationID: md.GetCorrelationId(), RequestID: md.GetRequestId(), ClientIP: md.GetClientIp(),
				ClientPort: uint16(md.GetClientPort()), ServerName: fromOpt(md.ServerName), Protocol: md.GetProtocol(),
				TLSVersion: fromOpt(md.TlsVersion), RouteID: fromOpt(md.RouteId), UpstreamID: fromOpt(md.UpstreamId),
				Timestamp: ts, Traceparent: md.GetTraceparent(),
			},
			Method: e.GetMethod(), URI: e.GetUri(), RawURI: e.GetRawUri(), Headers: groupHeaders(e.GetHeaders()),
		}
	case m.GetRequestBodyChunk() != nil:
		e := m.GetRequestBodyChunk()
		return &RequestBodyChunk{CorrelationID: e.GetCorrelationId(), Data: e.GetData(), IsLast: e.GetIsLast(),
			TotalSize: e.TotalSize, ChunkIndex: e.GetChunkIndex(), BytesReceived: e.GetBytesTransferred()}
	case m.GetResponseHeaders() != nil:
		e := m.GetResponseHeaders()
		return &ResponseHeaders{CorrelationID: e.GetCorrelationId(), Status: uint16(e.GetStatusCode()), Headers: groupHeaders(e.GetHeaders())}
	case m.GetResponseBodyChunk() != nil:
		e := m.GetResponseBodyChunk()
		return &ResponseBodyChunk{CorrelationID: e.GetCorrelationId(), Data: e.GetData(), IsLast: e.GetIsLast(),
			TotalSize: e.TotalSize, ChunkIndex: e.GetChunkIndex(), BytesSent: e.GetBytesTransferred()}
	case m.GetRequestComplete() != nil:
		e := m.GetRequestComplete()
		return &RequestComplete{CorrelationID: e.GetCorrelationId(), Status: uint16(e.GetStatusCode()), DurationMs: e.GetDurationMs(),
			RequestBodySize: e.GetBytesReceived(), ResponseBodySize: e.GetBytesSent(), Error: fromOpt(e.Error)}
	case m.GetWebsocketFrame() != nil:
		e := m.GetWebsocketFrame()
		op := "continuation"
		for k, v := range wsFrameTypes {
			if v == e.GetFrameType() {
				op = k
			}
		}
		return &WebSocketFrame{CorrelationID: e.GetCorrelationId(), Opcode: op, Data: e.GetPayload(), ClientToServer: e.GetClientToServer(), Fin: true}
	case m.GetGuardrail() != nil:
		e := m.GetGuardrail()
		g := &GuardrailInspect{CorrelationID: e.GetCorrelationId(), Content: e.GetContent(), Model: e.GetModel()}
		var extra struct {
			InspectionType string            `json:"inspection_type"`
			Categories     []string          `json:"categories"`
			RouteID        string            `json:"route_id"`
			Metadata       map[string]string `json:"metadata"`
		}
		if json.Unmarshal([]byte(e.GetContextJson()), &extra) == nil {
			g.InspectionType, g.Categories, g.RouteID, g.Metadata = extra.InspectionType, extra.Categories, extra.RouteID, extra.Metadata
		}
		return g
	case m.GetConfigure() != nil:
		e := m.GetConfigure()
		var cfg json.RawMessage
		if e.GetConfigJson() != "" {
			cfg = json.RawMessage(e.GetConfigJson())
		}
		return &Configure{Config: cfg, ConfigVersion: fromOpt(e.ConfigVersion)}
	}
	return nil
}

func headerOpsToPB(ops []HeaderOp) []*agentpb.HeaderOp {
	out := make([]*agentpb.HeaderOp, 0, len(ops))
	for _, op := range ops {
		switch op.Op {
		case HeaderSet:
			out = append(out, &agentpb.HeaderOp{Operation: &agentpb.HeaderOp_Set{Set: &agentpb.Header{Name: op.Name, Value: op.Value}}})
		case HeaderAdd:
			out = append(out, &agentpb.HeaderOp{Operation: &agentpb.HeaderOp_Add{Add: &agentpb.Header{Name: op.Name, Value: op.Value}}})
		case HeaderRemove:
			out = append(out, &agentpb.HeaderOp{Operation: &agentpb.HeaderOp_Remove{Remove: op.Name}})
		}
	}
	return out
}

func headerOpsFromPB(ops []*agentpb.HeaderOp) []HeaderOp {
	var out []HeaderOp
	for _, op := range ops {
		switch {
		case op.GetSet() != nil:
			out = append(out, HeaderOp{Op: HeaderSet, Name: op.GetSet().GetName(), Value: op.GetSet().GetValue()})
		case op.GetAdd() != nil:
			out = append(out, HeaderOp{Op: HeaderAdd, Name: op.GetAdd().GetName(), Value: op.GetAdd().GetValue()})
		case op.GetRemove() != "":
			out = append(out, HeaderOp{Op: HeaderRemove, Name: op.GetRemove()})
		}
	}
	return out
}

// ResponseToPB converts a response to the gRPC AgentResponse (body
// mutations, routing metadata and websocket decisions have no proto field
// and are lost, as in the Rust implementation; non-string audit.custom
// values are JSON-rendered).
func ResponseToPB(corr string, r *Response) *agentpb.AgentResponse {
	if r == nil {
		r = AllowResponse()
	}
	out := &agentpb.AgentResponse{
		CorrelationId:    corr,
		RequestHeaders:   headerOpsToPB(r.RequestHeaders),
		ResponseHeaders:  headerOpsToPB(r.ResponseHeaders),
		ProcessingTimeMs: r.ProcessingTimeMs,
		NeedsMore:        r.NeedsMore,
	}
	d := r.Decision
	switch d.Kind {
	case Block:
		var body *string
		if d.Body != "" {
			body = &d.Body
		}
		var hs []*agentpb.Header
		for _, k := range sortedKeys(d.Headers) {
			hs = append(hs, &agentpb.Header{Name: k, Value: d.Headers[k]})
		}
		out.Decision = &agentpb.AgentResponse_Block{Block: &agentpb.BlockDecision{Status: uint32(d.Status), Body: body, Headers: hs}}
	case Redirect:
		out.Decision = &agentpb.AgentResponse_Redirect{Redirect: &agentpb.RedirectDecision{Url: d.URL, Status: uint32(d.Status)}}
	case Challenge:
		out.Decision = &agentpb.AgentResponse_Challenge{Challenge: &agentpb.ChallengeDecision{ChallengeType: d.ChallengeType, Params: d.Params}}
	default:
		out.Decision = &agentpb.AgentResponse_Allow{Allow: &agentpb.AllowDecision{}}
	}
	a := r.Audit
	if len(a.Tags)+len(a.RuleIDs)+len(a.ReasonCodes)+len(a.Custom) > 0 || a.Confidence != nil {
		custom := make(map[string]string, len(a.Custom))
		for k, v := range a.Custom {
			if s, ok := v.(string); ok {
				custom[k] = s
			} else {
				b, _ := json.Marshal(v)
				custom[k] = string(b)
			}
		}
		out.Audit = &agentpb.AuditMetadata{Tags: a.Tags, RuleIds: a.RuleIDs, Confidence: a.Confidence, ReasonCodes: a.ReasonCodes, Custom: custom}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ResponseFromPB converts a gRPC AgentResponse to a Response (audit.custom
// values arrive as strings; the correlation id is also stored in
// audit.custom.correlation_id).
func ResponseFromPB(m *agentpb.AgentResponse) *Response {
	r := &Response{
		Version:          ProtocolVersion,
		RequestHeaders:   headerOpsFromPB(m.GetRequestHeaders()),
		ResponseHeaders:  headerOpsFromPB(m.GetResponseHeaders()),
		NeedsMore:        m.GetNeedsMore(),
		ProcessingTimeMs: m.ProcessingTimeMs,
	}
	switch {
	case m.GetBlock() != nil:
		b := m.GetBlock()
		r.Decision = Decision{Kind: Block, Status: int(b.GetStatus()), Body: b.GetBody()}
		if len(b.GetHeaders()) > 0 {
			r.Decision.Headers = map[string]string{}
			for _, h := range b.GetHeaders() {
				r.Decision.Headers[h.GetName()] = h.GetValue()
			}
		}
	case m.GetRedirect() != nil:
		r.Decision = Decision{Kind: Redirect, URL: m.GetRedirect().GetUrl(), Status: int(m.GetRedirect().GetStatus())}
	case m.GetChallenge() != nil:
		r.Decision = Decision{Kind: Challenge, ChallengeType: m.GetChallenge().GetChallengeType(), Params: m.GetChallenge().GetParams()}
	}
	if a := m.GetAudit(); a != nil {
		r.Audit = Audit{Tags: a.GetTags(), RuleIDs: a.GetRuleIds(), Confidence: a.Confidence, ReasonCodes: a.GetReasonCodes()}
		if len(a.GetCustom()) > 0 {
			r.Audit.Custom = make(map[string]any, len(a.GetCustom()))
			for k, v := range a.GetCustom() {
				r.Audit.Custom[k] = v
			}
		}
	}
	if m.GetCorrelationId() != "" {
		r.SetCorrelationID(m.GetCorrelationId())
	}
	return r
}

// CapabilitiesToPB converts capabilities to the proto form.
func CapabilitiesToPB(c Capabilities) *agentpb.AgentCapabilities {
	ev := make([]int32, len(c.SupportedEvents))
	for i, e := range c.SupportedEvents {
		ev[i] = int32(e)
	}
	f := c.Features
	return &agentpb.AgentCapabilities{
		ProtocolVersion: ProtocolVersion, AgentId: c.AgentID, Name: c.Name, Version: c.Version, SupportedEvents: ev,
		Features: &agentpb.AgentFeatures{StreamingBody: f.StreamingBody, Websocket: f.WebSocket, Guardrails: f.Guardrails,
			ConfigPush: f.ConfigPush, MetricsExport: f.MetricsExport, ConcurrentRequests: f.ConcurrentRequests,
			Cancellation: f.Cancellation, FlowControl: f.FlowControl, HealthReporting: f.HealthReporting},
		Limits: &agentpb.AgentLimits{MaxBodySize: c.Limits.MaxBodySize, MaxConcurrency: c.Limits.MaxConcurrency, PreferredChunkSize: c.Limits.PreferredChunkSize},
	}
}

// CapabilitiesFromPB converts proto capabilities.
func CapabilitiesFromPB(p *agentpb.AgentCapabilities) Capabilities {
	c := Capabilities{AgentID: p.GetAgentId(), Name: p.GetName(), Version: p.GetVersion()}
	for _, e := range p.GetSupportedEvents() {
		c.SupportedEvents = append(c.SupportedEvents, EventType(e))
	}
	f := p.GetFeatures()
	c.Features = Features{StreamingBody: f.GetStreamingBody(), WebSocket: f.GetWebsocket(), Guardrails: f.GetGuardrails(),
		ConfigPush: f.GetConfigPush(), MetricsExport: f.GetMetricsExport(), ConcurrentRequests: f.GetConcurrentRequests(),
		Cancellation: f.GetCancellation(), FlowControl: f.GetFlowControl(), HealthReporting: f.GetHealthReporting()}
	l := p.GetLimits()
	c.Limits = Limits{MaxBodySize: l.GetMaxBodySize(), MaxConcurrency: l.GetMaxConcurrency(), PreferredChunkSize: l.GetPreferredChunkSize()}
	return c
}

// configUpdateFromPB renders the proto oneof as the UDS JSON form.
func configUpdateFromPB(p *agentpb.ConfigUpdateRequest) ConfigUpdateRequest {
	var ut any
	switch {
	case p.GetRuleUpdate() != nil:
		ut = map[string]any{"type": "rule_update", "rule_set": p.GetRuleUpdate().GetRuleSet(), "remove_rules": p.GetRuleUpdate().GetRemoveRules()}
	case p.GetListUpdate() != nil:
		ut = map[string]any{"type": "list_update", "list_id": p.GetListUpdate().GetListId(), "add": p.GetListUpdate().GetAdd(), "remove": p.GetListUpdate().GetRemove()}
	case p.GetRestartRequired() != nil:
		ut = map[string]any{"type": "restart_required", "reason": p.GetRestartRequired().GetReason(), "grace_period_ms": p.GetRestartRequired().GetGracePeriodMs()}
	case p.GetConfigError() != nil:
		ut = map[string]any{"type": "config_error", "error": p.GetConfigError().GetError()}
	default:
		ut = map[string]any{"type": "request_reload"}
	}
	b, _ := json.Marshal(ut)
	return ConfigUpdateRequest{UpdateType: b, RequestID: p.GetRequestId(), TimestampMs: p.GetTimestampMs()}
}

func metricsFromPB(p *agentpb.MetricsReport) MetricsReport {
	m := MetricsReport{AgentID: p.GetAgentId(), TimestampMs: p.GetTimestampMs(), IntervalMs: p.GetIntervalMs()}
	for _, c := range p.GetCounters() {
		m.Counters = append(m.Counters, CounterMetric{Name: c.GetName(), Help: c.GetHelp(), Labels: c.GetLabels(), Value: c.GetValue()})
	}
	for _, g := range p.GetGauges() {
		m.Gauges = append(m.Gauges, GaugeMetric{Name: g.GetName(), Help: g.GetHelp(), Labels: g.GetLabels(), Value: g.GetValue()})
	}
	for _, h := range p.GetHistograms() {
		hm := HistogramMetric{Name: h.GetName(), Help: h.GetHelp(), Labels: h.GetLabels(), Sum: h.GetSum(), Count: h.GetCount()}
		for _, b := range h.GetBuckets() {
			le := json.RawMessage(`"+Inf"`)
			if !math.IsInf(b.GetLe(), 1) {
				le = json.RawMessage(strconv.FormatFloat(b.GetLe(), 'g', -1, 64))
			}
			hm.Buckets = append(hm.Buckets, HistogramBucket{Le: le, Count: b.GetCount()})
		}
		m.Histograms = append(m.Histograms, hm)
	}
	return m
}
