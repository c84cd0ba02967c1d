package timeout

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	t := new(Timeout)
	if err := t.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return t, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_timeout [<matcher>] <duration>
func (t *Timeout) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	var value string
	if !d.AllArgs(&value) {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Err("sentinel_timeout does not take a block")
	}
	dur, err := caddy.ParseDuration(value)
	if err != nil {
		return d.Errf("parsing timeout %q: %v", value, err)
	}
	t.Timeout = caddy.Duration(dur)
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Timeout)(nil)
)
