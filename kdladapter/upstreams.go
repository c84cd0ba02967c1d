package kdladapter

import (
	"encoding/json"
	"net"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/adaptive"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
	"github.com/sentinel-proxy/sentinel/modules/upstreamsource"
	"github.com/sentinel-proxy/sentinel/registry"
)

// upstreamBase is the part of a reverse_proxy handler that comes from the
// upstream block; routes add retries and timeouts to a copy of it. The
// targets and the active health check go to the sentinel app's registry.
type upstreamBase struct {
	targets []registry.TargetSpec
	// policy is the selection policy's JSON (see lbPolicy), policyName
	// its module name ("" without a policy).
	policy     json.RawMessage
	policyName string
	// passive is the circuit breaker.
	passive *reverseproxy.PassiveHealthChecks
	// active is the sentinel app's health check (see healthChecks).
	active *sentinelapp.HealthCheck
	// discovery is the upstream's sentinel.discovery module (see
	// discovery.go), nil without one.
	discovery json.RawMessage
	// transport is the adaptive package's Transport, written once
	// (transportJSON); the routes that change its timeouts replace its
	// members (transportWith).
	transport json.RawMessage
	// source is the handler's dynamic upstreams (the sentinel source,
	// appendSourceJSON), health its health_checks (the passive ones) and
	// untried the policy wrapped for retries (sentinel_untried, made
	// for the first route that needs it): shared by the routes, written
	// once.
	source, health, untried json.RawMessage
	// released marks a base whose routes are all mapped: only what the
	// sentinel app needs (targets, active) is kept (see releaseBase).
	released bool
}

// lbNames maps every accepted load-balancing name (lower case) to the
// algorithm. Both the underscore names of the original's parser and the
// hyphenated names of its documentation are accepted.
var lbNames = map[string]string{
	"round_robin": "round_robin", "roundrobin": "round_robin", "round-robin": "round_robin",
	"weighted": "weighted", "weighted_round_robin": "weighted", "weighted-round-robin": "weighted",
	"least_connections": "least_connections", "leastconnections": "least_connections", "least-connections": "least_connections",
	"least_conn": "least_connections", "least-conn": "least_connections",
	"random":  "random",
	"ip_hash": "ip_hash", "iphash": "ip_hash", "ip-hash": "ip_hash",
	"consistent_hash": "consistent_hash", "consistenthash": "consistent_hash", "consistent-hash": "consistent_hash",
	"power_of_two_choices": "p2c", "p2c": "p2c", "power-of-two-choices": "p2c",
	"adaptive":            "adaptive",
	"least_tokens_queued": "least_tokens_queued", "leasttokensqueued": "least_tokens_queued", "least_tokens": "least_tokens_queued",
	"least-tokens-queued": "least_tokens_queued", "least-tokens": "least_tokens_queued",
	"maglev":         "maglev",
	"locality_aware": "locality_aware", "localityaware": "locality_aware", "locality": "locality_aware", "locality-aware": "locality_aware",
	"peak_ewma": "peak_ewma", "peakewma": "peak_ewma", "ewma": "peak_ewma", "peak-ewma": "peak_ewma",
	"deterministic_subset": "deterministic_subset", "subset": "deterministic_subset", "subsetting": "deterministic_subset",
	"deterministic-subset":       "deterministic_subset",
	"weighted_least_connections": "weighted_least_connections", "weighted_least_conn": "weighted_least_connections",
	"wlc": "weighted_least_connections", "weighted-least-connections": "weighted_least_connections",
	"sticky": "sticky", "sticky_session": "sticky", "stickysession": "sticky", "sticky-session": "sticky",
}

