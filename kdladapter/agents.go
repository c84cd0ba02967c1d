package kdladapter

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/agents"
	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// agentKeys are the keys of an `agents { agent "id" { … } }` block.
func agentKeys() *Key {
	return h("agent", "an agent of the `sentinel_agents` app (protocol v2 over UDS or gRPC)",
		h("type", "informational (`waf`, `auth`, `rate_limit`, custom); also the `type=` property"),
		h("unix-socket", "`unix_socket`: UDS v2 transport (`unix-socket \"/path\"` or `path=`)"),
		h("grpc", "`grpc`: gRPC v2 transport (`grpc \"http://host:port\"` or `address=`)",
			h("address", "the address, when not an argument"),
			h("tls", "`#true`: TLS to the agent"),
			h("tls-insecure", "TLS without verifying the agent's certificate"),
			h("ca-cert", "CA file of the agent's certificate"),
			h("client-cert", "proxy certificate for mTLS"),
			h("client-key", "key of client-cert"),
			ext(h("server-name", "name checked in the agent's certificate")),
			ext(h("package", "`sentinel.agent.v2` (default) or `zentinel.agent.v2`; the other is tried on Unimplemented")),
		),
		h("http", "refused: protocol v2 has no HTTP transport (as the original)"),
		deprecated(h("transport", "legacy `transport \"unix_socket\" { path … }` form: warning, mapped like unix-socket",
			h("path", "socket path"), h("address", "gRPC address")), "legacy `transport \"unix_socket\" { path … }` / `transport \"grpc\" { address … }` form: warning, mapped like unix-socket / grpc"),
		h("events", "`events`: request_headers, request_body, response_headers, response_body, log/request_complete, websocket_frame, guardrail"),
		h("timeout-ms", "`timeout` of each call (default 1000)"),
		h("chunk-timeout-ms", "`chunk_timeout` of each body-chunk call (default 5000)"),
		h("failure-mode", "`failure_mode` open (default) or closed"),
		h("circuit-breaker", "`circuit_breaker` of the agent",
			h("failure-threshold", "failures in a row that open it (5)"),
			h("success-threshold", "half-open successes that close it (2)"),
			h("timeout-seconds", "open time (30)"),
			h("half-open-max-requests", "probes at a time when half-open (1)"),
		),
		h("max-request-body-bytes", "`max_request_body_bytes` (1 MiB): 413 fail-closed, skipped fail-open"),
		h("max-response-body-bytes", "`max_response_body_bytes` (1 MiB)"),
		h("request-body-mode", "`buffer`, `stream`, `hybrid` or `hybrid:<bytes>`"),
		h("response-body-mode", "`buffer`, `stream`, `hybrid` or `hybrid:<bytes>`"),
		ext(h("chunk-size-bytes", "largest body chunk sent in stream mode (64 KiB)")),
		h("max-concurrent-calls", "`max_concurrent_calls`: the agent's own concurrency limit (100)"),
		open(h("config", "delivered to the agent (handshake and Configure event) as JSON; `k (list)\"v\"` is a one-element list")),
		w("protocol-version", "deprecated no-op: protocol v2 is always spoken"),
		ext(h("pool", "connection pool of the agent (hard-coded in the original)",
			h("connections", "connections to the agent (4)"),
			h("connect-timeout-ms", "connect + handshake timeout (5000)"),
			h("reconnect-backoff-ms", "first reconnect wait, doubled up to max-reconnect-backoff-ms (5000)"),
			h("max-reconnect-backoff-ms", "largest reconnect wait (30000)"),
			h("queue-depth", "calls that may wait for a free slot (limits.max-agent-queue-depth, 100); more fail at once"),
			h("health-check-interval-ms", "ping interval (10000)"),
			h("drain-timeout-ms", "in-flight calls finish within it on reload/removal (30000)"),
		)),
	)
}

