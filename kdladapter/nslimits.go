package kdladapter

import (
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/ratelimit"
	"github.com/sentinel-proxy/sentinel/modules/tenant"
)

// A namespace's or service's `limits { }` applies to its own items: the
// per-item limits (body size, header bytes of its own listeners, its
// upstreams' idle connections, its agents' queue and body limits, the
// per-route rate) of the nearest scope replace the global ones — service
// over namespace over global. The caps shared by several routes (the
// rates max-requests-per-second-global / -per-client and
// max-in-flight-requests) are each scope's own: a service's routes pass
// the global cap, their namespace's and their service's, each with its
// zone. The keys the runtime cannot honour per namespace are warned about
// with the reason.

// nsLimits are the values of a namespace's or service's limits block,
// read once (so that an error is reported once, at its place).
type nsLimits struct {
	bodySize, agentBody                  *int64
	headerSize, idle, agentQueue         *int64
	inFlight                             *int64
	rpsGlobal, rpsPerClient, rpsPerRoute *float64
}

// namespaceLimitsKeys is the limits block of a namespace or service.
func namespaceLimitsKeys() *Key {
	const conns = "connections are accepted before a request says its tenant (and there is no connection limit yet)"
	return h("limits", "the namespace's (service's) limits: per-item ones replace the global ones for its items (service over namespace); rates and max-in-flight-requests are caps of its own, on top of the global ones (docs/multi-tenancy.md#limits)",
		h("max-header-size-bytes", "`max_header_bytes` of the namespace's own listeners (a shared listener reads the headers before it knows the tenant: the global value holds there)"),
		h("max-header-size", "short spelling of max-header-size-bytes"),
		w("max-header-count", "Go's HTTP server limits header bytes, not the count"),
		w("max-header-name-bytes", "covered by max-header-size-bytes"),
		w("max-header-value-bytes", "covered by max-header-size-bytes"),
		h("max-body-size-bytes", "`request_body.max_size` on the namespace's routes"),
		h("max-body-size", "short spelling of max-body-size-bytes"),
		w("max-body-buffer-bytes", "bodies are streamed, not buffered"),
		w("max-body-inspection-bytes", "agent body limits are per agent (`max-request-body-bytes`) or `max-agent-body-bytes`"),
		w("max-decompression-ratio", "the proxy does not decompress request bodies"),
		w("max-decompressed-size-bytes", "the proxy does not decompress request bodies"),
		w("max-connections-per-client", conns),
		w("max-connections-per-route", conns),
		w("max-total-connections", conns),
		w("max-connections", conns),
		h("max-idle-connections-per-upstream", "transport `keep_alive.max_idle_conns_per_host` of the namespace's upstreams"),
		ext(h("max-in-flight-requests", "`sentinel_inflight` (zone \"namespace:<id>\") on the namespace's routes: one count shared by them, 503 above it")),
		w("max-in-flight-requests-per-worker", "no worker model in Go"),
		w("max-queued-requests", "no request queue in Go's server"),
		h("max-agent-queue-depth", "default `pool.queue_depth` of the namespace's agents"),
		h("max-agent-body-bytes", "default `max_request_body_bytes`/`max_response_body_bytes` of the namespace's agents"),
		w("max-agent-response-bytes", "agent frames are bounded by the protocol (16 MiB)"),
		h("max-requests-per-second-global", "`sentinel_rate_limit` (key `global`, zone \"namespace:<id>/limits-global\") on the namespace's routes: the namespace's total; burst = one second's worth"),
		h("max-requests-per-second-per-client", "`sentinel_rate_limit` (key `client-ip`, zone \"namespace:<id>/limits-per-client\") on the namespace's routes; burst = one second's worth"),
		h("max-requests-per-second-per-route", "`sentinel_rate_limit` (key `route`) on each of the namespace's routes, in place of the global one"),
		w("max-memory-bytes", "memory is the process's (GOMEMLIMIT), not a namespace's"),
		w("max-memory-percent", "memory is the process's (GOMEMLIMIT), not a namespace's"),
	)
}

// readLimits reads a scope's limits block (nil without one).
func (a *adapter) readLimits(b *kdl.Node) *nsLimits {
	if b == nil {
		return nil
	}
	l := &nsLimits{}
	first := func(names ...string) *kdl.Node {
		for _, n := range names {
			if s := setting(b, n); s != nil {
				return s
			}
		}
		return nil
	}
	size := func(p **int64, names ...string) {
		if n := first(names...); n != nil {
			if v, ok := a.byteSize(n); ok {
				*p = &v
			}
		}
	}
	integer := func(p **int64, lo, hi int64, name string) {
		if n := setting(b, name); n != nil {
			if v, ok := a.integer(n, lo, hi); ok {
				*p = &v
			}
		}
	}
	rate := func(p **float64, name string) {
		if n := setting(b, name); n != nil {
			if v, ok := a.limitsRate(n); ok {
				*p = &v
			}
		}
	}
	size(&l.bodySize, "max-body-size-bytes", "max-body-size")
	size(&l.agentBody, "max-agent-body-bytes")
	if n := first("max-header-size-bytes", "max-header-size"); n != nil {
		if v, ok := a.integer(n, 1024, 1<<30); ok {
			l.headerSize = &v
		}
	}
	integer(&l.idle, 0, 1<<20, "max-idle-connections-per-upstream")
	integer(&l.agentQueue, 0, 1<<20, "max-agent-queue-depth")
	integer(&l.inFlight, 1, 1<<30, "max-in-flight-requests")
	rate(&l.rpsGlobal, "max-requests-per-second-global")
	rate(&l.rpsPerClient, "max-requests-per-second-per-client")
	rate(&l.rpsPerRoute, "max-requests-per-second-per-route")
	return l
}

