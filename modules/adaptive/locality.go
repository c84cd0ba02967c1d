package adaptive

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(LocalityAware))
}

// fallbackAliases are the fallbacks earlier configs named by a bare
// string, and the selection policies they stand for ("" = none).
var fallbackAliases = map[string]string{"round_robin": "round_robin", "random": "random", "none": ""}

// LocalityAware keeps traffic in the proxy's zone: while at least one
// target of the local zone is available, requests go to the local targets
// by smooth weighted round robin (weights from the registry upstream);
// otherwise they go to the other zones — the first zone of
// `zone_priority` that has an available target, else any — as the
// fallback selection policy chooses among that zone's targets
// (round_robin by default), or nowhere ("none": 503).
//
// The local zone is `zone`, else the environment's SENTINEL_ZONE, ZONE or
// REGION, else "default". A target's zone is given by `zones` (address →
// zone), else by a prefix of its address as in the original
// ("zone=us-west-1,10.0.0.1:80" or "us-west-1/10.0.0.1:80" — such
// addresses cannot be dialled by Caddy, so prefer `zones`), else it is
// "unknown".
type LocalityAware struct {
	// Upstream is the registry upstream whose weights apply to the local
	// targets. Optional; it also labels the metrics.
	Upstream string `json:"upstream,omitempty"`

	// Zone is the proxy's zone (default: $SENTINEL_ZONE, $ZONE, $REGION,
	// or "default").
	Zone string `json:"zone,omitempty"`

	// Zones maps target addresses to their zone.
	Zones map[string]string `json:"zones,omitempty"`

	// FallbackRaw is the selection policy that chooses among the
	// remote targets of the best zone when no local one is available (a
	// module of http.reverse_proxy.selection_policies, default
	// round_robin), or the string "none": no remote target (503). The
	// bare strings "round_robin" and "random" of earlier configs are
	// accepted.
	FallbackRaw json.RawMessage `json:"fallback,omitempty" caddy:"namespace=http.reverse_proxy.selection_policies inline_key=policy"`

	// ZonePriority orders the remote zones: the first one with an
	// available target takes the traffic.
	ZonePriority []string `json:"zone_priority,omitempty"`

	base
	fallback reverseproxy.Selector // nil: none
	subs     subPools
	views    views[*atomic.Uint64]
}

// localityState is the per-view state: the zone of each target and the
// smooth round-robin counters.
type localityState struct {
	local []bool
	rank  []int // position of the target's zone in zone_priority (len = none)
	// sched is the precomputed cycle over the local targets (nil when the
	// weights allow none); used while its targets are available.
	sched *schedule
	mu    sync.Mutex
	cur   []float64
}

// CaddyModule returns the Caddy module information.
func (*LocalityAware) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.locality_aware",
		New: func() caddy.Module { return new(LocalityAware) },
	}
}

// Provision finds the local zone and registers the metrics.
func (s *LocalityAware) Provision(ctx caddy.Context) error {
	if err := s.setup(ctx, "locality_aware", s.Upstream, nil); err != nil {
		return err
	}
	if s.Zone == "" {
		s.Zone = localZone(os.Getenv)
	}
	raw, none, err := guestPolicy(s.FallbackRaw, "locality_aware: fallback", "round_robin", fallbackAliases)
	if err != nil {
		return err
	}
	if !none {
		s.FallbackRaw = raw
		mod, err := ctx.LoadModule(s, "FallbackRaw")
		if err != nil {
			return fmt.Errorf("locality_aware: loading the fallback selection policy: %w", err)
		}
		s.fallback = mod.(reverseproxy.Selector)
	}
	s.views.item = func(tg *Target, _ float64) *atomic.Uint64 { return s.selections(tg.addr) }
	s.views.finish = func(v, _ *view[*atomic.Uint64]) {
		st := &localityState{local: make([]bool, len(v.addrs)), rank: make([]int, len(v.addrs)), cur: make([]float64, len(v.addrs))}
		for i, a := range v.addrs {
			z := s.zoneOf(a)
			st.local[i] = z == s.Zone
			st.rank[i] = len(s.ZonePriority)
			for r, pz := range s.ZonePriority {
				if pz == z {
					st.rank[i] = r
					break
				}
			}
		}
		st.sched = newSchedule(v.weights, func(i int) bool { return st.local[i] })
		v.ext = st
	}
	return registerMetrics(ctx, s)
}

// Cleanup removes the policy from the metrics.
func (s *LocalityAware) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

// localZone is the proxy's zone from the environment.
func localZone(getenv func(string) string) string {
	for _, k := range []string{"SENTINEL_ZONE", "ZONE", "REGION"} {
		if z := getenv(k); z != "" {
			return z
		}
	}
	return "default"
}

// zoneOf returns the zone of a target address.
func (s *LocalityAware) zoneOf(addr string) string {
	if z, ok := s.Zones[addr]; ok {
		return z
	}
	z, _ := splitZone(addr)
	return z
}

