package agents

import (
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	sreg "github.com/sentinel-proxy/sentinel/registry"
)

// auditDecision records a block, redirect or challenge in the audit
// trail: kind `waf` when the agent reported rule ids or tags
// (a WAF event), else `agent_decision`. Nothing when audit is off.
func (h *Handler) auditDecision(r *http.Request, agent string, d protocol.Decision, au *protocol.Audit) {
	if h.audit == nil {
		return
	}
	kind := audit.KindAgentDecision
	if au != nil && (len(au.RuleIDs) > 0 || len(au.Tags) > 0) {
		kind = audit.KindWAF
	}
	action := d.Kind.String()
	if !h.audit.Wants(kind, d.Kind == protocol.Block) {
		return
	}
	e := audit.Event{
		Kind:      kind,
		Action:    action,
		Actor:     agent,
		Route:     h.Route,
		Namespace: sreg.NamespaceOf(h.Route),
		Client:    clientAddr(r),
		Method:    r.Method,
		Host:      r.Host,
		Path:      r.URL.Path,
		Status:    d.Status,
	}
	// The request's id as the access log writes it (its trace_id): the
	// placeholder makes the id once per request and caches it (Caddy's
	// "uuid" variable holds it in an unexported type, not a string).
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if id, ok := repl.GetString("http.request.uuid"); ok {
			e.RequestID = id
		}
	}
	if au != nil {
		e.RuleIDs, e.Tags = au.RuleIDs, au.Tags
		if len(au.ReasonCodes) > 0 || au.Confidence != nil {
			e.Details = map[string]any{}
			if len(au.ReasonCodes) > 0 {
				e.Details["reason_codes"] = au.ReasonCodes
			}
			if au.Confidence != nil {
				e.Details["confidence"] = *au.Confidence
			}
		}
	}
	switch d.Kind {
	case protocol.Block:
		if e.Status == 0 {
			e.Status = http.StatusForbidden
		}
	case protocol.Redirect:
		e.Details = withDetail(e.Details, "location", d.URL)
	case protocol.Challenge:
		e.Details = withDetail(e.Details, "challenge", d.ChallengeType)
	}
	_ = h.audit.Emit(e)
}

func withDetail(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m
}

// clientAddr is the client's IP as the proxy sees it (Caddy's client
// IP, trusted proxies applied), else the peer's address.
func clientAddr(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
