package kdladapter

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/agents"
)

// agentKey declares the keys of an `agents { agent "id" { … } }` block
// and their mapping onto the sentinel_agents app's agents.AgentConfig.
// Built once, not changed after.
var agentKey, readAgent = agentKeys()

// agentBlock is what an agent block maps to: the app's AgentConfig, read
// knowing the agent's id (for messages).
type agentBlock struct {
	agents.AgentConfig
	id string
}

func agentKeys() (*Key, func(*adapter, *kdl.Node, *agentBlock)) {
	type c = agentBlock
	grpc := typedBlock(h("grpc", "gRPC v2 transport (`grpc \"http://host:port\"` or `address=`)"),
		plainField(h("address", "the address, when not an argument"), func(*adapter, *kdl.Node, *agentGRPC) {}),
		plainField(h("tls", "`#true`: TLS to the agent"), func(a *adapter, n *kdl.Node, g *agentGRPC) {
			if b, ok := a.boolean(n); ok {
				g.secure = g.secure || b
			}
		}),
		fieldOf("tls-insecure", "TLS without verifying the agent's certificate", func(a *adapter, n *kdl.Node) (bool, bool) {
			b, ok := a.boolean(n)
			return b, ok && b
		}, func(g *agentGRPC) *bool { return &g.Insecure }),
		stringField("ca-cert", "CA file of the agent's certificate", func(g *agentGRPC) *string { return &g.CACert }),
		stringField("client-cert", "proxy certificate for mTLS", func(g *agentGRPC) *string { return &g.ClientCert }),
		stringField("client-key", "key of client-cert", func(g *agentGRPC) *string { return &g.ClientKey }),
		stringField("server-name", "name checked in the agent's certificate", func(g *agentGRPC) *string { return &g.ServerName }).extension(),
		plainField(ext(h("package", "`grpc_package`: `sentinel.agent.v2` (default) or `zentinel.agent.v2`; the other is tried on Unimplemented")),
			func(a *adapter, n *kdl.Node, g *agentGRPC) {
				if s, ok := a.str(n); ok {
					g.pkg, _ = a.oneOf(n, s, "sentinel.agent.v2", "zentinel.agent.v2")
				}
			}),
	)
	breaker := typedBlock(h("circuit-breaker", "the agent's breaker"),
		intField("failure-threshold", "failures in a row that open it (5)", 1, 1<<20, func(b *agents.BreakerConfig) *int { return &b.FailureThreshold }),
		intField("success-threshold", "half-open successes that close it (2)", 1, 1<<20, func(b *agents.BreakerConfig) *int { return &b.SuccessThreshold }),
		secondsField("timeout-seconds", "open time (30)", func(b *agents.BreakerConfig) *caddy.Duration { return &b.Timeout }),
		intField("half-open-max-requests", "probes at a time when half-open (1)", 1, 1<<20, func(b *agents.BreakerConfig) *int { return &b.HalfOpenMaxRequests }),
	)
	pool := typedBlock(h("pool", "connection pool of the agent (hard-coded in the original)"),
		intField("connections", "connections to the agent (4)", 1, 1024, func(p *agents.PoolConfig) *int { return &p.Connections }),
		millisField("connect-timeout-ms", "connect + handshake timeout (5000)", func(p *agents.PoolConfig) *caddy.Duration { return &p.ConnectTimeout }),
		millisField("reconnect-backoff-ms", "first reconnect wait, doubled up to max-reconnect-backoff-ms (5000)", func(p *agents.PoolConfig) *caddy.Duration { return &p.ReconnectBackoff }),
		millisField("max-reconnect-backoff-ms", "largest reconnect wait (30000)", func(p *agents.PoolConfig) *caddy.Duration { return &p.MaxReconnectBackoff }),
		fieldOf("queue-depth", "calls that may wait for a free slot (limits.max-agent-queue-depth, 100); more fail at once", func(a *adapter, n *kdl.Node) (*int, bool) {
			v, ok := a.integer(n, 0, 1<<20)
			i := int(v)
			return &i, ok
		}, func(p *agents.PoolConfig) **int { return &p.QueueDepth }),
		millisField("health-check-interval-ms", "ping interval (10000)", func(p *agents.PoolConfig) *caddy.Duration { return &p.HealthCheckInterval }),
		millisField("drain-timeout-ms", "in-flight calls finish within it on reload/removal (30000)", func(p *agents.PoolConfig) *caddy.Duration { return &p.DrainTimeout }),
	)
	return typedBlockInto(h("agent", "an agent of the `sentinel_agents` app (protocol v2 over UDS or gRPC)"),
		stringField("type", "informational (`waf`, `auth`, `rate_limit`, custom); also the `type=` property", func(c *c) *string { return &c.Type }),
		fieldOf("unix-socket", "UDS v2 transport (`unix-socket \"/path\"` or `path=`)", func(a *adapter, n *kdl.Node) (string, bool) {
			return a.propOrArg(n, "path")
		}, func(c *c) *string { return &c.UnixSocket }),
		field[c]{key: grpc, ptr: func(c *c) any { return &c.GRPC }, read: func(a *adapter, n *kdl.Node, c *c) {
			addr, ok := a.propOrArg(n, "address")
			if !ok {
				return
			}
			g := grpc.Map(a, n).(*agentGRPC)
			secure := g.secure || g.Insecure || strings.HasPrefix(addr, "https://")
			if secure && strings.HasPrefix(addr, "http://") {
				addr = "https://" + strings.TrimPrefix(addr, "http://")
			}
			c.GRPC, c.GRPCPackage = addr, g.pkg
			if g.TLSConfig != (agents.TLSConfig{}) || secure {
				c.TLS = &g.TLSConfig
			}
		}},
		plainField(h("http", "refused: protocol v2 has no HTTP transport (as the original)"), func(a *adapter, n *kdl.Node, c *c) {
			a.d.errorf(n.Pos, "agent %q: the http transport does not exist in protocol v2 (the original refuses it at start); use unix-socket or grpc", c.id)
		}),
		plainField(deprecated(h("transport", "", h("path", "socket path"), h("address", "gRPC address")),
			"legacy `transport \"unix_socket\" { path … }` / `transport \"grpc\" { address … }` form: warning, mapped like unix-socket / grpc"),
			(*adapter).legacyTransport),
		field[c]{key: h("events", "request_headers, request_body, response_headers, response_body, log/request_complete, websocket_frame, guardrail"),
			ptr: func(c *c) any { return &c.Events }, read: (*adapter).agentEvents},
		millisField("timeout-ms", "timeout of each call (default 1000)", func(c *c) *caddy.Duration { return &c.Timeout }),
		millisField("chunk-timeout-ms", "timeout of each body-chunk call (default 5000)", func(c *c) *caddy.Duration { return &c.ChunkTimeout }),
		fieldOf("failure-mode", "open (default) or closed", (*adapter).failureMode, func(c *c) *string { return &c.FailureMode }),
		field[c]{key: breaker, ptr: func(c *c) any { return &c.CircuitBreaker }, read: func(a *adapter, n *kdl.Node, c *c) {
			c.CircuitBreaker = breaker.Map(a, n).(*agents.BreakerConfig)
		}},
		sizeField("max-request-body-bytes", "largest request body sent (1 MiB): 413 fail-closed, skipped fail-open", func(c *c) *int64 { return &c.MaxRequestBodyBytes }),
		sizeField("max-response-body-bytes", "largest response body sent (1 MiB)", func(c *c) *int64 { return &c.MaxResponseBodyBytes }),
		fieldOf("request-body-mode", "`buffer`, `stream`, `hybrid` or `hybrid:<bytes>`", (*adapter).bodyMode, func(c *c) *string { return &c.RequestBodyMode }),
		fieldOf("response-body-mode", "`buffer`, `stream`, `hybrid` or `hybrid:<bytes>`", (*adapter).bodyMode, func(c *c) *string { return &c.ResponseBodyMode }),
		sizeField("chunk-size-bytes", "largest body chunk sent in stream mode (64 KiB)", func(c *c) *int64 { return &c.ChunkBytes }).extension(),
		intField("max-concurrent-calls", "the agent's own concurrency limit (100)", 1, 1<<20, func(c *c) *int { return &c.MaxConcurrentCalls }),
		configField("config", "delivered to the agent (handshake and Configure event) as JSON; `k (list)\"v\"` is a one-element list", func(c *c) *json.RawMessage { return &c.Config }),
		field[c]{key: w("protocol-version", "deprecated no-op: protocol v2 is always spoken")},
		field[c]{key: pool, ptr: func(c *c) any { return &c.Pool }, read: func(a *adapter, n *kdl.Node, c *c) {
			if p := pool.Map(a, n).(*agents.PoolConfig); *p != (agents.PoolConfig{}) {
				c.Pool = p
			}
		}}.extension(),
	)
}

