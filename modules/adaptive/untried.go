package adaptive

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(Untried))
}

// Untried makes a selection policy that knows nothing of retries (Caddy's
// round_robin, least_conn, random, client_ip_hash, cookie, …) send a retry
// to another target: on a retry, the inner policy chooses among the
// targets the request was not already sent to (the sentinel transport
// records them); when none of those is available, among all of them.
//
// Caddy's proxy only leaves out the targets its passive health checks
// count as failed, and only when they are configured: without this, a
// retry goes wherever the inner policy points next — for a hash policy
// or a heavily weighted dead target, the target that just failed.
//
// The policies of this package skip the tried targets themselves: they
// need no wrapper.
type Untried struct {
	// Inner is the selection policy (default: random, as Caddy's).
	InnerRaw json.RawMessage `json:"inner,omitempty" caddy:"namespace=http.reverse_proxy.selection_policies inline_key=policy"`

	inner reverseproxy.Selector
}

// CaddyModule returns the Caddy module information.
func (*Untried) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.sentinel_untried",
		New: func() caddy.Module { return new(Untried) },
	}
}

// Provision loads the inner policy.
func (s *Untried) Provision(ctx caddy.Context) error {
	if s.InnerRaw == nil {
		s.InnerRaw = caddyconfig.JSONModuleObject(reverseproxy.RandomSelection{}, "policy", "random", nil)
	}
	mod, err := ctx.LoadModule(s, "InnerRaw")
	if err != nil {
		return fmt.Errorf("sentinel_untried: loading the inner selection policy: %w", err)
	}
	s.inner = mod.(reverseproxy.Selector)
	return nil
}

// Select lets the inner policy choose, among the targets not yet tried by
// the request when it is a retry.
func (s *Untried) Select(pool reverseproxy.UpstreamPool, r *http.Request, w http.ResponseWriter) *reverseproxy.Upstream {
	ex := triedOf(r)
	if ex == nil {
		return s.inner.Select(pool, r, w)
	}
	rest := make(reverseproxy.UpstreamPool, 0, len(pool))
	for _, u := range pool {
		if !ex.has(u.Dial) {
			rest = append(rest, u)
		}
	}
	if len(rest) > 0 {
		if u := s.inner.Select(rest, r, w); u != nil {
			return u
		}
	}
	return s.inner.Select(pool, r, w)
}

// UnmarshalCaddyfile reads `lb_policy sentinel_untried <policy> [<args…>]
// [{ <policy's settings> }]`.
func (s *Untried) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if name == "sentinel_untried" {
		return d.Err("sentinel_untried cannot wrap itself")
	}
	raw, err := policyFromCaddyfile(d, nil)
	if err != nil {
		return err
	}
	s.InnerRaw = raw
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Untried)(nil)
	_ reverseproxy.Selector = (*Untried)(nil)
	_ caddyfile.Unmarshaler = (*Untried)(nil)
)
