package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// DecisionKind is the kind of an agent decision.
type DecisionKind int

// Decision kinds.
const (
	// Allow lets the request continue (the zero value).
	Allow DecisionKind = iota
	// Block answers the client with Status, Body and Headers.
	Block
	// Redirect answers the client with a redirect to URL.
	Redirect
	// Challenge asks for a challenge (e.g. captcha).
	Challenge
)

// String returns "allow", "block", "redirect" or "challenge".
func (k DecisionKind) String() string {
	switch k {
	case Block:
		return "block"
	case Redirect:
		return "redirect"
	case Challenge:
		return "challenge"
	}
	return "allow"
}

// Decision is an agent decision in Go form. On the wire it is externally
// tagged: "allow" | {"block":{status,body,headers}} |
// {"redirect":{url,status}} | {"challenge":{challenge_type,params}}.
type Decision struct {
	// Kind is the decision kind.
	Kind DecisionKind
	// Status is the HTTP status for Block and Redirect.
	Status int
	// Body is the block body; "" is sent as null (the proxy's default text).
	Body string
	// Headers are block response headers.
	Headers map[string]string
	// URL is the redirect target.
	URL string
	// ChallengeType is the challenge type, e.g. "captcha".
	ChallengeType string
	// Params are challenge parameters.
	Params map[string]string
}

// blockJSON is the wire form of a block decision.
type blockJSON struct {
	// Status is the HTTP status.
	Status int `json:"status"`
	// Body is the response body (null = proxy default).
	Body OptString `json:"body"`
	// Headers are response headers.
	Headers map[string]string `json:"headers"`
}

// redirectJSON is the wire form of a redirect decision.
type redirectJSON struct {
	// URL is the target.
	URL string `json:"url"`
	// Status is the redirect status.
	Status int `json:"status"`
}

// challengeJSON is the wire form of a challenge decision.
type challengeJSON struct {
	// ChallengeType is e.g. "captcha".
	ChallengeType string `json:"challenge_type"`
	// Params are challenge parameters.
	Params map[string]string `json:"params"`
}

// MarshalJSON encodes the externally tagged form.
func (d Decision) MarshalJSON() ([]byte, error) {
	switch d.Kind {
	case Allow:
		return []byte(`"allow"`), nil
	case Block:
		return json.Marshal(map[string]blockJSON{"block": {Status: d.Status, Body: OptString(d.Body), Headers: d.Headers}})
	case Redirect:
		return json.Marshal(map[string]redirectJSON{"redirect": {URL: d.URL, Status: d.Status}})
	case Challenge:
		p := d.Params
		if p == nil {
			p = map[string]string{}
		}
		return json.Marshal(map[string]challengeJSON{"challenge": {ChallengeType: d.ChallengeType, Params: p}})
	}
	return nil, fmt.Errorf("decision: unknown kind %d", d.Kind)
}