// agentGRPC is what an agent's grpc block maps to: the TLS to the agent,
// whether TLS is on, the proto package.
type agentGRPC struct {
	agents.TLSConfig
	secure bool
	pkg    string
}

// registrationKey declares the live registration listener and its
// mapping onto agents.RegistrationConfig. Built once, not changed after.
var registrationKey = registrationKeys()

func registrationKeys() *Key {
	type r = agents.RegistrationConfig
	tls := typedBlock(h("tls", "TLS of the TCP listener"),
		stringField("cert-file", "server certificate", func(t *agents.ServerTLSConfig) *string { return &t.CertFile }),
		stringField("key-file", "server key", func(t *agents.ServerTLSConfig) *string { return &t.KeyFile }),
		stringField("client-ca", "CA of agent client certificates (mTLS identity = certificate CN / DNS name = agent id)", func(t *agents.ServerTLSConfig) *string { return &t.ClientCA }),
	)
	return ext(typedBlock(h("registration", "live agent registration listener: agents connect to the proxy"),
		stringField("unix-socket", "Unix socket path (mode 0600)", func(r *r) *string { return &r.UnixSocket }),
		stringField("address", "TCP address (needs tls)", func(r *r) *string { return &r.Address }),
		field[r]{key: tls, ptr: func(r *r) any { return &r.TLS }, read: func(a *adapter, n *kdl.Node, r *r) {
			r.TLS = tls.Map(a, n).(*agents.ServerTLSConfig)
		}},
		field[r]{key: h("token", "accepted token (repeatable); only its SHA-256 goes into the Caddy JSON, compared in constant time, never logged"),
			ptr: func(r *r) any { return &r.TokenSHA256 }, read: func(a *adapter, n *kdl.Node, r *r) {
				// Only the hash goes into the JSON: the adapted config is
				// shown, saved and sent around; the token is not.
				for _, t := range a.strs(n) {
					if t == "" {
						a.d.errorf(n.Pos, "agents.registration: token is empty")
						continue
					}
					sum := sha256.Sum256([]byte(t))
					r.TokenSHA256 = append(r.TokenSHA256, hex.EncodeToString(sum[:]))
				}
			}},
		stringsField("allowed-agents", "agent ids that may register (default: any id that is not a configured agent's)", func(r *r) *[]string { return &r.AllowedAgents }),
		boolField("allow-configured-ids", "`#true`: a live agent may register with the id of a configured agent and share its traffic (default: refused)", func(r *r) *bool { return &r.AllowConfiguredIDs }),
		millisField("timeout-ms", "registration + handshake timeout (10000)", func(r *r) *caddy.Duration { return &r.Timeout }),
		field[r]{key: open(h("defaults", "settings of live agents, as in `agent { }` (timeout-ms, failure-mode, events…)")),
			ptr: func(r *r) any { return &r.Defaults }, read: func(a *adapter, n *kdl.Node, r *r) {
				a.checkBlock(n, agentKey, "agents.registration.defaults")
				d := a.mapAgent("*", &kdl.Node{Name: "agent", Pos: n.Pos, Children: append([]*kdl.Node{{Name: "unix-socket", Pos: n.Pos, Args: []kdl.Value{{Kind: kdl.KindString, Str: "-"}}}}, n.Children...)})
				d.ID, d.UnixSocket = "", ""
				r.Defaults = d
			}},
	))
}

