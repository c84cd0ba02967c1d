package adaptive

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(ConsistentHash))
}

// ConsistentHash maps each request key (client IP by default, or a
// header, a cookie, the path) onto a hash ring with `vnodes` virtual nodes
// per target ("{address}-vnode-{i}"): the request goes to the owner of
// the first virtual node at or after the key's hash. Adding or removing a
// target moves only the keys it gains or loses; a target that is not
// available passes its keys to the next owners on the ring.
//
// With bounded load (Mirrokni et al., "Consistent Hashing with Bounded
// Loads"), no target takes more than `load_factor` × the average number
// of requests in flight (plus one): a busier owner passes the request on
// along the ring. Requests without a key go to a random target.
type ConsistentHash struct {
	// Upstream labels the metrics (optional).
	Upstream string `json:"upstream,omitempty"`

	// Key is what is hashed: client_ip (default), header, cookie or path.
	Key string `json:"key,omitempty"`

	// KeyName is the header or cookie name, for those keys.
	KeyName string `json:"key_name,omitempty"`

	// VNodes is the number of virtual nodes per target (default 150).
	VNodes int `json:"vnodes,omitempty"`

	// Hash is xxhash (default, XXH64) or fnv (FNV-1a 64).
	Hash string `json:"hash,omitempty"`

	// LoadFactor bounds the load of a target, as a multiple of the
	// average (default 1.25; must be above 1).
	LoadFactor float64 `json:"load_factor,omitempty"`

	// Unbounded turns the load bound off: keys always go to their owner.
	Unbounded bool `json:"unbounded,omitempty"`

	base
	key   requestKey
	hash  hasher
	views views[*atomic.Uint64]
}

// ring is the sorted virtual nodes of a view.
type ring struct {
	hashes []uint64
	owners []int32
}

// CaddyModule returns the Caddy module information.
func (*ConsistentHash) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.consistent_hash",
		New: func() caddy.Module { return new(ConsistentHash) },
	}
}

// Provision applies the defaults and registers the metrics.
func (s *ConsistentHash) Provision(ctx caddy.Context) error {
	if err := s.setup(ctx, "consistent_hash", s.Upstream, nil); err != nil {
		return err
	}
	if s.VNodes == 0 {
		s.VNodes = 150
	}
	if s.LoadFactor == 0 {
		s.LoadFactor = 1.25
	}
	var err error
	if s.key, err = newRequestKey(s.Key, s.KeyName); err != nil {
		return fmt.Errorf("consistent_hash: %w", err)
	}
	if s.hash, err = newHasher(s.Hash); err != nil {
		return fmt.Errorf("consistent_hash: %w", err)
	}
	s.views.item = func(tg *Target, _ float64) *atomic.Uint64 { return s.selections(tg.addr) }
	s.views.finish = func(v, _ *view[*atomic.Uint64]) { v.ext = s.buildRing(v.addrs) }
	return registerMetrics(ctx, s)
}

// Validate checks the parameters.
func (s *ConsistentHash) Validate() error {
	if s.VNodes < 1 || s.VNodes > 10000 {
		return fmt.Errorf("consistent_hash: vnodes must be between 1 and 10000")
	}
	if s.LoadFactor <= 1 {
		return fmt.Errorf("consistent_hash: load_factor must be above 1")
	}
	return nil
}

// Cleanup removes the policy from the metrics.
func (s *ConsistentHash) Cleanup() error {
	unregisterMetrics(s)
	s.leave()
	return nil
}

func (s *ConsistentHash) buildRing(addrs []string) *ring {
	type vnode struct {
		h     uint64
		owner int32
	}
	nodes := make([]vnode, 0, len(addrs)*s.VNodes)
	for i, a := range addrs {
		for j := range s.VNodes {
			nodes = append(nodes, vnode{s.hash(a + "-vnode-" + strconv.Itoa(j)), int32(i)})
		}
	}
	slices.SortFunc(nodes, func(a, b vnode) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.owner - b.owner)
	})
	r := &ring{hashes: make([]uint64, len(nodes)), owners: make([]int32, len(nodes))}
	for i, n := range nodes {
		r.hashes[i], r.owners[i] = n.h, n.owner
	}
	return r
}