// UnmarshalJSON decodes the externally tagged form. Errors name the field.
// The Go-SDK's {"needs_more":true} pseudo-decision decodes as Allow.
func (d *Decision) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*d = Decision{}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("decision: %w", err)
		}
		switch s {
		case "allow":
			return nil
		case "block", "deny":
			d.Kind, d.Status = Block, 403
			return nil
		}
		return fmt.Errorf("decision: unknown decision %q", s)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		if err == nil {
			err = errors.New("null")
		}
		return fmt.Errorf("decision: want a string or an object: %w", err)
	}
	if len(m) != 1 {
		if _, ok := m["needs_more"]; ok {
			return nil
		}
		return fmt.Errorf("decision: want exactly one key, got %d", len(m))
	}
	for k, v := range m {
		switch k {
		case "allow":
			return nil
		case "needs_more":
			return nil
		case "block":
			var bj struct {
				Status  *int              `json:"status"`
				Body    OptString         `json:"body"`
				Headers map[string]string `json:"headers"`
			}
			if err := json.Unmarshal(v, &bj); err != nil {
				return fmt.Errorf("decision.block: %w", err)
			}
			if bj.Status == nil {
				return errors.New("decision.block.status: missing")
			}
			if *bj.Status < 100 || *bj.Status > 999 {
				return fmt.Errorf("decision.block.status: %d out of range", *bj.Status)
			}
			d.Kind, d.Status, d.Body, d.Headers = Block, *bj.Status, string(bj.Body), bj.Headers
		case "redirect":
			var rj struct {
				URL    *string `json:"url"`
				Status *int    `json:"status"`
			}
			if err := json.Unmarshal(v, &rj); err != nil {
				return fmt.Errorf("decision.redirect: %w", err)
			}
			if rj.URL == nil {
				return errors.New("decision.redirect.url: missing")
			}
			if rj.Status == nil {
				return errors.New("decision.redirect.status: missing")
			}
			if *rj.Status < 100 || *rj.Status > 999 {
				return fmt.Errorf("decision.redirect.status: %d out of range", *rj.Status)
			}
			d.Kind, d.URL, d.Status = Redirect, *rj.URL, *rj.Status
		case "challenge":
			var cj struct {
				ChallengeType *string          `json:"challenge_type"`
				Params        map[string]any   `json:"params"`
				Extra         *json.RawMessage `json:"-"`
			}
			if err := json.Unmarshal(v, &cj); err != nil {
				return fmt.Errorf("decision.challenge: %w", err)
			}
			if cj.ChallengeType == nil {
				return errors.New("decision.challenge.challenge_type: missing")
			}
			d.Kind, d.ChallengeType = Challenge, *cj.ChallengeType
			if len(cj.Params) > 0 {
				d.Params = make(map[string]string, len(cj.Params))
				for pk, pv := range cj.Params {
					if s, ok := pv.(string); ok {
						d.Params[pk] = s
					} else {
						raw, _ := json.Marshal(pv)
						d.Params[pk] = string(raw)
					}
				}
			}
		default:
			return fmt.Errorf("decision: unknown decision %q", k)
		}
	}
	return nil
}

// HeaderOpKind is a header operation.
type HeaderOpKind int

// Header operations.
const (
	// HeaderSet replaces the header.
	HeaderSet HeaderOpKind = iota
	// HeaderAdd appends a value.
	HeaderAdd
	// HeaderRemove deletes the header.
	HeaderRemove
)

// String returns "set", "add" or "remove".
func (k HeaderOpKind) String() string {
	switch k {
	case HeaderAdd:
		return "add"
	case HeaderRemove:
		return "remove"
	}
	return "set"
}

// HeaderOp is one header operation: {"set":{name,value}} |
// {"add":{name,value}} | {"remove":{name}} on the wire (the Go-SDK's
// {"operation":"set","name","value"} form is accepted when decoding).
type HeaderOp struct {
	// Op is the operation.
	Op HeaderOpKind
	// Name is the header name.
	Name string
	// Value is the header value (unused for remove).
	Value string
}

// nameValue is the body of a set/add header op.
type nameValue struct {
	// Name is the header name.
	Name string `json:"name"`
	// Value is the header value.
	Value string `json:"value"`
}

// MarshalJSON encodes the Rust form.
func (h HeaderOp) MarshalJSON() ([]byte, error) {
	switch h.Op {
	case HeaderSet:
		return json.Marshal(map[string]nameValue{"set": {h.Name, h.Value}})
	case HeaderAdd:
		return json.Marshal(map[string]nameValue{"add": {h.Name, h.Value}})
	case HeaderRemove:
		return json.Marshal(map[string]map[string]string{"remove": {"name": h.Name}})
	}
	return nil, fmt.Errorf("header op: unknown op %d", h.Op)
}

// UnmarshalJSON decodes both the Rust and the Go-SDK form.
func (h *HeaderOp) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		if err == nil {
			err = errors.New("null")
		}
		return fmt.Errorf("header op: want an object: %w", err)
	}
	if opRaw, ok := m["operation"]; ok { // Go-SDK form
		var op, name string
		var value *string
		if err := json.Unmarshal(opRaw, &op); err != nil {
			return fmt.Errorf("header op.operation: %w", err)
		}
		if err := json.Unmarshal(m["name"], &name); err != nil {
			return fmt.Errorf("header op.name: %w", err)
		}
		if v, ok := m["value"]; ok {
			if err := json.Unmarshal(v, &value); err != nil {
				return fmt.Errorf("header op.value: %w", err)
			}
		}
		*h = HeaderOp{Name: name}
		if value != nil {
			h.Value = *value
		}
		switch op {
		case "set":
			h.Op = HeaderSet
		case "add":
			h.Op = HeaderAdd
		case "remove":
			h.Op = HeaderRemove
		default:
			return fmt.Errorf("header op.operation: unknown %q", op)
		}
		return nil
	}
	if len(m) != 1 {
		return fmt.Errorf("header op: want exactly one key, got %d", len(m))
	}
	for k, v := range m {
		var nv struct {
			Name  *string `json:"name"`
			Value *string `json:"value"`
		}
		if err := json.Unmarshal(v, &nv); err != nil {
			return fmt.Errorf("header op.%s: %w", k, err)
		}
		if nv.Name == nil {
			return fmt.Errorf("header op.%s.name: missing", k)
		}
		*h = HeaderOp{Name: *nv.Name}
		switch k {
		case "set", "add":
			if nv.Value == nil {
				return fmt.Errorf("header op.%s.value: missing", k)
			}
			h.Value = *nv.Value
			h.Op = HeaderSet
			if k == "add" {
				h.Op = HeaderAdd
			}
		case "remove":
			h.Op = HeaderRemove
		default:
			return fmt.Errorf("header op: unknown op %q", k)
		}
	}
	return nil
}

