package sentinelapp

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/sentinel-proxy/sentinel/modules/controlapi"
	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("sentinel", parseGlobalOption)
}

// parseGlobalOption sets up the `sentinel` app from the Caddyfile's
// global options:
//
//	{
//	    sentinel {
//	        upstream <id> {
//	            target <address> [<weight>]
//	            health_check [http|tcp|grpc] {
//	                type                http|tcp|grpc
//	                path                <path>
//	                host                <host>
//	                expect_status       <status>
//	                service             <grpc service>
//	                interval            <duration>
//	                timeout             <duration>
//	                healthy_threshold   <n>
//	                unhealthy_threshold <n>
//	                tls {
//	                    server_name <name>
//	                    insecure_skip_verify
//	                    ca_file     <file>
//	                }
//	            }
//	        }
//	        route <id>...
//	        api [<listen>] {
//	            listen                  <address>
//	            token                   <name> <token> [<scope>...]
//	            token_sha256            <name> <hex sha-256> [<scope>...]
//	            tls [<cert_file> <key_file>] {
//	                cert_file          <file>
//	                key_file           <file>
//	                client_ca_file     <file>
//	                allowed_identities <identity>...
//	            }
//	            allowed_target_networks <cidr>...
//	            max_body_bytes          <n>
//	        }
//	        state_file <path>
//	    }
//	}
//
// The option may appear more than once; its blocks add up.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if prev, ok := existing.(httpcaddyfile.App); ok {
		if err := json.Unmarshal(prev.Value, app); err != nil {
			return nil, err
		}
	}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "sentinel", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the `sentinel` global option (see
// parseGlobalOption), adding to what a is.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "upstream":
			if err := a.unmarshalUpstream(d); err != nil {
				return err
			}
		case "route":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.Routes = append(a.Routes, args...)
		case "api":
			if a.API == nil {
				a.API = new(controlapi.Config)
			}
			if err := unmarshalAPI(d, a.API); err != nil {
				return err
			}
		case "state_file":
			if err := oneArg(d, &a.StateFile); err != nil {
				return err
			}
		default:
			return d.Errf("sentinel: unrecognized option %q", d.Val())
		}
	}
	return nil
}

// unmarshalUpstream reads `upstream <id> { … }`.
func (a *App) unmarshalUpstream(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	id := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	var u *UpstreamConfig
	for i := range a.Upstreams {
		if a.Upstreams[i].ID == id {
			return d.Errf("sentinel: upstream %q declared twice", id)
		}
	}
	a.Upstreams = append(a.Upstreams, UpstreamConfig{ID: id})
	u = &a.Upstreams[len(a.Upstreams)-1]
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "target":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("sentinel: upstream %q: target <address> [<weight>]", id)
			}
			t := registry.TargetSpec{Address: args[0]}
			if len(args) == 2 {
				w, err := strconv.Atoi(args[1])
				if err != nil || w < 1 {
					return d.Errf("sentinel: upstream %q: target %s: weight %q is not a positive integer", id, args[0], args[1])
				}
				t.Weight = w
			}
			u.Targets = append(u.Targets, t)
		case "health_check":
			if u.HealthCheck != nil {
				return d.Errf("sentinel: upstream %q: health_check given twice", id)
			}
			u.HealthCheck = new(HealthCheck)
			if err := u.HealthCheck.unmarshal(d); err != nil {
				return err
			}
		default:
			return d.Errf("sentinel: upstream %q: unrecognized option %q", id, d.Val())
		}
	}
	return nil
}

// unmarshal reads `health_check [<type>] { … }`.
func (h *HealthCheck) unmarshal(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		h.Type = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var err error
		switch opt {
		case "type":
			err = oneArg(d, &h.Type)
		case "path":
			err = oneArg(d, &h.Path)
		case "host":
			err = oneArg(d, &h.Host)
		case "service":
			err = oneArg(d, &h.Service)
		case "expect_status":
			err = intArg(d, &h.ExpectStatus)
		case "healthy_threshold":
			err = intArg(d, &h.Healthy)
		case "unhealthy_threshold":
			err = intArg(d, &h.Unhealthy)
		case "interval":
			err = durationArg(d, &h.Interval)
		case "timeout":
			err = durationArg(d, &h.Timeout)
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.TLS == nil {
				h.TLS = new(HealthTLS)
			}
			for n := d.Nesting(); d.NextBlock(n); {
				switch d.Val() {
				case "server_name":
					err = oneArg(d, &h.TLS.ServerName)
				case "ca_file":
					err = oneArg(d, &h.TLS.CAFile)
				case "insecure_skip_verify":
					if d.NextArg() {
						return d.ArgErr()
					}
					h.TLS.InsecureSkipVerify = true
				default:
					return d.Errf("sentinel: health_check tls: unrecognized option %q", d.Val())
				}
				if err != nil {
					return err
				}
			}
		default:
			return d.Errf("sentinel: health_check: unrecognized option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalAPI reads `api [<listen>] { … }`.
func unmarshalAPI(d *caddyfile.Dispenser, c *controlapi.Config) error {
	if d.NextArg() {
		c.Listen = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var err error
		switch opt {
		case "listen":
			err = oneArg(d, &c.Listen)
		case "token", "token_sha256":
			args := d.RemainingArgs()
			if len(args) < 2 {
				// Never echo the arguments: one may be the secret.
				return d.Errf("sentinel: api: %s <name> <%s> [<scope>...]", opt, map[string]string{"token": "token", "token_sha256": "hex sha-256"}[opt])
			}
			t := controlapi.Token{Name: args[0], Scopes: args[2:]}
			if opt == "token" {
				t.Token = args[1]
			} else {
				t.TokenSHA256 = args[1]
			}
			c.Tokens = append(c.Tokens, t)
		case "tls":
			err = unmarshalAPITLS(d, c)
		case "allowed_target_networks":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			c.AllowedTargetNetworks = append(c.AllowedTargetNetworks, args...)
		case "max_body_bytes":
			var n int
			if err = intArg(d, &n); err == nil {
				c.MaxBodyBytes = int64(n)
			}
		default:
			return d.Errf("sentinel: api: unrecognized option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalAPITLS reads `tls [<cert_file> <key_file>] { … }`.
func unmarshalAPITLS(d *caddyfile.Dispenser, c *controlapi.Config) error {
	if c.TLS == nil {
		c.TLS = new(controlapi.TLSConfig)
	}
	t := c.TLS
	switch args := d.RemainingArgs(); len(args) {
	case 0:
	case 2:
		t.CertFile, t.KeyFile = args[0], args[1]
	default:
		return d.Errf("sentinel: api: tls [<cert_file> <key_file>]")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "cert_file":
			err = oneArg(d, &t.CertFile)
		case "key_file":
			err = oneArg(d, &t.KeyFile)
		case "client_ca_file":
			err = oneArg(d, &t.ClientCAFile)
		case "allowed_identities":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			t.AllowedIdentities = append(t.AllowedIdentities, args...)
		default:
			return d.Errf("sentinel: api tls: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// oneArg reads the single argument of the current option.
func oneArg(d *caddyfile.Dispenser, p *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*p = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// intArg reads a non-negative integer argument.
func intArg(d *caddyfile.Dispenser, p *int) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("sentinel: %s: %q is not a non-negative integer", opt, s)
	}
	*p = n
	return nil
}

// durationArg reads a duration argument.
func durationArg(d *caddyfile.Dispenser, p *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("sentinel: %s: %v", opt, err)
	}
	*p = caddy.Duration(v)
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*App)(nil)
