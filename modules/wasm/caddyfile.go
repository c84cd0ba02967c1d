package wasm

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("sentinel_wasm", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_wasm", httpcaddyfile.Before, "reverse_proxy")
}

// UnmarshalCaddyfile reads:
//
//	sentinel_wasm [<matcher>] {
//	    cache_dir <path>|off
//	    plugin <id> <path> {
//	        abi              sentinel|http-wasm
//	        config           <json>
//	        max_memory       <size>
//	        timeout          <duration>
//	        failure_mode     open|closed
//	        max_body_bytes   <bytes>
//	        max_idle_instances <n>
//	    }
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if d.Val() == "cache_dir" {
			if !d.AllArgs(&h.CacheDir) {
				return d.ArgErr()
			}
			continue
		}
		if d.Val() != "plugin" {
			return d.Errf("unknown subdirective %q (cache_dir, plugin)", d.Val())
		}
		p := new(Plugin)
		if !d.Args(&p.ID, &p.Path) {
			return d.Err("plugin needs an id and a path")
		}
		for d.NextBlock(1) {
			key := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			val := d.Val()
			switch key {
			case "abi":
				p.ABI = val
			case "config":
				if !json.Valid([]byte(val)) {
					return d.Errf("config %q is not JSON", val)
				}
				p.Config = json.RawMessage(val)
			case "max_memory":
				p.MaxMemory = val
			case "timeout":
				dur, err := caddy.ParseDuration(val)
				if err != nil {
					return d.Errf("timeout: %v", err)
				}
				p.Timeout = caddy.Duration(dur)
			case "failure_mode":
				p.FailureMode = val
			case "max_body_bytes", "max_idle_instances":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil {
					return d.Errf("%s: %v", key, err)
				}
				if key == "max_body_bytes" {
					p.MaxBodyBytes = n
				} else {
					p.MaxIdleInstances = int(n)
				}
			default:
				return d.Errf("unknown plugin setting %q", key)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		}
		h.Plugins = append(h.Plugins, p)
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	w := new(Handler)
	err := w.UnmarshalCaddyfile(h.Dispenser)
	return w, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