// agentsBlock is the whole `agents { }` block.
func agentsBlock() *Key {
	return h("agents", "`sentinel_agents` app: agents used by filters of type \"agent\"", agentKey, registrationKey)
}

// agentFilterKey declares the keys of a filter of type "agent" and their
// mapping onto the sentinel_agents handler's agents.Filter. It is built
// once and not changed after.
var agentFilterKey = agentFilterKeys()

func agentFilterKeys() *Key {
	return typedBlock(h("agent", "`sentinel_agents` handler: the route's agent filters, request headers fanned out in parallel"),
		stringField("agent", "agent id from `agents { }` (or a live-registered one)", func(f *agents.Filter) *string { return &f.Agent }),
		fieldOf("phase", "`request`, `response` or `both` (default both: the agent's events decide)", (*adapter).phase,
			func(f *agents.Filter) *string { return &f.Phase }),
		fieldOf("timeout-ms", "overrides the agent's timeout", (*adapter).millisDuration,
			func(f *agents.Filter) *caddy.Duration { return &f.Timeout }),
		fieldOf("failure-mode", "overrides the agent's failure mode", (*adapter).failureMode,
			func(f *agents.Filter) *string { return &f.FailureMode }),
		boolField("inspect-body", "`#true`: also send the body of the phase", func(f *agents.Filter) *bool { return &f.InspectBody }),
		fieldOf("max-body-bytes", "overrides the agent's body limit", (*adapter).byteSize,
			func(f *agents.Filter) *int64 { return &f.MaxBodyBytes }),
		fieldOf("body-mode", "overrides the agent's body mode", (*adapter).bodyMode,
			func(f *agents.Filter) *string { return &f.BodyMode }).extension(),
	)
}

