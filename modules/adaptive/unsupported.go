package adaptive

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(LeastTokensQueued{})
}

// errLeastTokensQueued is the answer to a config that uses
// least_tokens_queued.
var errLeastTokensQueued = errors.New("least_tokens_queued needs the inference gateway (not supported)")

// LeastTokensQueued is the original's balancer for inference upstreams
// (queued tokens ÷ measured tokens per second). It needs the inference
// gateway, which Sentinel does not have: a config that uses it fails to
// load with "least_tokens_queued needs the inference gateway (not
// supported)".
type LeastTokensQueued struct{}

// CaddyModule returns the Caddy module information.
func (LeastTokensQueued) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.least_tokens_queued",
		New: func() caddy.Module { return new(LeastTokensQueued) },
	}
}

// Provision refuses the policy.
func (LeastTokensQueued) Provision(caddy.Context) error { return errLeastTokensQueued }

// Select selects nothing (the policy never provisions).
func (LeastTokensQueued) Select(reverseproxy.UpstreamPool, *http.Request, http.ResponseWriter) *reverseproxy.Upstream {
	return nil
}

// UnmarshalCaddyfile accepts `lb_policy least_tokens_queued`; the config
// then fails to load.
func (*LeastTokensQueued) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*LeastTokensQueued)(nil)
	_ reverseproxy.Selector = (*LeastTokensQueued)(nil)
	_ caddyfile.Unmarshaler = (*LeastTokensQueued)(nil)
)
