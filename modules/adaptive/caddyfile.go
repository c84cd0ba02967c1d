package adaptive

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parsePolicy reads the common shape of this package's policies:
//
//	lb_policy <name> [<upstream>] {
//	    upstream <id>
//	    <option> <value>
//	}
//
// opts maps each option to the parser of its single argument.
func parsePolicy(d *caddyfile.Dispenser, upstream *string, opts map[string]func(*caddyfile.Dispenser) error) error {
	d.Next() // policy name
	if d.NextArg() {
		*upstream = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		opt := d.Val()
		parse, ok := opts[opt]
		if opt == "upstream" {
			parse, ok = stringArg(upstream), true
		}
		if !ok {
			return d.Errf("unrecognized option '%s'", opt)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		if err := parse(d); err != nil {
			return err
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

func stringArg(p *string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		*p = d.Val()
		return nil
	}
}

func stringsArg(p *[]string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		*p = append(*p, d.Val())
		*p = append(*p, d.RemainingArgs()...)
		return nil
	}
}

func durationArg(p *caddy.Duration) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		v, err := caddy.ParseDuration(d.Val())
		if err != nil {
			return d.Errf("invalid duration %q: %v", d.Val(), err)
		}
		*p = caddy.Duration(v)
		return nil
	}
}

func intArg(p *int) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		v, err := strconv.Atoi(d.Val())
		if err != nil {
			return d.Errf("invalid integer %q", d.Val())
		}
		*p = v
		return nil
	}
}

func floatArg(p *float64) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		v, err := strconv.ParseFloat(d.Val(), 64)
		if err != nil {
			return d.Errf("invalid number %q", d.Val())
		}
		*p = v
		return nil
	}
}

func boolArg(p *bool) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		switch d.Val() {
		case "on", "true", "yes":
			*p = true
		case "off", "false", "no":
			*p = false
		default:
			return d.Errf("expected on or off, got %q", d.Val())
		}
		return nil
	}
}

func boolPtrArg(p **bool) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		var b bool
		if err := boolArg(&b)(d); err != nil {
			return err
		}
		*p = &b
		return nil
	}
}
