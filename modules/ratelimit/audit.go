package ratelimit

import (
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
)

// auditReject records a rejected request in the audit trail: the zone
// (actor), the request's namespace (the tenant modules/tenant
// identified), the client and the request. The bucket key is not recorded
// (it may be an API key's value).
func (h *Handler) auditReject(r *http.Request, _ key) {
	if !h.audit.Wants(audit.KindRateLimit, true) {
		return
	}
	client, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if client == "" {
		client, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	_ = h.audit.Emit(audit.Event{
		Kind:      audit.KindRateLimit,
		Action:    "reject",
		Actor:     h.Zone,
		Namespace: tenant.Namespace(r.Context()),
		Client:    client,
		Method:    r.Method,
		Host:      r.Host,
		Path:      r.URL.Path,
		Status:    h.StatusCode,
	})
}
