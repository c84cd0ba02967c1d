package audit

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// SchemaVersion is the version of the event schema (docs/audit.md). It
// changes when a field is renamed or removed, or its meaning changes;
// adding a field keeps it.
const SchemaVersion = 1

// The event kinds.
const (
	// KindAgentDecision is an agent's block, redirect or challenge.
	KindAgentDecision = "agent_decision"
	// KindWAF is a WAF event reported by an agent (a decision whose
	// agent reported rule ids or WAF tags).
	KindWAF = "waf"
	// KindWASMBlock is a WASM plugin's block.
	KindWASMBlock = "wasm_block"
	// KindRateLimit is a request rejected by a rate limit.
	KindRateLimit = "rate_limit"
	// KindControlPlane is a control-plane mutation, or a refused call.
	KindControlPlane = "control_plane"
	// KindConfigLoad is a config loaded (at start or by a reload).
	KindConfigLoad = "config_load"
	// KindConfigReloadFailed is a reload that failed (the running
	// config stays).
	KindConfigReloadFailed = "config_reload_failed"
)

// Event is one audit event, written as one JSON line (NDJSON) to every
// sink. Fields not set are omitted. The JSON names are stable within a
// SchemaVersion.
type Event struct {
	// SchemaVersion is SchemaVersion (set by Emit).
	SchemaVersion int `json:"schema_version"`
	// ID is the event's unique id, a UUIDv7 (time-ordered; set by Emit).
	// Delivery is at-least-once: a consumer de-duplicates by ID.
	ID string `json:"id"`
	// Time is when the event happened (set by Emit when zero), UTC.
	Time time.Time `json:"time"`
	// Kind is one of the Kind* constants.
	Kind string `json:"kind"`
	// Action is what was done: `block`, `redirect`, `challenge` (agent
	// decisions and WAF events), `reject` (rate limits, WASM blocks),
	// `change` or `refused` (control plane), `load` or `reload_failed`.
	Action string `json:"action,omitempty"`
	// Actor is who decided or acted: the agent id, the WASM plugin, the
	// rate-limit zone, the control-plane token's name.
	Actor string `json:"actor,omitempty"`
	// Namespace is the namespace of the route or object concerned.
	Namespace string `json:"namespace,omitempty"`
	// TokenNamespace is the namespace of the control-plane token.
	TokenNamespace string `json:"token_namespace,omitempty"`
	// Route is the route id.
	Route string `json:"route,omitempty"`
	// Client is the client's address (IP, as the proxy sees it).
	Client string `json:"client,omitempty"`
	// Method, Host and Path are the request's.
	Method string `json:"method,omitempty"`
	Host   string `json:"host,omitempty"`
	Path   string `json:"path,omitempty"`
	// Status is the status answered.
	Status int `json:"status,omitempty"`
	// RuleIDs are the rule ids an agent reported.
	RuleIDs []string `json:"rule_ids,omitempty"`
	// Tags are the tags an agent reported.
	Tags []string `json:"tags,omitempty"`
	// Reason is a short explanation (an error text, a block reason).
	Reason string `json:"reason,omitempty"`
	// RequestID is the request's id (the access log's `trace_id`).
	RequestID string `json:"request_id,omitempty"`
	// Details are kind-specific fields (e.g. a control-plane object's
	// before/after state, a config's source).
	Details map[string]any `json:"details,omitempty"`
}

// newID returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the
// version and variant bits, and 74 random bits.
func newID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	_, _ = rand.Read(b[6:])
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
