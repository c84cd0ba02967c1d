package adaptive

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// forwardedIdentity makes the identity headers the backend receives
// trustworthy. Caddy's proxy rewrites X-Forwarded-For, -Proto and -Host
// unless the peer is a trusted proxy (the server's trusted_proxies), but
// passes X-Real-IP and Forwarded as they come, so that any client could
// claim any address. From a peer that is not a trusted proxy, Forwarded
// is removed and X-Real-IP is set to the peer's address (whatever the
// client or the configuration put there: only the connection is known).
// From a trusted proxy both pass; X-Real-IP, when absent, is set to the
// client address Caddy read from the client IP headers.
//
// The X-Real-IP value lives in a, the request's attempts, when given: no
// allocation per request.
func forwardedIdentity(req *http.Request, a *attempts) {
	ctx := req.Context()
	trusted, _ := caddyhttp.GetVar(ctx, caddyhttp.TrustedProxyVarKey).(bool)
	clientIP, _ := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string)
	if trusted {
		if len(req.Header.Values("X-Real-Ip")) == 0 && clientIP != "" {
			setRealIP(req.Header, clientIP, a)
		}
		return
	}
	req.Header.Del("Forwarded")
	if clientIP != "" {
		setRealIP(req.Header, clientIP, a)
	} else {
		req.Header.Del("X-Real-Ip")
	}
}

// setRealIP sets the X-Real-IP header to ip, with the value slice held by
// a when there is one.
func setRealIP(h http.Header, ip string, a *attempts) {
	if a == nil {
		h.Set("X-Real-Ip", ip)
		return
	}
	a.realIP[0] = ip
	h["X-Real-Ip"] = a.realIP[:1:1]
}