// scopeOf returns the namespace or service that qualified id (a route,
// upstream or agent id: "team-a:web", "team-a:billing:db"), nil for a
// global one.
func (a *adapter) scopeOf(id string) *nsScope {
	if a.tenancy == nil {
		return nil
	}
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return nil
	}
	return a.tenancy.scopes[id[:i]]
}

// listenerScope returns the namespace or service a listener serves
// (declared in it, or bound with `namespace "id"`), nil for a global or
// shared one.
func (a *adapter) listenerScope(id string) *nsScope {
	if a.tenancy == nil {
		return nil
	}
	return a.tenancy.scopes[strings.TrimSuffix(a.tenancy.bound[id], ":")]
}

// scopedInt returns the nearest scope's value of an integer limit.
func scopedInt(s *nsScope, get func(*nsLimits) *int64) (int64, bool) {
	for ; s != nil; s = s.parent {
		if s.limits != nil {
			if p := get(s.limits); p != nil {
				return *p, true
			}
		}
	}
	return 0, false
}

// scopedRate returns the nearest scope's value of a rate limit.
func scopedRate(s *nsScope, get func(*nsLimits) *float64) (float64, bool) {
	for ; s != nil; s = s.parent {
		if s.limits != nil {
			if p := get(s.limits); p != nil {
				return *p, true
			}
		}
	}
	return 0, false
}

// scopeCaps are the handlers of the caps of a route's scopes (service,
// then namespace): the rates, then max-in-flight-requests (a request
// refused by a rate does not take an in-flight slot), then the global
// limits' max-in-flight-requests (zone "global": one count over every
// route; a request its namespace refuses takes no global slot).
func (a *adapter) scopeCaps(routeID string) []any {
	var out []any
	for s := a.scopeOf(routeID); s != nil; s = s.parent {
		l := s.limits
		if l == nil {
			continue
		}
		if l.rpsGlobal != nil {
			out = append(out, rateLimitObj(&ratelimit.Handler{Zone: "namespace:" + s.name + "/limits-global", MaxRPS: *l.rpsGlobal, Burst: max(int(*l.rpsGlobal), 1), Key: "global"}))
		}
		if l.rpsPerClient != nil {
			out = append(out, rateLimitObj(&ratelimit.Handler{Zone: "namespace:" + s.name + "/limits-per-client", MaxRPS: *l.rpsPerClient, Burst: max(int(*l.rpsPerClient), 1), Key: "client-ip"}))
		}
	}
	for s := a.scopeOf(routeID); s != nil; s = s.parent {
		if l := s.limits; l != nil && l.inFlight != nil {
			out = append(out, typedObj(&tenant.InFlight{Zone: "namespace:" + s.name, Max: *l.inFlight}, "handler", inFlightHandlerName))
		}
	}
	if n := a.limitSetting("max-in-flight-requests"); n != nil {
		if v, ok := a.integer(n, 1, 1<<30); ok {
			out = append(out, typedObj(&tenant.InFlight{Zone: globalInFlightZone, Max: v}, "handler", inFlightHandlerName))
		}
	}
	return out
}

// globalInFlightZone is the zone of the global limits'
// max-in-flight-requests.
const globalInFlightZone = "global"

// inFlightHandlerName is the in-flight limit's handler name.
var inFlightHandlerName = tenant.InFlight{}.CaddyModule().ID.Name()

// limitsWithoutListeners warns about a scope's max-header-size-bytes
// when no listener of its own takes it.
func (a *adapter) limitsWithoutListeners(scopes []*nsScope) {
	t := a.tenancy
	for _, s := range scopes {
		if s.limits == nil || s.limits.headerSize == nil {
			continue
		}
		own := false
		for _, prefix := range t.bound {
			if prefix == s.name+":" || (s.parent == nil && strings.HasPrefix(prefix, s.name+":")) {
				own = true
				break
			}
		}
		if !own {
			n := setting(s.limitsNode, "max-header-size-bytes")
			if n == nil {
				n = setting(s.limitsNode, "max-header-size")
			}
			a.d.warnf(n.Pos, "namespace.limits."+n.Name, "%s %q has no listener of its own: headers are read before a shared listener knows the tenant, so the global max-header-size-bytes holds", scopeKind(s), s.name)
		}
	}
}