// registrationKeys are the keys of the live registration listener.
func registrationKeys() *Key {
	return ext(h("registration", "live agent registration listener: agents connect to the proxy",
		h("unix-socket", "Unix socket path (mode 0600)"),
		h("address", "TCP address (needs tls)"),
		h("tls", "TLS of the TCP listener",
			h("cert-file", "server certificate"),
			h("key-file", "server key"),
			h("client-ca", "CA of agent client certificates (mTLS identity = certificate CN / DNS name = agent id)"),
		),
		h("token", "accepted token (repeatable); only its SHA-256 goes into the Caddy JSON (`token_sha256`), compared in constant time, never logged"),
		h("allowed-agents", "agent ids that may register (default: any id that is not a configured agent's)"),
		h("allow-configured-ids", "`#true`: a live agent may register with the id of a configured agent and share its traffic (default: refused)"),
		h("timeout-ms", "registration + handshake timeout (10000)"),
		open(h("defaults", "settings of live agents, as in `agent { }` (timeout-ms, failure-mode, events…)")),
	))
}

// agentsBlock is the whole `agents { }` block.
func agentsBlock() *Key {
	return h("agents", "`sentinel_agents` app: agents used by filters of type \"agent\"", agentKeys(), registrationKeys())
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

// mapAgents builds the `sentinel_agents` app, or nil without agents.
func (a *adapter) mapAgents() obj {
	if len(a.agents) == 0 && a.agentReg == nil {
		return nil
	}
	app := obj{}
	var list []obj
	for _, id := range a.agentIDs() {
		if m := a.mapAgent(id, a.agents[id]); m != nil {
			list = append(list, m)
		}
	}
	if len(list) > 0 {
		app["agents"] = list
	}
	if a.agentReg != nil {
		if r := a.mapRegistration(a.agentReg); r != nil {
			app["registration"] = r
		}
	}
	return app
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
func (a *adapter) mapAgent(id string, n *kdl.Node) obj {
	out := obj{"id": id}
	if v, ok := n.Prop("type"); ok && v.Kind == kdl.KindString {
		out["type"] = v.Str
	}
	transports := 0
	for _, c := range n.Children {
		switch c.Name {
		case "type":
			if s, ok := a.str(c); ok {
				out["type"] = s
			}
		case "unix-socket":
			transports++
			if s, ok := a.propOrArg(c, "path"); ok {
				out["unix_socket"] = s
			}
		case "grpc":
			transports++
			a.mapAgentGRPC(c, out)
		case "http":
			transports++
			a.d.errorf(c.Pos, "agent %q: the http transport does not exist in protocol v2 (the original refuses it at start); use unix-socket or grpc", id)
		case "transport":
			transports++
			kind, _ := a.str(c)
			a.d.warnf(c.Pos, "agents.agent.transport", "agent %q: `transport %q { … }` is a legacy form the original never parsed; write unix-socket \"/path\" or grpc \"http://host:port\"", id, kind)
			switch strings.ReplaceAll(strings.ToLower(kind), "-", "_") {
			case "unix_socket", "uds", "unix":
				if p := setting(c, "path"); p != nil {
					out["unix_socket"], _ = a.str(p)
				} else {
					a.d.errorf(c.Pos, "agent %q: transport %q needs path", id, kind)
				}
			case "grpc":
				if p := setting(c, "address"); p != nil {
					out["grpc"], _ = a.str(p)
				} else {
					a.d.errorf(c.Pos, "agent %q: transport %q needs address", id, kind)
				}
			default:
				a.d.errorf(c.Pos, "agent %q: transport %q is not unix_socket or grpc", id, kind)
			}
		case "events":
			var evs []string
			for _, s := range a.strs(c) {
				e := strings.ReplaceAll(strings.ToLower(s), "-", "_")
				if e == "log" {
					e = "request_complete"
				}
				if ev, ok := a.oneOf(c, e, "request_headers", "request_body", "response_headers", "response_body", "request_complete", "websocket_frame", "guardrail"); ok {
					evs = append(evs, ev)
					if ev == "websocket_frame" || ev == "guardrail" {
						a.d.warnf(c.Pos, "agents.agent.events", "agent %q: %s events are not sent yet (WebSocket frame inspection and guardrails are not built)", id, ev)
					}
				}
			}
			out["events"] = evs
		case "timeout-ms":
			if d, ok := a.millis(c); ok {
				out["timeout"] = d
			}
		case "chunk-timeout-ms":
			if d, ok := a.millis(c); ok {
				out["chunk_timeout"] = d
			}
		case "failure-mode":
			if m, ok := a.failureMode(c); ok {
				out["failure_mode"] = m
			}
		case "circuit-breaker":
			cb := obj{}
			for _, k := range [][2]string{{"failure-threshold", "failure_threshold"}, {"success-threshold", "success_threshold"}, {"half-open-max-requests", "half_open_max_requests"}} {
				if x := setting(c, k[0]); x != nil {
					if v, ok := a.integer(x, 1, 1<<20); ok {
						cb[k[1]] = v
					}
				}
			}
			if x := setting(c, "timeout-seconds"); x != nil {
				if d, ok := a.seconds(x); ok {
					cb["timeout"] = d
				}
			}
			out["circuit_breaker"] = cb
		case "max-request-body-bytes", "max-response-body-bytes", "chunk-size-bytes":
			if sz, ok := a.byteSize(c); ok {
				out[map[string]string{"max-request-body-bytes": "max_request_body_bytes", "max-response-body-bytes": "max_response_body_bytes", "chunk-size-bytes": "chunk_bytes"}[c.Name]] = sz
			}
		case "request-body-mode", "response-body-mode":
			if m, ok := a.bodyMode(c); ok {
				out[strings.ReplaceAll(c.Name, "-", "_")] = m
			}
		case "max-concurrent-calls":
			if v, ok := a.integer(c, 1, 1<<20); ok {
				out["max_concurrent_calls"] = v
			}
		case "config":
			out["config"] = kdlObject(c)
		case "pool":
			if p := a.mapAgentPool(c); len(p) > 0 {
				out["pool"] = p
			}
		}
	}
	if transports == 0 {
		a.d.errorf(n.Pos, "agent %q needs a transport: unix-socket \"/path\" or grpc \"http://host:port\"", id)
	} else if transports > 1 {
		a.d.errorf(n.Pos, "agent %q: give one transport (unix-socket or grpc)", id)
	}
	// limits { } give the defaults the agent block does not set.
	pool, _ := out["pool"].(obj)
	if _, ok := pool["queue_depth"]; !ok {
		if x := a.limitSetting("max-agent-queue-depth"); x != nil {
			if v, ok := a.integer(x, 0, 1<<20); ok {
				if pool == nil {
					pool = obj{}
				}
				pool["queue_depth"] = v
				out["pool"] = pool
			}
		}
	}
	if x := a.limitSetting("max-agent-body-bytes"); x != nil {
		if sz, ok := a.byteSize(x); ok {
			for _, k := range []string{"max_request_body_bytes", "max_response_body_bytes"} {
				if _, set := out[k]; !set {
					out[k] = sz
				}
			}
		}
	}
	return out
}

// mapAgentGRPC maps `grpc "url" { tls … }`.
func (a *adapter) mapAgentGRPC(c *kdl.Node, out obj) {
	addr, ok := a.propOrArg(c, "address")
	if !ok {
		return
	}
	tls := obj{}
	secure := strings.HasPrefix(addr, "https://")
	for _, k := range c.Children {
		switch k.Name {
		case "tls":
			if b, ok := a.boolean(k); ok {
				secure = secure || b
			}
		case "tls-insecure":
			if b, ok := a.boolean(k); ok && b {
				secure = true
				tls["insecure"] = true
			}
		case "ca-cert", "client-cert", "client-key", "server-name":
			if s, ok := a.str(k); ok {
				tls[strings.ReplaceAll(k.Name, "-", "_")] = s
			}
		case "package":
			if s, ok := a.str(k); ok {
				if p, ok := a.oneOf(k, s, "sentinel.agent.v2", "zentinel.agent.v2"); ok {
					out["grpc_package"] = p
				}
			}
		}
	}
	if secure && len(tls) == 0 {
		tls["insecure"] = false
	}
	if secure && strings.HasPrefix(addr, "http://") {
		addr = "https://" + strings.TrimPrefix(addr, "http://")
	}
	out["grpc"] = addr
	if len(tls) > 0 {
		out["tls"] = tls
	}
}

// mapAgentPool maps the pool block.
func (a *adapter) mapAgentPool(c *kdl.Node) obj {
	p := obj{}
	for _, k := range c.Children {
		switch k.Name {
		case "connections":
			if v, ok := a.integer(k, 1, 1024); ok {
				p["connections"] = v
			}
		case "queue-depth":
			if v, ok := a.integer(k, 0, 1<<20); ok {
				p["queue_depth"] = v
			}
		case "connect-timeout-ms", "reconnect-backoff-ms", "max-reconnect-backoff-ms", "health-check-interval-ms", "drain-timeout-ms":
			if d, ok := a.millis(k); ok {
				p[strings.ReplaceAll(strings.TrimSuffix(k.Name, "-ms"), "-", "_")] = d
			}
		}
	}
	return p
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
func (a *adapter) mapRegistration(n *kdl.Node) obj {
	r := obj{}
	for _, c := range n.Children {
		switch c.Name {
		case "unix-socket":
			r["unix_socket"], _ = a.str(c)
		case "address":
			r["address"], _ = a.str(c)
		case "tls":
			t := obj{}
			for _, k := range c.Children {
				if s, ok := a.str(k); ok {
					t[strings.ReplaceAll(k.Name, "-", "_")] = s
				}
			}
			r["tls"] = t
		case "token":
			// Only the hash goes into the JSON: the adapted config is
			// shown, saved and sent around; the token is not.
			sums, _ := r["token_sha256"].([]string)
			for _, t := range a.strs(c) {
				if t == "" {
					a.d.errorf(c.Pos, "agents.registration: token is empty")
					continue
				}
				sum := sha256.Sum256([]byte(t))
				sums = append(sums, hex.EncodeToString(sum[:]))
			}
			r["token_sha256"] = sums
		case "allow-configured-ids":
			if b, ok := a.boolean(c); ok && b {
				r["allow_configured_ids"] = true
			}
		case "allowed-agents":
			r["allowed_agents"] = a.strs(c)
		case "timeout-ms":
			if d, ok := a.millis(c); ok {
				r["timeout"] = d
			}
		case "defaults":
			a.checkBlock(c, agentKeys(), "agents.registration.defaults")
			d := a.mapAgent("*", &kdl.Node{Name: "agent", Pos: c.Pos, Children: append([]*kdl.Node{{Name: "unix-socket", Pos: c.Pos, Args: []kdl.Value{{Kind: kdl.KindString, Str: "-"}}}}, c.Children...)})
			delete(d, "id")
			delete(d, "unix_socket")
			r["defaults"] = d
		}
	}
	_, uds := r["unix_socket"]
	_, tcp := r["address"]
	_, tlsOK := r["tls"]
	switch {
	case uds == tcp:
		a.d.errorf(n.Pos, "agents.registration needs exactly one of unix-socket and address")
	case tcp && !tlsOK:
		a.d.errorf(n.Pos, "agents.registration: a TCP address needs tls { cert-file key-file }")
	}
	if _, ok := r["token_sha256"]; !ok {
		if t, _ := r["tls"].(obj); t["client_ca"] == nil {
			a.d.errorf(n.Pos, "agents.registration needs a token or tls { client-ca } (agents must authenticate)")
		}
	}
	return r
}

// agentFilter maps one filter of type "agent" to an entry of the
// sentinel_agents handler.
func (a *adapter) agentFilter(filterID string, f *kdl.Node) obj {
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
	return typedObj(agentFilterKey.Map(a, f), "", "")
}
