package ratelimit

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/internal/sharedstore"
)

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rl := new(Handler)
	if err := rl.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return rl, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	sentinel_rate_limit [<matcher>] [<max_rps> [<burst>]] {
//	    zone          <name>
//	    max_rps       <number>
//	    burst         <n>
//	    key           client_ip|path|route|client_ip_and_path|global|tenant|tenant_and_client_ip|header:<Name>
//	    on_limit      reject|delay|log_only
//	    status_code   <4xx|5xx>
//	    message       <text>
//	    max_delay     <duration>
//	    max_keys      <n>
//	    backend       local|redis|memcached
//	    fallback_local true|false
//	    memcached_ttl <duration>
//	    redis     <url> { prefix <p>; pool_size <n>; timeout <duration> }
//	    memcached <url> { prefix <p>; pool_size <n>; timeout <duration> }
//	}
//
// `redis` and `memcached` also set the backend.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	args := d.RemainingArgs()
	if len(args) > 2 {
		return d.ArgErr()
	}
	if len(args) > 0 {
		v, err := strconv.ParseFloat(args[0], 64)
		if err != nil {
			return d.Errf("max_rps %q: %v", args[0], err)
		}
		h.MaxRPS = v
	}
	if len(args) > 1 {
		v, err := strconv.Atoi(args[1])
		if err != nil {
			return d.Errf("burst %q: %v", args[1], err)
		}
		h.Burst = v
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "redis", "memcached":
			if err := h.unmarshalStore(d, name); err != nil {
				return err
			}
			continue
		}
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		var err error
		switch name {
		case "zone":
			h.Zone = val
		case "max_rps":
			h.MaxRPS, err = strconv.ParseFloat(val, 64)
		case "burst":
			h.Burst, err = strconv.Atoi(val)
		case "key":
			h.Key = val
		case "on_limit":
			h.OnLimit = val
		case "status_code":
			h.StatusCode, err = strconv.Atoi(val)
		case "message":
			h.Message = val
		case "max_delay", "memcached_ttl":
			var dur caddy.Duration
			var x int64
			x, err = parseDuration(val)
			dur = caddy.Duration(x)
			if name == "max_delay" {
				h.MaxDelay = dur
			} else {
				h.MemcachedTTL = dur
			}
		case "max_keys":
			h.MaxKeys, err = strconv.Atoi(val)
		case "backend":
			h.Backend = val
		case "fallback_local":
			var b bool
			b, err = strconv.ParseBool(val)
			h.FallbackLocal = &b
		default:
			return d.Errf("unrecognized sentinel_rate_limit subdirective '%s'", name)
		}
		if err != nil {
			return d.Errf("%s %q: %v", name, val, err)
		}
	}
	return nil
}

func parseDuration(s string) (int64, error) {
	dur, err := caddy.ParseDuration(s)
	return int64(dur), err
}

// unmarshalStore reads a redis or memcached subdirective.
func (h *Handler) unmarshalStore(d *caddyfile.Dispenser, name string) error {
	var url string
	if d.NextArg() {
		url = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	var prefix *string
	var pool *int
	var timeout *caddy.Duration
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch sub {
		case "prefix":
			prefix = &val
		case "pool_size":
			n, err := strconv.Atoi(val)
			if err != nil {
				return d.Errf("%s pool_size %q: %v", name, val, err)
			}
			pool = &n
		case "timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s timeout %q: %v", name, val, err)
			}
			cd := caddy.Duration(dur)
			timeout = &cd
		default:
			return d.Errf("unrecognized %s subdirective '%s'", name, sub)
		}
	}
	set := func(u *string, p *string, ps *int, t *caddy.Duration) {
		*u = url
		if prefix != nil {
			*p = *prefix
		}
		if pool != nil {
			*ps = *pool
		}
		if timeout != nil {
			*t = *timeout
		}
	}
	h.Backend = name
	if name == "redis" {
		h.Redis = &sharedstore.RedisConfig{}
		set(&h.Redis.URL, &h.Redis.Prefix, &h.Redis.PoolSize, &h.Redis.Timeout)
	} else {
		h.Memcached = &sharedstore.MemcachedConfig{}
		set(&h.Memcached.URL, &h.Memcached.Prefix, &h.Memcached.PoolSize, &h.Memcached.Timeout)
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
