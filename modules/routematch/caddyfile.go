package routematch

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the matcher from Caddyfile tokens. Syntax:
//
//	sentinel {
//	    path        <paths...>
//	    path_prefix <prefixes...>
//	    path_regex  <regexps...>
//	    host        <hosts...>
//	    header      <field> [<value>]
//	    method      <methods...>
//	    query       <param> [<value>]
//	}
//
// Every subdirective may be repeated; repeated list subdirectives append to
// the list, and each header or query line adds one condition. A
// `sentinel` matcher without a block matches every request.
func (m *MatchRoute) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	// iterate to merge multiple matchers into one
	for d.Next() {
		if d.NextArg() {
			return d.ArgErr()
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if err := m.unmarshalSubdirective(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// unmarshalSubdirective parses the subdirective at the dispenser's cursor.
func (m *MatchRoute) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	name := d.Val()
	args := d.RemainingArgs()
	switch name {
	case "path", "path_prefix", "path_regex", "host", "method":
		if len(args) == 0 {
			return d.ArgErr()
		}
		list := map[string]*[]string{
			"path":        &m.Path,
			"path_prefix": &m.PathPrefix,
			"path_regex":  &m.PathRegex,
			"host":        &m.Host,
			"method":      &m.Method,
		}[name]
		*list = append(*list, args...)
	case "header":
		if len(args) < 1 || len(args) > 2 {
			return d.ArgErr()
		}
		h := HeaderMatch{Name: args[0]}
		if len(args) == 2 {
			h.Value = &args[1]
		}
		m.Header = append(m.Header, h)
	case "query":
		if len(args) < 1 || len(args) > 2 {
			return d.ArgErr()
		}
		q := QueryMatch{Name: args[0]}
		if len(args) == 2 {
			q.Value = &args[1]
		}
		m.Query = append(m.Query, q)
	default:
		return d.Errf("unrecognized sentinel matcher subdirective '%s'", name)
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*MatchRoute)(nil)
)