// splitZone reads the original's zone prefixes: "zone=Z,ADDR" or
// "Z/ADDR". Without one the zone is "unknown".
func splitZone(addr string) (zone, rest string) {
	if after, ok := strings.CutPrefix(addr, "zone="); ok {
		if z, r, ok := strings.Cut(after, ","); ok && z != "" {
			return z, r
		}
	}
	if z, r, ok := strings.Cut(addr, "/"); ok && z != "" && !strings.ContainsAny(z, ":[") {
		switch z {
		case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "unixgram", "unixpacket", "ip", "ip4", "ip6":
			// A Caddy network, not a zone.
		default:
			return z, r
		}
	}
	return "unknown", addr
}

// Select prefers the local zone. A retry skips the targets the request
// was already sent to, when another is available.
func (s *LocalityAware) Select(pool reverseproxy.UpstreamPool, r *http.Request, w http.ResponseWriter) *reverseproxy.Upstream {
	reg := s.regPool()
	v := s.views.scanning(s.fb, pool, reg)
	st := v.ext.(*localityState)
	ex := triedOf(r)
	i := pickEmpty
	if st.sched != nil {
		if i = st.sched.pick(pool, v.addrs, ex); i == pickStale {
			v = s.views.get(s.fb, pool, reg)
			st = v.ext.(*localityState)
			i = pickEmpty
			if st.sched != nil {
				i = st.sched.pick(pool, v.addrs, ex)
			}
		}
	}
	if i >= 0 {
		v.items[i].Add(1)
		return pool[i]
	}
	if !v.matches(pool) {
		v = s.views.get(s.fb, pool, reg)
		st = v.ext.(*localityState)
	}
	i = selectUntried(r, func(ex *attempts) int {
		if i := s.local(pool, v, st, ex); i >= 0 {
			return i
		}
		return s.remote(pool, v, st, ex, r, w)
	})
	if i < 0 {
		return nil
	}
	v.items[i].Add(1)
	return pool[i]
}

// local picks among the available local targets not in ex by smooth
// weighted round robin (nginx's), or returns -1.
func (s *LocalityAware) local(pool reverseproxy.UpstreamPool, v *view[*atomic.Uint64], st *localityState, ex *attempts) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	best, total := -1, 0.0
	for i, u := range pool {
		if !st.local[i] || v.weights[i] <= 0 || !ex.avail(u) {
			continue
		}
		st.cur[i] += v.weights[i]
		total += v.weights[i]
		if best < 0 || st.cur[i] > st.cur[best] {
			best = i
		}
	}
	if best >= 0 {
		st.cur[best] -= total
	}
	return best
}

// remote lets the fallback policy pick among the best remote zone's
// available targets not in ex.
func (s *LocalityAware) remote(pool reverseproxy.UpstreamPool, v *view[*atomic.Uint64], st *localityState, ex *attempts, r *http.Request, w http.ResponseWriter) int {
	if s.fallback == nil {
		return -1
	}
	// The best-ranked zone with an available target.
	rank := len(s.ZonePriority) + 1
	count := 0
	for i, u := range pool {
		if st.local[i] || v.weights[i] <= 0 || !ex.avail(u) {
			continue
		}
		switch {
		case st.rank[i] < rank:
			rank, count = st.rank[i], 1
		case st.rank[i] == rank:
			count++
		}
	}
	if count == 0 {
		return -1
	}
	sub := s.subs.get(count)
	defer s.subs.put(sub)
	for i, u := range pool {
		if !st.local[i] && v.weights[i] > 0 && st.rank[i] == rank && ex.avail(u) {
			*sub = append(*sub, u)
		}
	}
	if u := s.fallback.Select(*sub, r, w); u != nil {
		for i := range pool {
			if pool[i] == u {
				return i
			}
		}
	}
	return -1 // availability changed meanwhile
}

// lbMetrics reports the selections of each target.
func (s *LocalityAware) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	s.views.emitSelections(&s.base, emit)
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy locality_aware [<upstream>] {
//	    upstream      <id>
//	    zone          <local zone>
//	    target_zone   <address> <zone>
//	    fallback      none|<policy> [<args…>] [{ <policy's settings> }]
//	    zone_priority <zone>...
//	}
func (s *LocalityAware) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"zone": stringArg(&s.Zone),
		"fallback": func(d *caddyfile.Dispenser) (err error) {
			s.FallbackRaw, err = policyFromCaddyfile(d, map[string]string{"none": ""})
			return err
		},
		"target_zone": func(d *caddyfile.Dispenser) error {
			addr := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			if s.Zones == nil {
				s.Zones = map[string]string{}
			}
			s.Zones[addr] = d.Val()
			return nil
		},
		"zone_priority": stringsArg(&s.ZonePriority),
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*LocalityAware)(nil)
	_ caddy.CleanerUpper    = (*LocalityAware)(nil)
	_ reverseproxy.Selector = (*LocalityAware)(nil)
	_ caddyfile.Unmarshaler = (*LocalityAware)(nil)
)