// Select returns the owner of the request's key, or the next owner on the
// ring that is available and under the load bound. A retry goes to the
// next owner the request was not already sent to, when there is one.
func (s *ConsistentHash) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	reg := s.regPool()
	var v *view[*atomic.Uint64]
	if s.Unbounded {
		v = s.views.get(s.fb, pool, reg)
	} else {
		// The load bound reads every target: the addresses are checked
		// on the way.
		v = s.views.scanning(s.fb, pool, reg)
	}
	key, ok := s.key.of(r)
	i := selectUntried(r, func(ex *attempts) int {
		if ok {
			h := s.hash(key)
			i := s.lookup(pool, v, h, ex)
			if i == pickStale {
				v = s.views.get(s.fb, pool, reg)
				i = s.lookup(pool, v, h, ex)
			}
			return i
		}
		var buf [maxChoices]int
		if c := v.draw(pool, s.rnd, 1, false, ex, &buf); len(c) > 0 {
			return c[0]
		}
		return pickEmpty
	})
	if i < 0 {
		return nil
	}
	v.items[i].Add(1)
	return pool[i]
}

// lookup walks the ring from h, skipping the targets in ex; it returns
// pickEmpty when no target is available, pickStale when the pool is not
// the view's.
func (s *ConsistentHash) lookup(pool reverseproxy.UpstreamPool, v *view[*atomic.Uint64], h uint64, ex *attempts) int {
	rg, _ := v.ext.(*ring)
	if rg == nil || len(rg.hashes) == 0 {
		return pickEmpty
	}
	n := len(rg.hashes)
	start, _ := slices.BinarySearch(rg.hashes, h)
	if !s.Unbounded {
		// Fast path: the first available owner is under any bound the
		// scan could compute when in flight < ceil((in flight + 1) ×
		// load_factor ÷ pool size), because Σ in flight ≥ its own and the
		// available targets ≤ the pool: an idle owner (the common case)
		// costs no O(n) scan.
		for k := range n {
			o := int(rg.owners[(start+k)%n])
			if v.stale(pool, o) {
				return pickStale
			}
			if !ex.avail(pool[o]) {
				continue
			}
			f := max(v.targets[o].InFlight(), 0)
			if f < int64(math.Ceil(float64(f+1)*s.LoadFactor/float64(len(pool)))) {
				return o
			}
			break
		}
	}
	limit := int64(math.MaxInt64)
	if !s.Unbounded {
		var total, avail int64
		for i, u := range pool {
			if v.stale(pool, i) {
				return pickStale
			}
			if ex.avail(u) {
				avail++
				total += max(v.targets[i].InFlight(), 0)
			}
		}
		if avail == 0 {
			return pickEmpty
		}
		limit = int64(math.Ceil(float64(total+1) * s.LoadFactor / float64(avail)))
	}
	fallback := -1
	for k := range n {
		o := int(rg.owners[(start+k)%n])
		if !ex.avail(pool[o]) {
			continue
		}
		if fallback < 0 {
			fallback = o
		}
		if v.targets[o].InFlight() < limit {
			return o
		}
	}
	return fallback
}

// lbMetrics reports the selections of each target.
func (s *ConsistentHash) lbMetrics(_ int64, emit func(string, targetMetrics)) {
	s.views.emitSelections(&s.base, emit)
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	lb_policy consistent_hash [<upstream>] {
//	    upstream    <id>
//	    key         client_ip|header|cookie|path
//	    key_name    <header or cookie name>
//	    vnodes      <n>
//	    hash        xxhash|fnv
//	    load_factor <factor>
//	    bounded     on|off
//	}
func (s *ConsistentHash) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	bounded := true
	err := parsePolicy(d, &s.Upstream, map[string]func(*caddyfile.Dispenser) error{
		"key":         stringArg(&s.Key),
		"key_name":    stringArg(&s.KeyName),
		"vnodes":      intArg(&s.VNodes),
		"hash":        stringArg(&s.Hash),
		"load_factor": floatArg(&s.LoadFactor),
		"bounded":     boolArg(&bounded),
	})
	s.Unbounded = !bounded
	return err
}

// Interface guards
var (
	_ caddy.Provisioner     = (*ConsistentHash)(nil)
	_ caddy.Validator       = (*ConsistentHash)(nil)
	_ caddy.CleanerUpper    = (*ConsistentHash)(nil)
	_ reverseproxy.Selector = (*ConsistentHash)(nil)
	_ caddyfile.Unmarshaler = (*ConsistentHash)(nil)
)
