package headerrename

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rn := new(Rename)
	if err := rn.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return rn, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	header_rename [<matcher>] {
//	    request  <old> <new>
//	    response <old> <new>
//	}
//
// Each line renames one field; both subdirectives may be repeated.
func (h *Rename) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		side := d.Val()
		var from, to string
		if !d.AllArgs(&from, &to) {
			return d.ArgErr()
		}
		var m *map[string]string
		switch side {
		case "request":
			m = &h.Request
		case "response":
			m = &h.Response
		default:
			return d.Errf("unrecognized header_rename subdirective '%s'", side)
		}
		if *m == nil {
			*m = make(map[string]string)
		}
		if _, dup := (*m)[from]; dup {
			return d.Errf("%s header field '%s' renamed twice", side, from)
		}
		(*m)[from] = to
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Rename)(nil)
)