// BodyMutation replaces, drops or passes one body chunk. Data nil = pass
// the chunk unchanged (JSON null), Data empty non-nil = drop the chunk
// (JSON ""), otherwise replace it (JSON base64).
type BodyMutation struct {
	// Data is the replacement (see the type doc for nil vs empty).
	Data []byte `json:"data"`
	// ChunkIndex is the chunk this applies to.
	ChunkIndex uint32 `json:"chunk_index"`
}

// Audit is the audit metadata of a response. Custom carries
// "correlation_id" on the Rust UDS wire (filled by the agent server).
type Audit struct {
	// Tags are audit tags.
	Tags []string `json:"tags"`
	// RuleIDs are matched rule ids.
	RuleIDs []string `json:"rule_ids"`
	// Confidence is a confidence score, null when none.
	Confidence *float32 `json:"confidence"`
	// ReasonCodes are reason codes.
	ReasonCodes []string `json:"reason_codes"`
	// Custom is free-form JSON.
	Custom map[string]any `json:"custom"`
}

// WebSocketDecisionKind is the kind of a WebSocket decision.
type WebSocketDecisionKind int

// WebSocket decision kinds.
const (
	// WSAllow forwards the frame.
	WSAllow WebSocketDecisionKind = iota
	// WSDrop drops the frame.
	WSDrop
	// WSClose closes the connection with Code and Reason.
	WSClose
)

// WebSocketDecision is "allow" | "drop" | {"close":{code,reason}}.
type WebSocketDecision struct {
	// Kind is the decision.
	Kind WebSocketDecisionKind
	// Code is the close code.
	Code uint16
	// Reason is the close reason.
	Reason string
}

// MarshalJSON encodes the tagged form.
func (w WebSocketDecision) MarshalJSON() ([]byte, error) {
	switch w.Kind {
	case WSDrop:
		return []byte(`"drop"`), nil
	case WSClose:
		return json.Marshal(map[string]any{"close": map[string]any{"code": w.Code, "reason": w.Reason}})
	}
	return []byte(`"allow"`), nil
}

