package builtin

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	b := new(Builtin)
	if err := b.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return b, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_builtin [<matcher>] [<kind> [<route>]] {
//	    kind  <kind>
//	    route <route>
//	}
//
// The kind is one of `status`, `health` and `not_found`; it may be given
// inline or in the block, but not both.
func (b *Builtin) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
	case 1:
		b.Kind = args[0]
	case 2:
		b.Kind, b.Route = args[0], args[1]
	default:
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "kind":
			if b.Kind != "" {
				return d.Err("kind already specified")
			}
			if !d.AllArgs(&b.Kind) {
				return d.ArgErr()
			}
		case "route":
			if b.Route != "" {
				return d.Err("route already specified")
			}
			if !d.AllArgs(&b.Route) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized sentinel_builtin subdirective '%s'", d.Val())
		}
	}
	if b.Kind == "" {
		return d.Err("missing kind")
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Builtin)(nil)
)
