package wasm

import (
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/registry"
)

// auditDecision records a plugin's block (kind wasm_block, action
// `block`) or redirect (action `redirect`) in the audit trail.
func (p *Plugin) auditDecision(r *http.Request, redirect bool, status int) {
	action := "block"
	if redirect {
		action = "redirect"
	}
	if !p.audit.Wants(audit.KindWASMBlock, !redirect) {
		return
	}
	client, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if client == "" {
		client, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	_ = p.audit.Emit(audit.Event{
		Kind:      audit.KindWASMBlock,
		Action:    action,
		Actor:     p.ID,
		Route:     p.route,
		Namespace: registry.NamespaceOf(p.route),
		Client:    client,
		Method:    r.Method,
		Host:      r.Host,
		Path:      r.URL.Path,
		Status:    status,
	})
}
