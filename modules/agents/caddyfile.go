package agents

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("sentinel_agents", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("sentinel_agents", parseCaddyfileHandler)
	httpcaddyfile.RegisterDirectiveOrder("sentinel_agents", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption reads the app:
//
//	{
//	    sentinel_agents {
//	        agent <id> {
//	            unix_socket <path> | grpc <url>
//	            grpc_package sentinel.agent.v2|zentinel.agent.v2
//	            tls { insecure | ca_cert <f> | client_cert <f> | client_key <f> | server_name <n> }
//	            type <type>
//	            events <event>...
//	            timeout <duration>
//	            chunk_timeout <duration>
//	            failure_mode open|closed
//	            circuit_breaker <failures> <successes> <open duration> [<half-open probes>]
//	            max_request_body_bytes <n>
//	            max_response_body_bytes <n>
//	            request_body_mode buffer|stream|hybrid[:n]
//	            response_body_mode buffer|stream|hybrid[:n]
//	            chunk_bytes <n>
//	            max_concurrent_calls <n>
//	            config <json>
//	            pool { connections <n> | connect_timeout <d> | reconnect_backoff <d> | max_reconnect_backoff <d> | queue_depth <n> | health_check_interval <d> | drain_timeout <d> }
//	        }
//	        registration {
//	            unix_socket <path> | address <host:port>
//	            tls <cert_file> <key_file> [<client_ca>]
//	            token <token>
//	            allowed_agents <id>...
//	            allow_configured_ids
//	            timeout <duration>
//	        }
//	    }
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next()
	for d.NextBlock(0) {
		switch d.Val() {
		case "agent":
			c := new(AgentConfig)
			if !d.Args(&c.ID) {
				return nil, d.ArgErr()
			}
			if err := unmarshalAgent(d, c); err != nil {
				return nil, err
			}
			app.Agents = append(app.Agents, c)
		case "registration":
			r := new(RegistrationConfig)
			if err := unmarshalRegistration(d, r); err != nil {
				return nil, err
			}
			app.Registration = r
		default:
			return nil, d.Errf("unknown sentinel_agents option %q (agent, registration)", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "sentinel_agents", Value: caddyconfig.JSON(app, nil)}, nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func durArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: %v", d.Val(), err)
	}
	return caddy.Duration(dur), nil
}

func intArg(d *caddyfile.Dispenser) (int64, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, d.Errf("%q is not an integer", v)
	}
	return n, nil
}

func unmarshalAgent(d *caddyfile.Dispenser, c *AgentConfig) error {
	for d.NextBlock(1) {
		key := d.Val()
		var err error
		var n int64
		switch key {
		case "unix_socket":
			c.UnixSocket, err = oneArg(d)
		case "grpc":
			c.GRPC, err = oneArg(d)
		case "grpc_package":
			c.GRPCPackage, err = oneArg(d)
		case "type":
			c.Type, err = oneArg(d)
		case "events":
			c.Events = d.RemainingArgs()
		case "timeout":
			c.Timeout, err = durArg(d)
		case "chunk_timeout":
			c.ChunkTimeout, err = durArg(d)
		case "failure_mode":
			c.FailureMode, err = oneArg(d)
		case "request_body_mode":
			c.RequestBodyMode, err = oneArg(d)
		case "response_body_mode":
			c.ResponseBodyMode, err = oneArg(d)
		case "max_request_body_bytes", "max_response_body_bytes", "chunk_bytes", "max_concurrent_calls":
			if n, err = intArg(d); err == nil {
				switch key {
				case "max_request_body_bytes":
					c.MaxRequestBodyBytes = n
				case "max_response_body_bytes":
					c.MaxResponseBodyBytes = n
				case "chunk_bytes":
					c.ChunkBytes = n
				default:
					c.MaxConcurrentCalls = int(n)
				}
			}
		case "config":
			var v string
			if v, err = oneArg(d); err == nil {
				if !json.Valid([]byte(v)) {
					return d.Errf("config %q is not JSON", v)
				}
				c.Config = json.RawMessage(v)
			}
		case "circuit_breaker":
			args := d.RemainingArgs()
			if len(args) < 3 || len(args) > 4 {
				return d.Err("circuit_breaker <failures> <successes> <open duration> [<half-open probes>]")
			}
			b := &BreakerConfig{}
			f, err1 := strconv.Atoi(args[0])
			s, err2 := strconv.Atoi(args[1])
			t, err3 := caddy.ParseDuration(args[2])
			if err1 != nil || err2 != nil || err3 != nil {
				return d.Err("circuit_breaker <failures> <successes> <open duration> [<half-open probes>]")
			}
			b.FailureThreshold, b.SuccessThreshold, b.Timeout = f, s, caddy.Duration(t)
			if len(args) == 4 {
				if b.HalfOpenMaxRequests, err = strconv.Atoi(args[3]); err != nil {
					return d.Errf("half-open probes: %v", err)
				}
			}
			c.CircuitBreaker = b
		case "tls":
			c.TLS = &TLSConfig{}
			for d.NextBlock(2) {
				k := d.Val()
				if k == "insecure" {
					c.TLS.Insecure = true
					continue
				}
				v, err := oneArg(d)
				if err != nil {
					return err
				}
				switch k {
				case "ca_cert":
					c.TLS.CACert = v
				case "client_cert":
					c.TLS.ClientCert = v
				case "client_key":
					c.TLS.ClientKey = v
				case "server_name":
					c.TLS.ServerName = v
				default:
					return d.Errf("unknown tls setting %q", k)
				}
			}
		case "pool":
			c.Pool = &PoolConfig{}
			for d.NextBlock(2) {
				k := d.Val()
				switch k {
				case "connections", "queue_depth":
					if n, err = intArg(d); err != nil {
						return err
					}
					if k == "connections" {
						c.Pool.Connections = int(n)
					} else {
						q := int(n)
						c.Pool.QueueDepth = &q
					}
				case "connect_timeout", "reconnect_backoff", "max_reconnect_backoff", "health_check_interval", "drain_timeout":
					v, err := durArg(d)
					if err != nil {
						return err
					}
					*map[string]*caddy.Duration{"connect_timeout": &c.Pool.ConnectTimeout, "reconnect_backoff": &c.Pool.ReconnectBackoff,
						"max_reconnect_backoff": &c.Pool.MaxReconnectBackoff, "health_check_interval": &c.Pool.HealthCheckInterval,
						"drain_timeout": &c.Pool.DrainTimeout}[k] = v
				default:
					return d.Errf("unknown pool setting %q", k)
				}
			}
		default:
			return d.Errf("unknown agent setting %q", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func unmarshalRegistration(d *caddyfile.Dispenser, r *RegistrationConfig) error {
	for d.NextBlock(1) {
		var err error
		switch d.Val() {
		case "unix_socket":
			r.UnixSocket, err = oneArg(d)
		case "address":
			r.Address, err = oneArg(d)
		case "token":
			var t string
			if t, err = oneArg(d); err == nil {
				if t == "" {
					return d.Err("registration: empty token")
				}
				// only the hash goes into the adapted JSON
				r.TokenSHA256 = append(r.TokenSHA256, TokenHash(t))
			}
		case "allow_configured_ids":
			if d.NextArg() {
				return d.ArgErr()
			}
			r.AllowConfiguredIDs = true
		case "allowed_agents":
			r.AllowedAgents = append(r.AllowedAgents, d.RemainingArgs()...)
		case "timeout":
			r.Timeout, err = durArg(d)
		case "tls":
			args := d.RemainingArgs()
			if len(args) < 2 || len(args) > 3 {
				return d.Err("tls <cert_file> <key_file> [<client_ca>]")
			}
			r.TLS = &ServerTLSConfig{CertFile: args[0], KeyFile: args[1]}
			if len(args) == 3 {
				r.TLS.ClientCA = args[2]
			}
		default:
			return d.Errf("unknown registration setting %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile reads the handler:
//
//	sentinel_agents [<matcher>] {
//	    route <id>
//	    upstream <id>
//	    agent <id> {
//	        phase request|response|both
//	        timeout <duration>
//	        failure_mode open|closed
//	        inspect_body
//	        max_body_bytes <n>
//	        body_mode buffer|stream|hybrid[:n]
//	    }
//	    challenge <status> [<body>]
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "route":
			h.Route, err = oneArg(d)
		case "upstream":
			h.Upstream, err = oneArg(d)
		case "challenge":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("challenge <status> [<body>]")
			}
			st, cerr := strconv.Atoi(args[0])
			if cerr != nil {
				return d.Errf("challenge status %q", args[0])
			}
			h.Challenge = &ChallengeResponse{Status: st}
			if len(args) == 2 {
				h.Challenge.Body = args[1]
			}
		case "agent":
			f := new(Filter)
			if !d.Args(&f.Agent) {
				return d.ArgErr()
			}
			for d.NextBlock(1) {
				switch d.Val() {
				case "phase":
					f.Phase, err = oneArg(d)
				case "timeout":
					f.Timeout, err = durArg(d)
				case "failure_mode":
					f.FailureMode, err = oneArg(d)
				case "inspect_body":
					f.InspectBody = true
				case "max_body_bytes":
					f.MaxBodyBytes, err = intArg(d)
				case "body_mode":
					f.BodyMode, err = oneArg(d)
				default:
					return d.Errf("unknown agent filter setting %q", d.Val())
				}
				if err != nil {
					return err
				}
			}
			h.Filters = append(h.Filters, f)
		default:
			return d.Errf("unknown sentinel_agents setting %q (route, upstream, agent, challenge)", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if len(h.Filters) == 0 {
		return d.Err("sentinel_agents needs at least one agent")
	}
	return nil
}

func parseCaddyfileHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
