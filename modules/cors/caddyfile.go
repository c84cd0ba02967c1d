package cors

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(CORS)
	if err := c.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return c, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_cors [<matcher>] [<origins...>] {
//	    allowed_origins   <origins...>
//	    allowed_methods   <methods...>
//	    allowed_headers   <headers...>
//	    exposed_headers   <headers...>
//	    allow_credentials [true|false]
//	    max_age           <duration>
//	}
//
// Origins may be given inline, in the block, or both. List subdirectives
// may be repeated to extend their list. Note that an inline `*` (or any
// first argument starting with `/` or `@`) is taken as the directive's
// matcher: allow any origin with `allowed_origins *` in the block.
func (c *CORS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	c.AllowedOrigins = append(c.AllowedOrigins, d.RemainingArgs()...)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		args := d.RemainingArgs()
		switch name {
		case "allowed_origins", "allowed_methods", "allowed_headers", "exposed_headers":
			if len(args) == 0 {
				return d.ArgErr()
			}
			list := map[string]*[]string{
				"allowed_origins": &c.AllowedOrigins,
				"allowed_methods": &c.AllowedMethods,
				"allowed_headers": &c.AllowedHeaders,
				"exposed_headers": &c.ExposedHeaders,
			}[name]
			*list = append(*list, args...)
		case "allow_credentials":
			switch len(args) {
			case 0:
				c.AllowCredentials = true
			case 1:
				v, err := strconv.ParseBool(args[0])
				if err != nil {
					return d.Errf("allow_credentials: %v", err)
				}
				c.AllowCredentials = v
			default:
				return d.ArgErr()
			}
		case "max_age":
			if len(args) != 1 {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil {
				return d.Errf("max_age: %v", err)
			}
			maxAge := caddy.Duration(dur)
			c.MaxAge = &maxAge
		default:
			return d.Errf("unrecognized sentinel_cors subdirective '%s'", name)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*CORS)(nil)
)
