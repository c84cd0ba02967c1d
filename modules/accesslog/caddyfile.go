package accesslog

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the encoder from Caddyfile tokens, as the
// `format` of a `log` directive. Syntax:
//
//	format sentinel_access [json|combined] {
//	    style       json|combined
//	    instance_id <id>
//	}
//
// The style may be given inline or with the `style` subdirective; the
// default is `json`. The instance id defaults to the host name.
func (e *Encoder) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume encoder name
	if d.NextArg() {
		e.Style = d.Val()
		if err := validStyle(e.Style); err != nil {
			return d.Err(err.Error())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		subdir := d.Val()
		var arg string
		if !d.AllArgs(&arg) {
			return d.ArgErr()
		}
		switch subdir {
		case "style":
			if err := validStyle(arg); err != nil {
				return d.Err(err.Error())
			}
			e.Style = arg
		case "instance_id":
			e.InstanceID = arg
		default:
			return d.Errf("unrecognized sentinel_access subdirective '%s'", subdir)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Encoder)(nil)
)
