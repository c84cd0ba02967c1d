package geo

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Handler)
	if err := g.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return g, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_geo [<matcher>] {
//	    database        <path>
//	    action          block|allow|log_only
//	    countries       <CC> [<CC>...]
//	    on_failure      open|closed
//	    status_code     <4xx|5xx>
//	    message         <text>
//	    country_header  true|false
//	    name            <name>
//	    reload_interval <duration>
//	}
//
// `countries` may be repeated; its values add up. (The database is not
// an argument of the directive: a path there would be read as a path
// matcher.)
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name == "countries" {
			codes := d.RemainingArgs()
			if len(codes) == 0 {
				return d.ArgErr()
			}
			for _, c := range codes {
				if _, ok := NormalizeCountry(c); !ok {
					return d.Errf("countries: %q is not an ISO 3166-1 alpha-2 country code", c)
				}
			}
			h.Countries = append(h.Countries, codes...)
			continue
		}
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch name {
		case "database":
			h.Database = val
		case "action":
			h.Action = val
		case "on_failure":
			h.OnFailure = val
		case "status_code":
			code, err := strconv.Atoi(val)
			if err != nil {
				return d.Errf("status_code %q: not a number", val)
			}
			h.StatusCode = code
		case "message":
			h.Message = val
		case "country_header":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return d.Errf("country_header %q: expected true or false", val)
			}
			h.CountryHeader = &b
		case "name":
			h.Name = val
		case "reload_interval":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("reload_interval %q: %v", val, err)
			}
			h.ReloadInterval = caddy.Duration(dur)
		default:
			return d.Errf("unknown sentinel_geo setting %q", name)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
