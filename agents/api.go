package agents

import "time"

// List describes every agent in use, for GET /api/v1/agents and
// /api/v1/agents/{id}/status (the controlapi Agents hook): the running
// config's agents and the live-registered ones, with their state.
func List() []map[string]any {
	var out []map[string]any
	seen := map[string]bool{}
	for _, p := range reg.pools() {
		if seen[p.s.id] {
			continue
		}
		seen[p.s.id] = true
		out = append(out, p.status())
	}
	if out == nil {
		out = []map[string]any{}
	}
	return out
}

// status is the pool's entry in the API.
func (p *pool) status() map[string]any {
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
	m := map[string]any{
		"id":           p.s.id,
		"source":       source,
		"transport":    transport,
		"connected":    len(conns) > 0,
		"connections":  len(conns),
		"breaker":      p.brk.current().String(),
		"in_flight":    p.lim.inFlight(),
		"queue":        p.lim.queueDepth(),
		"draining":     p.draining.Load(),
		"failure_mode": map[bool]string{true: "closed", false: "open"}[p.s.failClosed],
	}
	if p.s.typ != "" {
		m["type"] = p.s.typ
	}
	if !p.live {
		m["address"] = address
		m["pool_size"] = p.s.connections
	}
	events := make([]string, 0, len(p.s.events))
	for _, e := range []string{EventRequestHeaders, EventRequestBody, EventResponseHeaders, EventResponseBody, EventRequestComplete, EventWebSocketFrame, EventGuardrail} {
		if p.s.events[e] {
			events = append(events, e)
		}
	}
	m["events"] = events
	if lastErr != "" {
		m["last_error"] = lastErr
		m["last_error_at"] = errAt.UTC().Format(time.RFC3339)
	}
	if len(conns) > 0 {
		c := conns[0].c
		info, h := c.Info(), c.Health()
		m["dialect"] = info.Dialect.String()
		m["agent_name"] = info.Capabilities.Name
		if info.Capabilities.Version != "" {
			m["agent_version"] = info.Capabilities.Version
		}
		m["health"] = h.State.String()
		if h.RTT > 0 {
			m["ping_rtt_ms"] = float64(h.RTT.Microseconds()) / 1000
		}
		paused := false
		for _, b := range conns {
			paused = paused || b.c.Paused()
		}
		m["paused"] = paused
	} else {
		m["health"] = "down"
	}
	return m
}
