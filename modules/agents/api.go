package agents

import "time"

// Status is an agent as the control API shows it (GET /api/v1/agents and
// /api/v1/agents/{id}/status).
type Status struct {
	// ID is the agent's id.
	ID string `json:"id"`
	// Source is config (the running configuration's) or live (registered
	// over the registration listener).
	Source string `json:"source"`
	// Transport is uds or grpc.
	Transport string `json:"transport"`
	// Connected is true when at least one connection is up.
	Connected bool `json:"connected"`
	// Connections is the number of connections up.
	Connections int `json:"connections"`
	// Breaker is the circuit breaker's state.
	Breaker string `json:"breaker"`
	// InFlight is the number of calls being made.
	InFlight int `json:"in_flight"`
	// Queue is the number of calls waiting for a slot.
	Queue int `json:"queue"`
	// Draining is true while the agent is being drained.
	Draining bool `json:"draining"`
	// FailureMode is open (requests pass when the agent fails) or closed
	// (they are refused).
	FailureMode string `json:"failure_mode"`
	// Type is the agent's declared type, if any.
	Type string `json:"type,omitempty"`
	// Address is the socket path or address of a configured agent.
	Address string `json:"address,omitempty"`
	// PoolSize is the configured number of connections of a configured
	// agent.
	PoolSize int `json:"pool_size,omitempty"`
	// Events are the events the agent receives.
	Events []string `json:"events"`
	// LastError is the last connection or call error, if any.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when the last error happened (RFC 3339, UTC).
	LastErrorAt string `json:"last_error_at,omitempty"`
	// Dialect is the protocol dialect of a connected agent.
	Dialect string `json:"dialect,omitempty"`
	// AgentName is the name a connected agent gives itself.
	AgentName string `json:"agent_name,omitempty"`
	// AgentVersion is the version a connected agent gives, if any.
	AgentVersion string `json:"agent_version,omitempty"`
	// Health is the connection's health, down when none is connected.
	Health string `json:"health"`
	// PingRTTMs is the last ping's round trip in milliseconds, if known.
	PingRTTMs float64 `json:"ping_rtt_ms,omitempty"`
	// Paused is whether a connected agent asked for a pause; absent when
	// none is connected.
	Paused *bool `json:"paused,omitempty"`
}

// List describes every agent in use, for GET /api/v1/agents and
// /api/v1/agents/{id}/status (the controlapi Agents hook): the running
// config's agents and the live-registered ones, with their state.
func List() []Status {
	out := []Status{}
	seen := map[string]bool{}
	for _, p := range reg.pools() {
		if seen[p.s.id] {
			continue
		}
		seen[p.s.id] = true
		out = append(out, p.status())
	}
	return out
}

// status is the pool's entry in the API.
func (p *pool) status() Status {
	source := "config"
	if p.live {
		source = "live"
	}
	transport, address := "uds", p.s.address
	if p.s.network == "grpc" {
		transport = "grpc"
	}
	p.mu.Lock()
	conns := make([]*connBox, len(p.conns))
	copy(conns, p.conns)
	lastErr, errAt := p.lastErr, p.errAt
	p.mu.Unlock()
	st := Status{
		ID:          p.s.id,
		Source:      source,
		Transport:   transport,
		Connected:   len(conns) > 0,
		Connections: len(conns),
		Breaker:     p.brk.current().String(),
		InFlight:    p.lim.inFlight(),
		Queue:       p.lim.queueDepth(),
		Draining:    p.draining.Load(),
		FailureMode: map[bool]string{true: "closed", false: "open"}[p.s.failClosed],
		Type:        p.s.typ,
		Events:      make([]string, 0, len(p.s.events)),
		Health:      "down",
	}
	if !p.live {
		st.Address = address
		st.PoolSize = p.s.connections
	}
	for _, e := range []string{EventRequestHeaders, EventRequestBody, EventResponseHeaders, EventResponseBody, EventRequestComplete, EventWebSocketFrame, EventGuardrail} {
		if p.s.events[e] {
			st.Events = append(st.Events, e)
		}
	}
	if lastErr != "" {
		st.LastError = lastErr
		st.LastErrorAt = errAt.UTC().Format(time.RFC3339)
	}
	if len(conns) > 0 {
		c := conns[0].c
		info, h := c.Info(), c.Health()
		st.Dialect = info.Dialect.String()
		st.AgentName = info.Capabilities.Name
		st.AgentVersion = info.Capabilities.Version
		st.Health = h.State.String()
		if h.RTT > 0 {
			st.PingRTTMs = float64(h.RTT.Microseconds()) / 1000
		}
		paused := false
		for _, b := range conns {
			paused = paused || b.c.Paused()
		}
		st.Paused = &paused
	}
	return st
}