// LoadBalancingNames lists the accepted names, sorted.
func LoadBalancingNames() []string {
	out := make([]string, 0, len(lbNames))
	for n := range lbNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// lbCaddy maps the algorithms Caddy has to its selection policies; the
// others are not yet available.
var lbCaddy = map[string]string{
	"round_robin": "round_robin", "weighted": "sentinel_weighted", "least_connections": "least_conn",
	"random": "random", "ip_hash": "client_ip_hash", "sticky": "cookie",
	"p2c": "p2c", "adaptive": "adaptive", "peak_ewma": "peak_ewma",
	"weighted_least_connections": "weighted_least_connections", "consistent_hash": "consistent_hash",
	"maglev": "maglev", "locality_aware": "locality_aware", "deterministic_subset": "deterministic_subset",
}

// caddyPolicies are the selection policies of lbCaddy that are Caddy's
// own (the others are the adaptive package's).
var caddyPolicies = map[string]bool{
	"round_robin": true, "least_conn": true, "random": true, "client_ip_hash": true, "cookie": true,
}

// weightsFromRegistry are the policies that read live weights from the
// registry (so that weights changed through the API apply at once).
var weightsFromRegistry = map[string]bool{
	"weighted": true, "adaptive": true, "peak_ewma": true, "p2c": true, "weighted_least_connections": true,
	"consistent_hash": true, "maglev": true, "locality_aware": true, "deterministic_subset": true,
}

// guestPolicies are the algorithms locality_aware's fallback and
// deterministic_subset's inner policy can name in KDL.
var guestPolicies = []string{"round_robin", "random", "least_connections", "ip_hash", "p2c"}

// maxTunable bounds the integer tunables of the load-balancing policies.
const maxTunable = 1 << 20

// lbPolicies declares, for each algorithm with settings, the block
// `load-balancing "<name>" { … }`: its keys and their mapping onto the
// adaptive package's policy struct (whose JSON tags name the output keys).
//
// The declaration is built once: its keys and mappers are not changed
// after.
var lbPolicyKeys = lbPolicies()

func lbPolicies() map[string]*Key {
	const where = "load-balancing "
	return map[string]*Key{
		"peak_ewma": typedBlock(h("peak_ewma", "`peak_ewma` selection policy"),
			durationField("decay-time", "", func(p *adaptive.PeakEWMA) *caddy.Duration { return &p.DecayTime }),
			durationField("default-rtt", "", func(p *adaptive.PeakEWMA) *caddy.Duration { return &p.DefaultRTT }),
			optBoolField("penalize-failures", "", func(p *adaptive.PeakEWMA) **bool { return &p.PenalizeFailures }),
			durationField("failure-penalty", "", func(p *adaptive.PeakEWMA) *caddy.Duration { return &p.FailurePenalty }),
			durationField("max-retry-after", "", func(p *adaptive.PeakEWMA) *caddy.Duration { return &p.MaxRetryAfter }),
			intField("choices", "", -1, maxTunable, func(p *adaptive.PeakEWMA) *int { return &p.Choices }),
		),
		"adaptive": typedBlock(h("adaptive", "`adaptive` selection policy"),
			durationField("adjustment-interval", "", func(p *adaptive.Adaptive) *caddy.Duration { return &p.AdjustmentInterval }),
			floatField("min-weight-ratio", "", func(p *adaptive.Adaptive) *float64 { return &p.MinWeightRatio }),
			floatField("max-weight-ratio", "", func(p *adaptive.Adaptive) *float64 { return &p.MaxWeightRatio }),
			floatField("error-threshold", "", func(p *adaptive.Adaptive) *float64 { return &p.ErrorThreshold }),
			durationField("latency-threshold", "", func(p *adaptive.Adaptive) *caddy.Duration { return &p.LatencyThreshold }),
			floatField("latency-ratio", "", func(p *adaptive.Adaptive) *float64 { return &p.LatencyRatio }),
			floatField("ewma-alpha", "", func(p *adaptive.Adaptive) *float64 { return &p.EWMAAlpha }),
			floatField("recovery-factor", "", func(p *adaptive.Adaptive) *float64 { return &p.RecoveryFactor }),
			floatField("penalty-rate", "", func(p *adaptive.Adaptive) *float64 { return &p.PenaltyRate }),
			intField("min-requests", "", -1, maxTunable, func(p *adaptive.Adaptive) *int { return &p.MinRequests }),
			intField("max-carry-over", "", -1, maxTunable, func(p *adaptive.Adaptive) *int { return &p.MaxCarryOver }),
			intField("breaker-failures", "", -1, maxTunable, func(p *adaptive.Adaptive) *int { return &p.BreakerFailures }),
			intField("breaker-successes", "", -1, maxTunable, func(p *adaptive.Adaptive) *int { return &p.BreakerSuccesses }),
			durationField("breaker-timeout", "", func(p *adaptive.Adaptive) *caddy.Duration { return &p.BreakerTimeout }),
			boolField("disable-breaker", "", func(p *adaptive.Adaptive) *bool { return &p.DisableBreaker }),
		),
		"p2c": typedBlock(h("p2c", "`p2c` selection policy"),
			stringField("load-metric", "", func(p *adaptive.P2C) *string { return &p.LoadMetric }),
			intField("choices", "", -1, maxTunable, func(p *adaptive.P2C) *int { return &p.Choices }),
			durationField("latency-window", "", func(p *adaptive.P2C) *caddy.Duration { return &p.LatencyWindow }),
			optBoolField("penalize-failures", "", func(p *adaptive.P2C) **bool { return &p.PenalizeFailures }),
			durationField("failure-penalty", "", func(p *adaptive.P2C) *caddy.Duration { return &p.FailurePenalty }),
			durationField("max-retry-after", "", func(p *adaptive.P2C) *caddy.Duration { return &p.MaxRetryAfter }),
		),
		"weighted_least_connections": typedBlock(h("weighted_least_connections", "`weighted_least_connections` selection policy"),
			stringField("tie-breaker", "", func(p *adaptive.WeightedLeastConnections) *string { return &p.TieBreaker }),
		),
		"consistent_hash": typedBlock(h("consistent_hash", "`consistent_hash` selection policy"),
			stringField("key", "", func(p *adaptive.ConsistentHash) *string { return &p.Key }),
			stringField("key-name", "", func(p *adaptive.ConsistentHash) *string { return &p.KeyName }),
			intField("vnodes", "", -1, maxTunable, func(p *adaptive.ConsistentHash) *int { return &p.VNodes }),
			stringField("hash", "", func(p *adaptive.ConsistentHash) *string { return &p.Hash }),
			floatField("load-factor", "", func(p *adaptive.ConsistentHash) *float64 { return &p.LoadFactor }),
			boolField("unbounded", "", func(p *adaptive.ConsistentHash) *bool { return &p.Unbounded }),
		),
		"maglev": typedBlock(h("maglev", "`maglev` selection policy"),
			stringField("key", "", func(p *adaptive.Maglev) *string { return &p.Key }),
			stringField("key-name", "", func(p *adaptive.Maglev) *string { return &p.KeyName }),
			intField("table-size", "", -1, maxTunable, func(p *adaptive.Maglev) *int { return &p.TableSize }),
		),
		"locality_aware": typedBlock(h("locality_aware", "`locality_aware` selection policy"),
			stringField("zone", "", func(p *adaptive.LocalityAware) *string { return &p.Zone }),
			guestField("fallback", "a guest policy, or `none`", where+`"locality_aware"`, strings.Join(guestPolicies, ", ")+" or none",
				func(name string) json.RawMessage { return guestPolicy(name, true) },
				func(p *adaptive.LocalityAware) *json.RawMessage { return &p.FallbackRaw }),
			stringsField("zone-priority", "", func(p *adaptive.LocalityAware) *[]string { return &p.ZonePriority }),
		),
		"sticky": typedBlockInit(h("sticky", "Caddy's `cookie` selection policy"),
			func(p *reverseproxy.CookieHashSelection) {
				p.Name, p.MaxAge = "SERVERID", caddy.Duration(time.Hour)
				p.FallbackRaw = guestModule("policy", "round_robin")
			},
			stringField("cookie-name", "", func(p *reverseproxy.CookieHashSelection) *string { return &p.Name }),
			durationField("cookie-ttl", "", func(p *reverseproxy.CookieHashSelection) *caddy.Duration { return &p.MaxAge }),
			guestField("fallback", "a guest policy", where+`"sticky"`, strings.Join(guestPolicies, ", "),
				func(name string) json.RawMessage { return guestPolicy(name, false) },
				func(p *reverseproxy.CookieHashSelection) *json.RawMessage { return &p.FallbackRaw }),
			field[reverseproxy.CookieHashSelection]{key: w("cookie-path", "Caddy's cookie has Path=/")},
			field[reverseproxy.CookieHashSelection]{key: w("cookie-same-site", "Caddy's cookie has SameSite=Lax")},
			field[reverseproxy.CookieHashSelection]{key: w("cookie-secure", "Caddy marks the cookie Secure on HTTPS requests")},
		),
		"deterministic_subset": typedBlock(h("deterministic_subset", "`deterministic_subset` selection policy"),
			intField("subset-size", "", -1, maxTunable, func(p *adaptive.DeterministicSubset) *int { return &p.SubsetSize }),
			stringField("proxy-id", "", func(p *adaptive.DeterministicSubset) *string { return &p.ProxyID }),
			guestField("inner", "a guest policy", where+`"deterministic_subset"`, strings.Join(guestPolicies, ", "),
				func(name string) json.RawMessage { return guestPolicy(name, false) },
				func(p *adaptive.DeterministicSubset) *json.RawMessage { return &p.InnerRaw }),
		),
	}
}

// targetKey declares a target's block form (`target { address "…";
// weight 2 }`): a registry.TargetSpec. Its one-line form (`target "…"
// weight=2`) is read by base.
var targetKey = typedBlock(h("target", "one target"),
	stringField("address", "host:port", func(t *registry.TargetSpec) *string { return &t.Address }),
	intField("weight", "1 to 1048576 (default 1)", 1, maxWeight, func(t *registry.TargetSpec) *int { return &t.Weight }),
	field[registry.TargetSpec]{key: open(h("metadata", "informational labels"))},
)

// maxWeight is the largest target weight (registry.MaxWeight); a weight
// is 1 to maxWeight, 1 when absent.
const maxWeight = 1 << 20

// base maps an upstream block once.
func (a *adapter) base(u *kdl.Node) *upstreamBase {
	id := u.Args[0].Str
	if a.proxies == nil {
		a.proxies = make(map[string]*upstreamBase, len(a.upstreams))
	}
	if b := a.proxies[id]; b != nil {
		if !b.released {
			return b
		}
		// Used again after its last counted use (which releaseBase
		// should make impossible): mapped again, without reporting its
		// problems twice.
		saved := *a.d
		defer func() { *a.d = saved }()
	}
	// From a slab of the adapter: one allocation for many upstreams
	// (every base stays in a.proxies to the end).
	if len(a.baseSlab) == 0 {
		a.baseSlab = make([]upstreamBase, baseSlabSize)
	}
	b := &a.baseSlab[0]
	a.baseSlab = a.baseSlab[1:]
	a.proxies[id] = b
	u = a.load(u, "upstreams")
	// b keeps nothing of the upstream's tree (values and strings
	// only): its memory is reused for the next.
	defer a.reparse.Release(u)

	// The targets' weights, for loadBalancing only: in a slice the
	// adapter reuses from upstream to upstream.
	weights := a.weights[:0]
	if n := countTargets(u); n > 0 {
		b.targets = make([]registry.TargetSpec, 0, n)
	}
	var zones obj // made for the first zone
	addTarget := func(addrNode *kdl.Node, addr string, pos kdl.Position, weight int64) {
		// The original's zone prefixes (locality-aware): "zone=Z,host:port"
		// or "Z/host:port". Caddy cannot dial them: the address loses the
		// prefix and the zone goes to the policy's zones map.
		if zone, rest, ok := splitZone(addr); ok {
			if zone == "" {
				a.d.errorf(pos, "upstream %q: target %q has an empty zone", id, addr)
				return
			}
			addr = rest
			if zones == nil {
				zones = obj{}
			}
			zones[addr] = zone
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			a.d.errorf(pos, "upstream %q: target %q must be host:port, e.g. \"127.0.0.1:8081\"", id, addr)
			return
		}
		// The registry's rule, the same as the API's.
		if err := registry.ValidateTarget(registry.Target{Address: addr, Weight: int(weight)}); err != nil {
			a.d.errorf(pos, "upstream %q: target %s", id, strings.TrimSuffix(err.Error(), ": "+registry.ErrInvalid.Error()))
			return
		}
		t := registry.TargetSpec{Address: addr}
		if weight != 1 {
			t.Weight = int(weight)
		}
		b.targets = append(b.targets, t)
		weights = append(weights, weight)
	}
	readTarget := func(t *kdl.Node) {
		addr, weight := "", int64(1)
		pos := t.Pos
		if len(t.Args) > 0 {
			if t.Args[0].Kind != kdl.KindString {
				a.d.errorf(t.Args[0].Pos, "upstream %q: target address must be a string", id)
				return
			}
			addr, pos = t.Args[0].Str, t.Args[0].Pos
		}
		if v, ok := t.Prop("address"); ok && v.Kind == kdl.KindString {
			addr, pos = v.Str, v.Pos
		}
		if v, ok := t.Prop("weight"); ok {
			if w, ok := v.AsInt64(); ok && w >= 1 && w <= maxWeight {
				weight = w
			} else {
				a.d.errorf(v.Pos, "upstream %q: weight must be an integer between 1 and %d, not %s", id, maxWeight, v)
			}
		}
		for _, p := range t.Props() {
			if p.Name != "address" && p.Name != "weight" {
				a.d.errorf(p.Pos, "upstream %q: unknown target property %q%s", id, p.Name, suggest(p.Name, []string{"address", "weight"}))
			}
		}
		// The block form's settings (targetKey); they win over the
		// arguments and properties.
		if len(t.Children) == 0 {
			// The one-line form: nothing to map.
		} else if spec := targetKey.Map(a, t).(*registry.TargetSpec); spec.Address != "" || spec.Weight != 0 {
			if spec.Address != "" {
				addr, pos = spec.Address, setting(t, "address").Args[0].Pos
			}
			if spec.Weight != 0 {
				weight = int64(spec.Weight)
			}
		}
		if addr == "" {
			a.d.errorf(t.Pos, "upstream %q: target needs an address", id)
			return
		}
		addTarget(t, addr, pos, weight)
	}
	for _, c := range u.Children {
		switch c.Name {
		case "target":
			readTarget(c)
		case "targets":
			for _, t := range c.Children {
				if t.Name == "target" {
					readTarget(t)
				} else {
					a.d.errorf(t.Pos, "unknown setting %q in upstreams.upstream.targets (did you mean \"target\"?)", t.Name)
				}
			}
		case "address":
			if s, ok := a.str(c); ok {
				addTarget(c, s, c.Args[0].Pos, 1)
			}
		}
	}
	b.discovery = a.discovery(id, setting(u, "discovery"))
	if len(b.targets) == 0 && setting(u, "discovery") == nil {
		a.d.errorf(u.Pos, "upstream %q has no target: add target \"host:port\" (or a discovery block)", id)
	}

	p := a.loadBalancing(id, setting(u, "load-balancing"), weights)
	a.weights = weights[:0]
	if len(zones) > 0 {
		if p.typed != nil && p.name == "locality_aware" {
			p.typed["zones"] = zones
		} else {
			a.d.warnf(u.Pos, "upstreams.upstream.target", "upstream %q: target zones are only used by load-balancing \"locality-aware\"; the prefixes were removed", id)
		}
	}
	if p.name != "" {
		a.baseJSON.scratch = p.appendTo(a.baseJSON.scratch[:0])
		b.policy, b.policyName = a.baseJSON.add(a.baseJSON.scratch), p.name
	}
	b.active = a.healthChecks(id, u)
	if cb := setting(u, "circuit-breaker"); cb != nil {
		b.passive = circuitBreakerKey.Map(a, cb).(*reverseproxy.PassiveHealthChecks)
		a.noteBreaker(id, cb.Pos, b.targets) // nsbreakers.go
	}
	t := a.transport(id, u)
	if tc := t.TLS; tc != nil && b.active != nil {
		// Health checks speak TLS to a TLS upstream, as the proxy does.
		ht := &sentinelapp.HealthTLS{ServerName: tc.ServerName, InsecureSkipVerify: tc.InsecureSkipVerify}
		var ca caddytls.FileCAPool
		if tc.CARaw != nil && json.Unmarshal(tc.CARaw, &ca) == nil && len(ca.TrustedCACertPEMFiles) > 0 {
			ht.CAFile = ca.TrustedCACertPEMFiles[0]
		}
		b.active.TLS = ht
	}
	// Written with the transport's own type, without building a tree
	// of maps (the routes that change its timeouts replace members of
	// it, see transportWith). The upstreams' small JSON parts are kept
	// in the chunks of a.baseJSON, not one allocation each.
	a.baseJSON.scratch = transportJSON.append(a.baseJSON.scratch[:0], t)
	b.transport = a.baseJSON.add(a.baseJSON.scratch)
	// upstreamsource.Source, written without encoding/json.
	a.baseJSON.scratch = appendSourceJSON(a.baseJSON.scratch[:0], id)
	b.source = a.baseJSON.add(a.baseJSON.scratch)
	if b.passive != nil {
		b.health = encode(nil, a.typedTree(reverseproxy.HealthChecks{Passive: b.passive}))
	}
	return b
}

// baseSlabSize is the number of upstreamBases base allocates at once.
const baseSlabSize = 128

// countTargets is the number of targets upstream u declares (its
// targets' capacity), a few more when some are in error.
func countTargets(u *kdl.Node) int {
	n := 0
	for _, c := range u.Children {
		switch c.Name {
		case "target", "address":
			n++
		case "targets":
			n += len(c.Children)
		}
	}
	return n
}

// appendSourceJSON writes into b the dynamic upstreams of a proxy to
// upstream id, as the encoder wrote obj{sourceInlineKey: sourceModule,
// sourceUpstreamKey: id} (keys in order), without a map.
func appendSourceJSON(b []byte, id string) []byte {
	b = appendString(append(b, '{'), sourceInlineKey)
	b = appendString(append(b, ':'), sourceModule)
	b = appendString(append(b, ','), sourceUpstreamKey)
	b = appendString(append(b, ':'), id)
	return append(b, '}')
}

// countUpstreamUses counts, for each upstream, the reverse proxies the
// routes make to it (their upstream and their shadow's), so that
// releaseBase can drop an upstream's mapping after its last route: a
// config of 100,000 upstreams would otherwise hold 100,000 of them (about
// 2 KB each) until the end. The count may be too high (a route in error
// makes no proxy), never too low.
func (a *adapter) countUpstreamUses() map[string]int {
	uses := make(map[string]int, len(a.upstreams))
	for _, r := range a.routes {
		for _, id := range a.routeRefs(r).proxied {
			uses[id]++
		}
	}
	return uses
}

// releaseBase counts a use of upstream id's mapping: after the last
// (a.uses), only the sentinel app's part of it is kept.
func (a *adapter) releaseBase(id string) {
	n, ok := a.uses[id]
	if !ok {
		return
	}
	if n > 1 {
		a.uses[id] = n - 1
		return
	}
	delete(a.uses, id)
	if b := a.proxies[id]; b != nil && !b.released {
		// In place: nothing else holds b after the route's proxy.
		*b = upstreamBase{targets: b.targets, active: b.active, discovery: b.discovery, released: true}
	}
}

// splitZone splits the original's zone prefix off a target address:
// "zone=Z,host:port" and "Z/host:port" give Z and host:port.
func splitZone(addr string) (zone, rest string, ok bool) {
	if z, r, found := strings.Cut(addr, ","); found && strings.HasPrefix(z, "zone=") {
		return strings.TrimPrefix(z, "zone="), r, true
	}
	if z, r, found := strings.Cut(addr, "/"); found {
		return z, r, true
	}
	return "", addr, false
}

// lbPolicy is an upstream's selection policy: its module name ("" for
// none), and either its members as an obj (typed, a policy with
// settings: typedObj of its struct) or the upstream it reads its weights
// from ("" for none).
type lbPolicy struct {
	name, upstream string
	typed          obj
}

// appendTo writes the policy as encode wrote its obj: {"policy": name,
// "upstream": upstream} (keys sorted) when it is not typed
// (TestPolicyJSONSameAsObj).
func (p lbPolicy) appendTo(buf []byte) []byte {
	if p.typed != nil {
		return encode(buf, p.typed)
	}
	buf = appendString(append(buf, '{'), policyInlineKey)
	buf = appendString(append(buf, ':'), p.name)
	if p.upstream != "" {
		buf = appendString(append(buf, ','), policyUpstreamKey)
		buf = appendString(append(buf, ':'), p.upstream)
	}
	return append(buf, '}')
}

// policyUpstreamKey is the key of the upstream a policy reads its
// weights from (adaptive.Weighted's and the others').
const policyUpstreamKey = "upstream"

// loadBalancing maps load-balancing to a Caddy selection policy.
func (a *adapter) loadBalancing(id string, n *kdl.Node, weights []int64) lbPolicy {
	algo := "round_robin"
	if n != nil {
		s, ok := a.str(n)
		if !ok {
			return lbPolicy{}
		}
		var known bool
		algo, known = lbNames[strings.ToLower(s)]
		if !known {
			a.d.errorf(n.Args[0].Pos, "upstream %q: unknown load-balancing %q%s", id, s, suggest(strings.ToLower(s), LoadBalancingNames()))
			return lbPolicy{}
		}
		if len(n.Children) > 0 && lbPolicyKeys[algo] == nil {
			a.d.errorf(n.Pos, "upstream %q: load-balancing %q takes no block", id, s)
		}
	}
	policy, ok := lbCaddy[algo]
	if !ok {
		a.d.notYet(n.Args[0].Pos, "load-balancing \""+algo+"\"", "upstream \""+id+"\"")
		return lbPolicy{}
	}
	if !weightsFromRegistry[algo] && !uniform(weights) {
		pos := kdl.Position{}
		if n != nil {
			pos = n.Pos
		}
		a.d.warnf(pos, "upstreams.upstream.load-balancing", "upstream %q: target weights are ignored by %s (use \"weighted\")", id, algo)
	}
	if k := lbPolicyKeys[algo]; k != nil {
		// The adaptive package's policy struct, read from the block.
		block := n
		if block == nil {
			block = &kdl.Node{}
		}
		v := a.mapBlock(block, k, "upstreams.upstream.load-balancing."+algo)
		if weightsFromRegistry[algo] {
			reflect.ValueOf(v).Elem().FieldByName("Upstream").SetString(id)
		}
		return lbPolicy{name: policy, typed: typedObj(v, policyInlineKey, policy)}
	}
	out := lbPolicy{name: policy}
	if weightsFromRegistry[algo] {
		out.upstream = id
	}
	return out
}

// guestPolicy is the JSON of a delegated selection policy named in KDL,
// or nil when the name is not one of guestPolicies (nor "none" when
// allowed).
func guestPolicy(name string, none bool) json.RawMessage {
	if none && strings.EqualFold(name, "none") {
		return json.RawMessage(`"none"`)
	}
	algo := lbNames[strings.ToLower(name)]
	if slices.Contains(guestPolicies, algo) {
		return guestModule("policy", lbCaddy[algo])
	}
	return nil
}

func uniform(ws []int64) bool {
	for _, w := range ws {
		if w != ws[0] {
			return false
		}
	}
	return true
}

// healthChecks maps health-check to the sentinel app's active checks,
// which also cover targets added through the API; nil without one (or
// with a type not available yet).
func (a *adapter) healthChecks(id string, u *kdl.Node) *sentinelapp.HealthCheck {
	n := setting(u, "health-check")
	if n == nil {
		return nil
	}
	hc := healthCheckKey.Map(a, n).(*sentinelapp.HealthCheck)
	if hc.Type == "inference" {
		a.d.notYet(setting(n, "type").Pos, "inference health checks", "upstream \""+id+"\"")
		return nil
	}
	return hc
}

// healthCheckKey declares `health-check { … }` of an upstream: the
// sentinel app's active checks (sentinelapp.HealthCheck, in the app's
// UpstreamConfig). The settings inside `type` depend on its value:
// readHealthType reads them with the blocks of healthTypes.
var healthCheckKey = typedBlockInit(h("health-check", "active checks of every target of the upstream, also those added through the API"),
	func(hc *sentinelapp.HealthCheck) { hc.Type = "tcp" },
	custom("type", "`tcp` (default), `http` (path, expected-status, host), `grpc` (service, grpc.health.v1): active checks of the `sentinel` app",
		func(hc *sentinelapp.HealthCheck) *string { return &hc.Type }, readHealthType).open(),
	secondsField("interval-secs", "interval (default 10)", func(hc *sentinelapp.HealthCheck) *caddy.Duration { return &hc.Interval }),
	secondsField("timeout-secs", "timeout (default 5)", func(hc *sentinelapp.HealthCheck) *caddy.Duration { return &hc.Timeout }),
	intField("healthy-threshold", "passes in a row to become healthy (default 2)", 1, 1000, func(hc *sentinelapp.HealthCheck) *int { return &hc.Healthy }),
	intField("unhealthy-threshold", "failures in a row to become unhealthy (default 3)", 1, 1000, func(hc *sentinelapp.HealthCheck) *int { return &hc.Unhealthy }),
)

// healthType is the block of one health-check type: its settings (Key)
// and their reader into the app's HealthCheck.
type healthType struct {
	key  *Key
	read func(a *adapter, n *kdl.Node, hc *sentinelapp.HealthCheck)
}

// healthTypes declares the settings of each health-check type (the
// shorthand fields of sentinelapp.HealthCheck). Built once.
var healthTypes = map[string]healthType{
	"http": newHealthType("http",
		stringField("path", "", func(hc *sentinelapp.HealthCheck) *string { return &hc.Path }),
		intField("expected-status", "", 100, 599, func(hc *sentinelapp.HealthCheck) *int { return &hc.ExpectStatus }),
		stringField("host", "", func(hc *sentinelapp.HealthCheck) *string { return &hc.Host }),
	),
	"grpc": newHealthType("grpc", stringField("service", "", func(hc *sentinelapp.HealthCheck) *string { return &hc.Service })),
	"tcp":  newHealthType("tcp"),
}

func newHealthType(name string, fields ...field[sentinelapp.HealthCheck]) healthType {
	k, read := typedBlockInto(h(name, ""), fields...)
	return healthType{key: k, read: read}
}

// readHealthType reads `type "http" { path "/ready"; }`: the type, and
// the settings of that type.
func readHealthType(a *adapter, n *kdl.Node, hc *sentinelapp.HealthCheck) {
	s, ok := a.str(n)
	if !ok {
		return
	}
	typ, _ := a.oneOf(n, s, "tcp", "http", "grpc", "inference")
	hc.Type = typ
	if typ == "inference" {
		return // not yet: healthChecks says so
	}
	t, known := healthTypes[typ]
	for _, c := range n.Children {
		if !known || t.key.child(c.Name) == nil {
			var names []string
			if known {
				names = t.key.names()
			}
			a.d.errorf(c.Pos, "unknown setting %q in health-check type %q%s", c.Name, typ, suggest(c.Name, names))
		}
	}
	if known {
		t.read(a, n, hc)
	}
}

// circuitBreakerKey declares `circuit-breaker { … }` of an upstream: Caddy's
// passive health checks of the proxy (reverseproxy.PassiveHealthChecks),
// with the original's defaults (5 failures in 30 s, on 5xx but 509).
var circuitBreakerKey = typedBlockInit(h("circuit-breaker", "Caddy passive health checks of the upstream's targets"),
	func(p *reverseproxy.PassiveHealthChecks) {
		p.MaxFails, p.FailDuration = 5, caddy.Duration(30*time.Second)
		p.UnhealthyStatus = []int{500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511}
	},
	intField("failure-threshold", "", 1, 1<<20, func(p *reverseproxy.PassiveHealthChecks) *int { return &p.MaxFails }),
	field[reverseproxy.PassiveHealthChecks]{key: w("success-threshold", "a target comes back when its failures age out of `timeout-seconds`; a success count is not used")},
	secondsField("timeout-seconds", "", func(p *reverseproxy.PassiveHealthChecks) *caddy.Duration { return &p.FailDuration }),
	field[reverseproxy.PassiveHealthChecks]{key: w("half-open-max-requests", "no half-open probing: the target is retried after `timeout-seconds`")},
)

// transportSettings declares the settings of an upstream block that go
// to its http transport (reverseproxy.HTTPTransport, inside the
// adaptive package's Transport): connection-pool, timeouts, tls and
// http-version. Its key's Children are entries of the upstream's schema.
var transportSettings = nested("upstream", "",
	nested("connection-pool", "http transport connection settings",
		intField("max-connections", "", 0, 1<<20, func(t *reverseproxy.HTTPTransport) *int { return &t.MaxConnsPerHost }),
		inPtr(keepAlive, intField("max-idle", "", 0, 1<<20, func(k *reverseproxy.KeepAlive) *int { return &k.MaxIdleConnsPerHost })),
		idleTimeout,
		field[reverseproxy.HTTPTransport]{key: w("max-lifetime-secs", "Go's transport has no connection lifetime limit")},
		legacy("idle-timeout", "idle-timeout-secs", idleTimeout),
		field[reverseproxy.HTTPTransport]{key: w("max-lifetime", "legacy spelling of max-lifetime-secs")},
	),
	nested("timeouts", "http transport timeouts",
		connectTimeout, requestTimeout, readTimeout, writeTimeout,
		legacy("connect", "connect-secs", connectTimeout),
		legacy("request", "request-secs", requestTimeout),
		legacy("read", "read-secs", readTimeout),
		legacy("write", "write-secs", writeTimeout),
	),
	blockField(upstreamTLSKey, func(t *reverseproxy.HTTPTransport) **reverseproxy.TLSConfig { return &t.TLS }),
	// Read by versions, which needs the upstream's TLS.
	field[reverseproxy.HTTPTransport]{key: h("http-version", "http transport `versions`",
		h("min-version", "1 or 2"),
		h("max-version", "1, 2 or 3 (HTTP/3 is experimental in Caddy)"),
		ext(h("h2c", "`#true`: HTTP/2 over cleartext to the upstream")),
		w("h2-ping-interval", "Go's HTTP/2 transport pings are not configurable through Caddy"),
		w("max-h2-streams", "Go's HTTP/2 transport follows the server's limit"),
	)},
)

var (
	keepAlive   = func(t *reverseproxy.HTTPTransport) **reverseproxy.KeepAlive { return &t.KeepAlive }
	idleTimeout = inPtr(keepAlive, secondsField("idle-timeout-secs", "", func(k *reverseproxy.KeepAlive) *caddy.Duration { return &k.IdleConnTimeout }))

	connectTimeout = secondsField("connect-secs", "", func(t *reverseproxy.HTTPTransport) *caddy.Duration { return &t.DialTimeout })
	requestTimeout = secondsField("request-secs", "", func(t *reverseproxy.HTTPTransport) *caddy.Duration { return &t.ResponseHeaderTimeout })
	readTimeout    = secondsField("read-secs", "", func(t *reverseproxy.HTTPTransport) *caddy.Duration { return &t.ReadTimeout })
	writeTimeout   = secondsField("write-secs", "", func(t *reverseproxy.HTTPTransport) *caddy.Duration { return &t.WriteTimeout })
)

// upstreamTLSKey declares an upstream's `tls { … }`: Caddy's TLS config
// of the http transport.
var upstreamTLSKey = typedBlock(h("tls", "Caddy's TLS config of the http transport"),
	stringField("sni", "", func(c *reverseproxy.TLSConfig) *string { return &c.ServerName }),
	boolField("insecure-skip-verify", "", func(c *reverseproxy.TLSConfig) *bool { return &c.InsecureSkipVerify }),
	stringField("client-cert", "with client-key", func(c *reverseproxy.TLSConfig) *string { return &c.ClientCertificateFile }),
	stringField("client-key", "with client-cert", func(c *reverseproxy.TLSConfig) *string { return &c.ClientCertificateKeyFile }),
	custom("ca-cert", "a file trust pool (`file` CA pool module)", func(c *reverseproxy.TLSConfig) *json.RawMessage { return &c.CARaw },
		func(a *adapter, n *kdl.Node, c *reverseproxy.TLSConfig) {
			if s, ok := a.str(n); ok {
				c.CARaw = caddyconfig.JSONModuleObject(caddytls.FileCAPool{TrustedCACertPEMFiles: []string{s}}, "provider", "file", nil)
			}
		}),
)

// versions maps http-version onto the transport's versions, which
// depend on its TLS: HTTP/3 needs it, h2c is without it.
func (a *adapter) versions(id string, hv *kdl.Node, t *reverseproxy.HTTPTransport) {
	tlsOn := t.TLS != nil
	minV, maxV := int64(1), int64(2)
	if n := setting(hv, "min-version"); n != nil {
		minV, _ = a.integer(n, 1, 3)
	}
	if n := setting(hv, "max-version"); n != nil {
		maxV, _ = a.integer(n, 1, 3)
	}
	h2c := false
	if n := setting(hv, "h2c"); n != nil {
		h2c, _ = a.boolean(n)
	}
	switch {
	case minV > maxV:
		a.d.errorf(hv.Pos, "upstream %q: http-version min-version %d is above max-version %d", id, minV, maxV)
	case maxV == 3:
		if !tlsOn {
			a.d.errorf(hv.Pos, "upstream %q: HTTP/3 to the upstream needs a tls block", id)
		}
		if minV < 3 {
			a.d.warnf(hv.Pos, "upstreams.upstream.http-version", "upstream %q: HTTP/3 to upstreams cannot fall back to HTTP/1-2 in Caddy; only HTTP/3 is used (experimental)", id)
		}
		t.Versions = []string{"3"}
	case h2c || (!tlsOn && minV == 2):
		if tlsOn {
			a.d.errorf(hv.Pos, "upstream %q: h2c is HTTP/2 without TLS; remove the tls block or h2c", id)
		}
		t.Versions = []string{"h2c", "2"}
	case minV == 2:
		t.Versions = []string{"2"}
	case maxV == 1:
		t.Versions = []string{"1.1"}
	default:
		t.Versions = []string{"1.1", "2"}
	}
}

// transport maps the upstream's transport settings onto the adaptive
// package's Transport (Caddy's http transport that feeds the balancer).
//
// The Transport is the adapter's, reused from upstream to upstream: it
// is valid until the next call (base writes it at once).
func (a *adapter) transport(id string, u *kdl.Node) *adaptive.Transport {
	t := &a.transportScratch
	*t = adaptive.Transport{}
	if v, ok := scopedInt(a.scopeOf(id), func(l *nsLimits) *int64 { return l.idle }); ok {
		t.KeepAlive = &reverseproxy.KeepAlive{MaxIdleConnsPerHost: int(v)}
	} else if n := a.limitSetting("max-idle-connections-per-upstream"); n != nil {
		if v, ok := a.integer(n, 0, 1<<20); ok {
			t.KeepAlive = &reverseproxy.KeepAlive{MaxIdleConnsPerHost: int(v)}
		}
	}
	transportSettings.read(a, u, &t.HTTPTransport)
	if tc := t.TLS; tc != nil && (tc.ClientCertificateFile == "") != (tc.ClientCertificateKeyFile == "") {
		a.d.errorf(setting(u, "tls").Pos, "upstream %q: client-cert and client-key go together", id)
	}
	if hv := setting(u, "http-version"); hv != nil {
		a.versions(id, hv, &t.HTTPTransport)
	}
	return t
}

// JSON keys and names of the modules a route's reverse_proxy handler is
// made of, from the modules themselves (the keys a route changes on its
// upstream's mapping, which is built once per upstream).
var (
	proxyKeys = struct{ transport, loadBalancing, healthChecks, upstreams, streamsClose string }{
		jsonKeyOf(func(h *reverseproxy.Handler) any { return &h.TransportRaw }),
		jsonKeyOf(func(h *reverseproxy.Handler) any { return &h.LoadBalancing }),
		jsonKeyOf(func(h *reverseproxy.Handler) any { return &h.HealthChecks }),
		jsonKeyOf(func(h *reverseproxy.Handler) any { return &h.DynamicUpstreamsRaw }),
		jsonKeyOf(func(h *reverseproxy.Handler) any { return &h.StreamCloseDelay }),
	}
	dialTimeoutKey   = jsonKeyOf(func(t *reverseproxy.HTTPTransport) any { return &t.DialTimeout })
	headerTimeoutKey = jsonKeyOf(func(t *reverseproxy.HTTPTransport) any { return &t.ResponseHeaderTimeout })
	selectionKey     = jsonKeyOf(func(l *reverseproxy.LoadBalancing) any { return &l.SelectionPolicyRaw })
	retriesKey       = jsonKeyOf(func(l *reverseproxy.LoadBalancing) any { return &l.Retries })

	proxyHandler = reverseproxy.Handler{}.CaddyModule().ID.Name()
	// proxyHandlerName is proxyHandler boxed once (a member of every
	// route's handler).
	proxyHandlerName  any = proxyHandler
	transportModule       = adaptive.Transport{}.CaddyModule().ID.Name()
	sourceModule          = upstreamsource.Source{}.CaddyModule().ID.Name()
	untriedPolicy         = (*adaptive.Untried)(nil).CaddyModule().ID.Name()
	untriedInnerKey       = jsonKeyOf(func(u *adaptive.Untried) any { return &u.InnerRaw })
	sourceUpstreamKey     = jsonKeyOf(func(s *upstreamsource.Source) any { return &s.Upstream })
)

// transportJSON writes an upstream's transport as typedTree and the
// encoder did (TestTransportJSONSameAsTree), without the tree of maps:
// one per upstream, 100,000 in a large configuration.
var transportJSON = newModuleJSON[adaptive.Transport](transportInlineKey, transportModule)

// The inline keys of the modules above (their caddy struct tags).
const (
	handlerInlineKey   = "handler"
	transportInlineKey = "protocol"
	sourceInlineKey    = "source"
	policyInlineKey    = "policy"
)

// reverseProxy returns the reverse_proxy handler of a route to upstream
// u, with the route's retry policy and its filters' timeouts, as an obj
// (for a handler the adapter adds members to: the shadow's proxy).
func (a *adapter) reverseProxy(u *kdl.Node, retry *kdl.Node, po proxyOverrides) obj {
	var h, lb jsonMembers
	a.proxyMembers(&h, &lb, u, retry, po)
	if lb.len() > 0 {
		h.set(proxyKeys.loadBalancing, lb.obj())
	}
	return h.obj()
}

// reverseProxyJSON is reverseProxy written as JSON, without the maps of
// the handler and its load_balancing (one of each for each of 100,000
// routes). It is written in the adapter's proxy scratch buffer: valid
// until the next call (mapRoute encodes it into the route's fragment at
// once).
func (a *adapter) reverseProxyJSON(u *kdl.Node, retry *kdl.Node, po proxyOverrides) json.RawMessage {
	var h, lb jsonMembers
	a.proxyMembers(&h, &lb, u, retry, po)
	b := a.proxyScratch[:0]
	if lb.len() > 0 {
		b = lb.appendTo(b)
		h.setRaw(proxyKeys.loadBalancing, b)
	}
	start := len(b)
	b = h.appendTo(b)
	a.proxyScratch = b
	return b[start:]
}

// proxyMembers sets the members of the reverse_proxy handler of a route
// to upstream u in h, those of its load_balancing in lb (for the caller
// to add to h when there are any), or in h with tracing.
func (a *adapter) proxyMembers(h, lb *jsonMembers, u *kdl.Node, retry *kdl.Node, po proxyOverrides) {
	b := a.base(u)
	var transport obj // with the route's timeouts
	if retry != nil {
		a.retry(retry, lb)
	}
	perAttempt := a.perAttemptTimeout(retry)
	if po.dialTimeout != "" || po.responseHeaderTimeout != "" || perAttempt != "" {
		headerTimeout := po.responseHeaderTimeout
		if perAttempt != "" {
			headerTimeout = perAttempt
		}
		transport = transportWith(b.transport, po.dialTimeout, headerTimeout)
	}
	h.set(handlerInlineKey, proxyHandlerName)
	h.setRaw(proxyKeys.upstreams, b.source)
	if transport != nil {
		h.set(proxyKeys.transport, transport)
	} else {
		h.setRaw(proxyKeys.transport, b.transport)
	}
	h.set(proxyKeys.streamsClose, a.streamCloseDelay)
	if b.policyName != "" {
		lb.setRaw(selectionKey, b.policy)
		if lb.has(retriesKey) && caddyPolicies[b.policyName] {
			// Caddy's policies know nothing of retries: the wrapper sends a
			// retry to a target the request was not sent to yet (the
			// policies of the adaptive package do it themselves).
			if b.untried == nil {
				b.untried = untriedJSON(b.policy)
			}
			lb.setRaw(selectionKey, b.untried)
		}
	}
	if a.tracingNode() != nil {
		// The selection's span (tracing.go).
		var o obj
		if lb.len() > 0 {
			o = lb.obj()
		}
		h.set(proxyKeys.loadBalancing, a.tracedSelection(o))
		*lb = jsonMembers{}
	}
	if b.health != nil {
		h.setRaw(proxyKeys.healthChecks, b.health)
	}
	a.releaseBase(u.Args[0].Str)
}

// transportWith is an upstream's transport (transportJSON's) with the
// route's timeouts: dial_timeout and response_header_timeout replaced
// when not "", as typedTree's tree of the transport with these members
// set encoded (TestTransportWithSameAsTree).
func transportWith(transport json.RawMessage, dialTimeout, headerTimeout string) obj {
	tr := splitObject(transport)
	if dialTimeout != "" {
		tr[dialTimeoutKey] = dialTimeout
	}
	if headerTimeout != "" {
		tr[headerTimeoutKey] = headerTimeout
	}
	return tr
}

// untriedJSON is the selection policy wrapped for retries
// (sentinel_untried), as encode wrote obj{policyInlineKey:
// untriedPolicy, untriedInnerKey: policy}.
func untriedJSON(policy json.RawMessage) json.RawMessage {
	var m jsonMembers
	m.set(policyInlineKey, untriedPolicy)
	m.set(untriedInnerKey, policy)
	return m.appendTo(nil)
}

// idempotent are the methods retried after a request was sent.
var idempotent = []string{"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}

// retryPolicyKey declares a route's `retry-policy { … }`: Caddy's
// load_balancing retries (reverseproxy.LoadBalancing). per-attempt-timeout
// goes to the route's transport (perAttemptTimeout); the retried methods
// and statuses together give retry_match (retryMatch).
var retryPolicyKey = block("retry-policy", "reverse_proxy `load_balancing` retries",
	custom("max-attempts", "max-attempts − 1", func(l *reverseproxy.LoadBalancing) *int { return &l.Retries },
		func(a *adapter, n *kdl.Node, l *reverseproxy.LoadBalancing) {
			if i, ok := a.integer(n, 1, 100); ok {
				l.Retries = int(i) - 1
			}
		}),
	readBy("retryable-status-codes", "`expression` matcher on `{http.reverse_proxy.status_code}` and the method", retryMatchOf),
	durationField("backoff", "", func(l *reverseproxy.LoadBalancing) *caddy.Duration { return &l.TryInterval }),
	field[reverseproxy.LoadBalancing]{key: w("max-backoff", "Caddy waits a constant `try_interval` between attempts")},
	field[reverseproxy.LoadBalancing]{key: h("per-attempt-timeout", "transport `response_header_timeout`")},
	readBy("retry-non-idempotent", "`method` matcher with every method", retryMatchOf),
	field[reverseproxy.LoadBalancing]{key: h("timeout-ms", "legacy spelling of per-attempt-timeout")},
	legacy("backoff-base-ms", "backoff", millisField("", "", func(l *reverseproxy.LoadBalancing) *caddy.Duration { return &l.TryInterval })),
	field[reverseproxy.LoadBalancing]{key: w("backoff-max-ms", "legacy spelling of max-backoff (constant interval in Caddy)")},
)

func retryMatchOf(l *reverseproxy.LoadBalancing) *caddyhttp.RawMatcherSets { return &l.RetryMatchRaw }

// retry maps a route's retry-policy onto the reverse proxy's
// load_balancing (without its selection policy), its members set in lb.
func (a *adapter) retry(r *kdl.Node, lb *jsonMembers) {
	l := retryPolicyKey.Map(a, r).(*reverseproxy.LoadBalancing)
	methods := idempotent
	if n := setting(r, "retry-non-idempotent"); n != nil {
		if b, ok := a.boolean(n); ok && b {
			methods = append(append([]string(nil), idempotent...), nonIdempotent...)
		}
	}
	var statuses []int64
	if n := setting(r, "retryable-status-codes"); n != nil {
		statuses = a.ints(n, 100, 599)
	}
	if l.Retries > 0 {
		l.RetryMatchRaw = retryMatch(methods, statuses)
	}
	loadBalancingJSON.members(l, lb)
}

// loadBalancingJSON writes a route's load_balancing as typedTree and
// the encoder did (TestLoadBalancingJSONSameAsTree).
var loadBalancingJSON = newModuleJSON[reverseproxy.LoadBalancing]("", "")

// retryMatch is retry_match: the methods retried after a request was
// sent, and the statuses retried for them.
func retryMatch(methods []string, statuses []int64) caddyhttp.RawMatcherSets {
	matcher, sets := idempotentMatcher, idempotentRetry
	if len(methods) > len(idempotent) {
		matcher, sets = anyMethodMatcher, anyMethodRetry
	}
	if len(statuses) > 0 {
		sets = caddyhttp.RawMatcherSets{{methodMatcher: matcher}}
		codes := make([]string, len(statuses))
		for i, s := range statuses {
			codes[i] = itoa64(s)
		}
		quoted := make([]string, len(methods))
		for i, m := range methods {
			quoted[i] = `"` + m + `"`
		}
		expr := "{http.reverse_proxy.status_code} in [" + strings.Join(codes, ", ") + "] && {http.request.method} in [" + strings.Join(quoted, ", ") + "]"
		// A caddyhttp.MatchExpression is written as its expression.
		sets = append(sets, caddy.ModuleMap{expressionMatcher: appendString(nil, expr)})
	}
	return sets
}

// The method matchers of retry_match (caddyhttp.MatchMethod).
var (
	idempotentMatcher = caddyconfig.JSON(caddyhttp.MatchMethod(idempotent), nil)
	anyMethodMatcher  = caddyconfig.JSON(caddyhttp.MatchMethod(append(append([]string(nil), idempotent...), nonIdempotent...)), nil)
	// The retry_match of a route that does not retry on statuses: the
	// same for most routes, built once (never changed: encoded only).
	idempotentRetry = caddyhttp.RawMatcherSets{{methodMatcher: idempotentMatcher}}
	anyMethodRetry  = caddyhttp.RawMatcherSets{{methodMatcher: anyMethodMatcher}}
)

// nonIdempotent are the methods retry-non-idempotent adds.
var nonIdempotent = []string{"POST", "PATCH", "CONNECT"}

// The names of the matchers retry_match uses.
var (
	methodMatcher     = caddyhttp.MatchMethod{}.CaddyModule().ID.Name()
	expressionMatcher = caddyhttp.MatchExpression{}.CaddyModule().ID.Name()
)

// perAttemptTimeout is the retry policy's per-attempt-timeout (or
// timeout-ms), "" when not set.
func (a *adapter) perAttemptTimeout(r *kdl.Node) string {
	if n := setting(r, "per-attempt-timeout"); n != nil {
		d, _ := a.duration(n)
		return d
	}
	if n := setting(r, "timeout-ms"); n != nil {
		d, _ := a.millis(n)
		return d
	}
	return ""
}
