package cache

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sentinel_cache", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		c := new(Handler)
		return c, c.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("sentinel_cache", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterHandlerDirective("sentinel_cache_admin", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		a := new(Admin)
		return a, a.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("sentinel_cache_admin", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_cache [<matcher>] {
//	    storage                <name> { backend memory|disk|hybrid; max_size <bytes>; disk_path <dir>; disk_shards <n>; disk_max_size <bytes> }
//	    default_ttl            <duration>
//	    max_entry_bytes        <bytes>
//	    cache_private
//	    stale_while_revalidate <duration>
//	    stale_if_error         <duration>
//	    methods                <method...>
//	    statuses               <code...>
//	    vary_headers           <name...>
//	    ignore_query_params    <name...>
//	    exclude_extensions     <ext...>
//	    exclude_paths          <path...>
//	    status_header          <identifier>
//	    lock_timeout           <duration>
//	    revalidate_timeout     <duration>
//	    route                  <id>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "storage":
			err = unmarshalStorage(d, &h.Storage)
		case "default_ttl":
			err = durationArg(d, &h.DefaultTTL)
		case "max_entry_bytes":
			err = int64Arg(d, &h.MaxEntryBytes)
		case "cache_private":
			h.CachePrivate = true
		case "stale_while_revalidate":
			err = durationArg(d, &h.StaleWhileRevalidate)
		case "stale_if_error":
			err = durationArg(d, &h.StaleIfError)
		case "methods":
			h.Methods = append(h.Methods, d.RemainingArgs()...)
		case "statuses":
			for _, a := range d.RemainingArgs() {
				n, perr := strconv.Atoi(a)
				if perr != nil {
					return d.Errf("statuses: %q is not a status code", a)
				}
				h.Statuses = append(h.Statuses, n)
			}
		case "vary_headers":
			h.VaryHeaders = append(h.VaryHeaders, d.RemainingArgs()...)
		case "ignore_query_params":
			h.IgnoreQueryParams = append(h.IgnoreQueryParams, d.RemainingArgs()...)
		case "exclude_extensions":
			h.ExcludeExtensions = append(h.ExcludeExtensions, d.RemainingArgs()...)
		case "exclude_paths":
			h.ExcludePaths = append(h.ExcludePaths, d.RemainingArgs()...)
		case "status_header":
			err = stringArg(d, &h.StatusHeader)
		case "lock_timeout":
			err = durationArg(d, &h.LockTimeout)
		case "revalidate_timeout":
			err = durationArg(d, &h.RevalidateTimeout)
		case "route":
			err = stringArg(d, &h.Route)
		default:
			return d.Errf("unrecognized sentinel_cache subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_cache_admin [<matcher>] purge|stats {
//	    storage      <name> { … as in sentinel_cache }
//	    token_sha256 <hex>
//	    route        <id>
//	}
func (a *Admin) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.AllArgs(&a.Action) {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "storage":
			err = unmarshalStorage(d, &a.Storage)
		case "token_sha256":
			var t Token
			err = stringArg(d, &t.TokenSHA256)
			a.Tokens = append(a.Tokens, t)
		case "route":
			err = stringArg(d, &a.Route)
		default:
			return d.Errf("unrecognized sentinel_cache_admin subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalStorage reads `storage <name> { … }`.
func unmarshalStorage(d *caddyfile.Dispenser, s *Storage) error {
	if !d.AllArgs(&s.Name) {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "backend":
			err = stringArg(d, &s.Backend)
		case "max_size":
			err = int64Arg(d, &s.MaxSize)
		case "disk_path":
			err = stringArg(d, &s.DiskPath)
		case "disk_shards":
			var n int64
			err = int64Arg(d, &n)
			s.DiskShards = int(n)
		case "disk_max_size":
			err = int64Arg(d, &s.DiskMaxSize)
		default:
			return d.Errf("unrecognized storage option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func stringArg(d *caddyfile.Dispenser, p *string) error {
	if !d.AllArgs(p) {
		return d.ArgErr()
	}
	return nil
}

func int64Arg(d *caddyfile.Dispenser, p *int64) error {
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return d.Errf("%s: %q is not an integer", d.Val(), s)
	}
	*p = n
	return nil
}

func durationArg(d *caddyfile.Dispenser, p *caddy.Duration) error {
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%q is not a duration: %v", s, err)
	}
	*p = caddy.Duration(v)
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Admin)(nil)
)
