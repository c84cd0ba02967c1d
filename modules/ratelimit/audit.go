package ratelimit

import (
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/routeguard"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
)

// routeOf is the id of the route whose sentinel_route guard the handler
// is provisioned in (the KDL adapter folds a route's handlers, its rate
// limits included, into the guard), from the modules the handler is
// provisioned under; "" when no guard holds it (a Caddyfile or JSON
// route without one). Known at provisioning, it costs nothing per
// request.
func routeOf(ctx caddy.Context) string {
	mods := ctx.Modules()
	for i := len(mods) - 1; i >= 0; i-- {
		if g, ok := mods[i].(*routeguard.Guard); ok {
			return g.Route
		}
	}
	return ""
}

// auditReject records a rejected request in the audit trail: the zone
// (actor), the route (when a sentinel_route guard holds the handler), the
// request's namespace (the tenant modules/tenant identified), the client
// and the request. The bucket key is not recorded
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
		Route:     h.route,
		Client:    client,
		Method:    r.Method,
		Host:      r.Host,
		Path:      r.URL.Path,
		Status:    h.StatusCode,
	})
}