// phase reads `request`, `response` or `both`.
func (a *adapter) phase(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	return a.oneOf(n, s, "request", "response", "both")
}

// millisDuration reads an integer number of milliseconds.
func (a *adapter) millisDuration(n *kdl.Node) (caddy.Duration, bool) {
	s, ok := a.millis(n)
	if !ok {
		return 0, false
	}
	d, _ := time.ParseDuration(s) // a.millis wrote it
	return caddy.Duration(d), true
}

// agentsApp writes the sentinel_agents app.
var agentsApp = newModuleJSON[agents.App]("", "")

// mapAgents builds the `sentinel_agents` app, or nil without agents.
func (a *adapter) mapAgents() json.RawMessage {
	if len(a.agents) == 0 && a.agentReg == nil {
		return nil
	}
	var app agents.App
	for _, id := range a.agentIDs() {
		app.Agents = append(app.Agents, a.mapAgent(id, a.agents[id]))
	}
	if a.agentReg != nil {
		app.Registration = a.mapRegistration(a.agentReg)
	}
	return agentsApp.raw(&app)
}

func (a *adapter) agentIDs() []string {
	ids := make([]string, 0, len(a.agents))
	for id := range a.agents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// propOrArg reads a node's first argument, else its named property.
func (a *adapter) propOrArg(n *kdl.Node, prop string) (string, bool) {
	if len(n.Args) == 0 {
		if v, ok := n.Prop(prop); ok {
			if v.Kind != kdl.KindString {
				a.d.errorf(v.Pos, "%s %s= takes a string", n.Name, prop)
				return "", false
			}
			return v.Str, true
		}
		if c := setting(n, prop); c != nil {
			return a.str(c)
		}
	}
	return a.str(n)
}

// mapAgent maps one agent block.
func (a *adapter) mapAgent(id string, n *kdl.Node) *agents.AgentConfig {
	b := &agentBlock{id: id}
	readAgent(a, n, b)
	out := &b.AgentConfig
	out.ID = id
	if v, ok := n.Prop("type"); ok && v.Kind == kdl.KindString && setting(n, "type") == nil {
		out.Type = v.Str
	}
	transports := 0
	for _, c := range n.Children {
		switch c.Name {
		case "unix-socket", "grpc", "http", "transport":
			transports++
		}
	}
	if transports == 0 {
		a.d.errorf(n.Pos, "agent %q needs a transport: unix-socket \"/path\" or grpc \"http://host:port\"", id)
	} else if transports > 1 {
		a.d.errorf(n.Pos, "agent %q: give one transport (unix-socket or grpc)", id)
	}
	// limits { } give the defaults the agent block does not set.
	scope := a.scopeOf(id)
	if v, ok := scopedInt(scope, func(l *nsLimits) *int64 { return l.agentQueue }); ok && (out.Pool == nil || out.Pool.QueueDepth == nil) {
		if out.Pool == nil {
			out.Pool = &agents.PoolConfig{}
		}
		q := int(v)
		out.Pool.QueueDepth = &q
	}
	if out.Pool == nil || out.Pool.QueueDepth == nil {
		if x := a.limitSetting("max-agent-queue-depth"); x != nil {
			if v, ok := a.integer(x, 0, 1<<20); ok {
				if out.Pool == nil {
					out.Pool = &agents.PoolConfig{}
				}
				q := int(v)
				out.Pool.QueueDepth = &q
			}
		}
	}
	if sz, ok := scopedInt(scope, func(l *nsLimits) *int64 { return l.agentBody }); ok {
		if setting(n, "max-request-body-bytes") == nil {
			out.MaxRequestBodyBytes = sz
		}
		if setting(n, "max-response-body-bytes") == nil {
			out.MaxResponseBodyBytes = sz
		}
	} else if x := a.limitSetting("max-agent-body-bytes"); x != nil {
		if sz, ok := a.byteSize(x); ok {
			if setting(n, "max-request-body-bytes") == nil {
				out.MaxRequestBodyBytes = sz
			}
			if setting(n, "max-response-body-bytes") == nil {
				out.MaxResponseBodyBytes = sz
			}
		}
	}
	return out
}

// agentEvents reads an agent's events.
func (a *adapter) agentEvents(c *kdl.Node, out *agentBlock) {
	var evs []string
	for _, s := range a.strs(c) {
		e := strings.ReplaceAll(strings.ToLower(s), "-", "_")
		if e == "log" {
			e = "request_complete"
		}
		if ev, ok := a.oneOf(c, e, "request_headers", "request_body", "response_headers", "response_body", "request_complete", "websocket_frame", "guardrail"); ok {
			evs = append(evs, ev)
			if ev == "websocket_frame" || ev == "guardrail" {
				a.d.warnf(c.Pos, "agents.agent.events", "agent %q: %s events are not sent yet (WebSocket frame inspection and guardrails are not built)", out.id, ev)
			}
		}
	}
	out.Events = evs
}

// legacyTransport reads the legacy `transport "kind" { path/address }`.
func (a *adapter) legacyTransport(c *kdl.Node, out *agentBlock) {
	id := out.id
	kind, _ := a.str(c)
	a.d.warnf(c.Pos, "agents.agent.transport", "agent %q: `transport %q { … }` is a legacy form the original never parsed; write unix-socket \"/path\" or grpc \"http://host:port\"", id, kind)
	switch strings.ReplaceAll(strings.ToLower(kind), "-", "_") {
	case "unix_socket", "uds", "unix":
		if p := setting(c, "path"); p != nil {
			out.UnixSocket, _ = a.str(p)
		} else {
			a.d.errorf(c.Pos, "agent %q: transport %q needs path", id, kind)
		}
	case "grpc":
		if p := setting(c, "address"); p != nil {
			out.GRPC, _ = a.str(p)
		} else {
			a.d.errorf(c.Pos, "agent %q: transport %q needs address", id, kind)
		}
	default:
		a.d.errorf(c.Pos, "agent %q: transport %q is not unix_socket or grpc", id, kind)
	}
}

// failureMode reads open/closed in the original's spellings.
func (a *adapter) failureMode(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	switch strings.ReplaceAll(strings.ToLower(s), "_", "-") {
	case "open", "fail-open":
		return "open", true
	case "closed", "fail-closed":
		return "closed", true
	}
	a.oneOf(n, s, "open", "closed")
	return "", false
}

// bodyMode reads buffer, stream, hybrid or hybrid:<bytes>.
func (a *adapter) bodyMode(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	l := strings.ToLower(s)
	if rest, ok := strings.CutPrefix(l, "hybrid:"); ok {
		if sz, err := parseSize(rest); err == nil && sz > 0 {
			return "hybrid:" + itoa64(sz), true
		}
		a.d.errorf(n.Args[0].Pos, "%s %q: hybrid needs a byte count, e.g. \"hybrid:65536\"", n.Name, s)
		return "", false
	}
	return a.oneOf(n, l, "buffer", "stream", "hybrid")
}

// mapRegistration maps the registration listener.
func (a *adapter) mapRegistration(n *kdl.Node) *agents.RegistrationConfig {
	r := registrationKey.Map(a, n).(*agents.RegistrationConfig)
	uds, tcp := setting(n, "unix-socket") != nil, setting(n, "address") != nil
	switch {
	case uds == tcp:
		a.d.errorf(n.Pos, "agents.registration needs exactly one of unix-socket and address")
	case tcp && r.TLS == nil:
		a.d.errorf(n.Pos, "agents.registration: a TCP address needs tls { cert-file key-file }")
	}
	if setting(n, "token") == nil && (r.TLS == nil || setting(setting(n, "tls"), "client-ca") == nil) {
		a.d.errorf(n.Pos, "agents.registration needs a token or tls { client-ca } (agents must authenticate)")
	}
	return r
}

// agentFilter maps one filter of type "agent" to an entry of the
// sentinel_agents handler.
func (a *adapter) agentFilter(filterID string, f *kdl.Node) *agents.Filter {
	n := setting(f, "agent")
	if n == nil {
		a.d.errorf(f.Pos, "filter %q: type \"agent\" needs agent \"<id>\"", filterID)
		return nil
	}
	id, ok := a.str(n)
	if !ok {
		return nil
	}
	if a.agents[id] == nil && a.agentReg == nil {
		a.d.errorf(n.Args[0].Pos, "filter %q: agent %q is not defined in agents { }%s", filterID, id, suggest(id, a.agentIDs()))
		return nil
	}
	return agentFilterKey.Map(a, f).(*agents.Filter)
}
