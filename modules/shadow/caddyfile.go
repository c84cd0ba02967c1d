package shadow

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sentinel_shadow", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_shadow", httpcaddyfile.Before, "reverse_proxy")
}

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Handler)
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return s, err
}

// UnmarshalCaddyfile reads:
//
//	sentinel_shadow <upstream> {
//		route          <id>
//		percentage     <0-100>
//		sample_header  <name> <value>
//		timeout        <duration>
//		buffer_body
//		max_body_bytes <bytes>
//		max_in_flight  <n>
//	}
//
// The copies go to the registry's upstream through a reverse proxy with
// the `sentinel` upstream source and transport.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Upstream = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "route":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Route = d.Val()
		case "percentage":
			if !d.NextArg() {
				return d.ArgErr()
			}
			p, err := strconv.ParseFloat(d.Val(), 64)
			if err != nil {
				return d.Errf("percentage %q is not a number", d.Val())
			}
			h.Percentage = &p
		case "sample_header":
			var name, value string
			if !d.Args(&name, &value) {
				return d.ArgErr()
			}
			h.SampleHeader = &SampleHeader{Name: name, Value: value}
		case "timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			t, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("timeout %q: %v", d.Val(), err)
			}
			h.Timeout = caddy.Duration(t)
		case "buffer_body":
			h.BufferBody = true
		case "max_body_bytes":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.ParseInt(d.Val(), 10, 64)
			if err != nil {
				return d.Errf("max_body_bytes %q is not an integer", d.Val())
			}
			h.MaxBodyBytes = n
		case "max_in_flight":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil {
				return d.Errf("max_in_flight %q is not an integer", d.Val())
			}
			h.MaxInFlight = n
		default:
			return d.Errf("unknown sentinel_shadow setting %q", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