// UnmarshalJSON decodes the tagged form.
func (w *WebSocketDecision) UnmarshalJSON(b []byte) error {
	*w = WebSocketDecision{}
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "allow":
			return nil
		case "drop":
			w.Kind = WSDrop
			return nil
		}
		return fmt.Errorf("websocket_decision: unknown %q", s)
	}
	var m struct {
		Close *struct {
			Code   uint16 `json:"code"`
			Reason string `json:"reason"`
		} `json:"close"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("websocket_decision: %w", err)
	}
	if m.Close == nil {
		return errors.New("websocket_decision: want \"allow\", \"drop\" or {\"close\":…}")
	}
	w.Kind, w.Code, w.Reason = WSClose, m.Close.Code, m.Close.Reason
	return nil
}

// Response is an agent's answer to one event (0x20 AgentResponse).
type Response struct {
	// Version is the protocol version (2 when encoding).
	Version uint32 `json:"version"`
	// Decision is the decision.
	Decision Decision `json:"decision"`
	// RequestHeaders are applied to the upstream request.
	RequestHeaders []HeaderOp `json:"request_headers"`
	// ResponseHeaders are applied to the response to the client.
	ResponseHeaders []HeaderOp `json:"response_headers"`
	// RoutingMetadata is free-form ("guardrail_response" is special).
	RoutingMetadata map[string]string `json:"routing_metadata"`
	// Audit is audit metadata (carries the correlation id on UDS).
	Audit Audit `json:"audit"`
	// NeedsMore asks for more body before deciding.
	NeedsMore bool `json:"needs_more"`
	// RequestBodyMutation changes the request body chunk.
	RequestBodyMutation *BodyMutation `json:"request_body_mutation"`
	// ResponseBodyMutation changes the response body chunk.
	ResponseBodyMutation *BodyMutation `json:"response_body_mutation"`
	// WebSocketDecision applies to a WebSocketFrame event.
	WebSocketDecision *WebSocketDecision `json:"websocket_decision"`
	// ProcessingTimeMs is the agent's processing time (gRPC only; not on the UDS wire).
	ProcessingTimeMs *uint64 `json:"-"`
}

// AllowResponse returns an allow response.
func AllowResponse() *Response { return &Response{Version: ProtocolVersion} }

// BlockResponse returns a block response with status and body.
func BlockResponse(status int, body string) *Response {
	return &Response{Version: ProtocolVersion, Decision: Decision{Kind: Block, Status: status, Body: body}}
}

// CorrelationID returns audit.custom.correlation_id, or "".
func (r *Response) CorrelationID() string {
	if r == nil || r.Audit.Custom == nil {
		return ""
	}
	s, _ := r.Audit.Custom["correlation_id"].(string)
	return s
}

// SetCorrelationID stores id in audit.custom.correlation_id.
func (r *Response) SetCorrelationID(id string) {
	if r.Audit.Custom == nil {
		r.Audit.Custom = map[string]any{}
	}
	r.Audit.Custom["correlation_id"] = id
}

// MarshalJSON encodes with version 2 when Version is 0 and with empty
// arrays/objects instead of null, as the Rust serializer does.
func (r Response) MarshalJSON() ([]byte, error) {
	type plain Response
	p := plain(r)
	if p.Version == 0 {
		p.Version = ProtocolVersion
	}
	if p.RequestHeaders == nil {
		p.RequestHeaders = []HeaderOp{}
	}
	if p.ResponseHeaders == nil {
		p.ResponseHeaders = []HeaderOp{}
	}
	if p.RoutingMetadata == nil {
		p.RoutingMetadata = map[string]string{}
	}
	if p.Audit.Tags == nil {
		p.Audit.Tags = []string{}
	}
	if p.Audit.RuleIDs == nil {
		p.Audit.RuleIDs = []string{}
	}
	if p.Audit.ReasonCodes == nil {
		p.Audit.ReasonCodes = []string{}
	}
	if p.Audit.Custom == nil {
		p.Audit.Custom = map[string]any{}
	}
	return json.Marshal(p)
}

// ErrBadResponse wraps every DecodeResponse error.
var ErrBadResponse = errors.New("invalid agent response")

// DecodeResponse decodes a Rust-dialect AgentResponse JSON payload.
// `version` and `decision` are required; errors name the offending field.
// It never panics.
func DecodeResponse(b []byte) (*Response, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: not an object", ErrBadResponse)
	}
	if _, ok := m["version"]; !ok {
		return nil, fmt.Errorf("%w: field \"version\" missing", ErrBadResponse)
	}
	if _, ok := m["decision"]; !ok {
		return nil, fmt.Errorf("%w: field \"decision\" missing", ErrBadResponse)
	}
	r := &Response{}
	for k, v := range m {
		var err error
		switch k {
		case "version":
			err = json.Unmarshal(v, &r.Version)
		case "decision":
			err = json.Unmarshal(v, &r.Decision)
		case "request_headers":
			err = json.Unmarshal(v, &r.RequestHeaders)
		case "response_headers":
			err = json.Unmarshal(v, &r.ResponseHeaders)
		case "routing_metadata":
			err = json.Unmarshal(v, &r.RoutingMetadata)
		case "audit":
			err = json.Unmarshal(v, &r.Audit)
		case "needs_more":
			err = json.Unmarshal(v, &r.NeedsMore)
		case "request_body_mutation":
			err = json.Unmarshal(v, &r.RequestBodyMutation)
		case "response_body_mutation":
			err = json.Unmarshal(v, &r.ResponseBodyMutation)
		case "websocket_decision":
			err = json.Unmarshal(v, &r.WebSocketDecision)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %v", ErrBadResponse, k, err)
		}
	}
	return r, nil
}
