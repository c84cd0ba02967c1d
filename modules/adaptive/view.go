package adaptive

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sentinel-proxy/sentinel/registry"
)

// base is what every selection policy of this package shares: where the
// feedback and the weights come from, the state it shares with the
// policies of other configs, the clock and the random source.
type base struct {
	kind     string
	upstream string
	fb       *store
	reg      *registry.Registry
	// policy is the state shared with the policies of the same kind,
	// upstream and parameters (see store.policies); joined is set while
	// this policy holds a reference to it.
	policy *policyState
	pkey   policyKey
	joined bool
	now    func() int64
	rnd    random
}

// setup binds the policy to the process's registry (from the sentinel
// app) and its feedback store, and joins the shared state of the policies
// of this kind, upstream and params (a comparable value: the tunables
// that shape the shared state). Cleanup must call leave.
func (b *base) setup(ctx caddy.Context, kind, upstream string, params any) error {
	b.kind, b.upstream = kind, upstream
	reg, err := registry.From(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	b.reg = reg
	b.fb = feedbackOf(reg)
	if b.now == nil { // tests inject theirs
		b.now = monotime
	}
	if b.rnd == nil {
		b.rnd = globalRand{}
	}
	b.leave() // provisioned twice (tests)
	b.pkey = policyKey{kind: kind, upstream: upstream, params: params}
	b.policy = b.fb.join(b.pkey)
	b.joined = true
	return nil
}

// leave releases the policy's reference to its shared state: the last
// policy to leave (the old config's, after a reload that changed the
// tunables) drops it.
func (b *base) leave() {
	if !b.joined {
		return
	}
	b.joined = false
	b.fb.leave(b.pkey)
}

// regPool is the registry snapshot of the policy's upstream (nil without
// one: every weight is 1).
func (b *base) regPool() *registry.Pool {
	if b.upstream == "" || b.reg == nil {
		return nil
	}
	return b.reg.Pool(b.upstream)
}

// feedback is the store of the policy's registry (for the metrics).
func (b *base) feedback() *store { return b.fb }

// lbLabels names the policy in the metrics.
func (b *base) lbLabels() (string, string) { return b.kind, b.upstream }

// selections returns the selection counter of a target for this policy
// (shared with the same policy of other configs).
func (b *base) selections(addr string) *atomic.Uint64 {
	return b.fb.selections(b.policy, addr)
}

// attach returns the estimator of the policy on a target, attaching mk()
// if there is none: the same policy of other configs shares it.
func (b *base) attach(tg *Target, mk func() observer) observer {
	return b.fb.attach(b.policy, tg, mk)
}

// random is the source of randomness of the policies (injected by tests).
type random interface {
	IntN(n int) int
	Float64() float64
}

// tieBreak chooses uniformly among tied candidates met one after the
// other (reservoir sampling: the n-th replaces the choice with probability
// 1/n). One draw from the policy's source seeds a xorshift generator for
// the rest of the scan, so that a pool of 100 idle targets costs one call
// to the shared source, not 100.
type tieBreak struct {
	rnd random
	x   uint64
}

// keep reports whether the n-th tied candidate (n ≥ 1) takes the place of
// the current choice.
func (t *tieBreak) keep(n int) bool {
	if n <= 1 {
		return true
	}
	if t.x == 0 {
		t.x = uint64(t.rnd.IntN(math.MaxInt64)) | 1
	}
	t.x ^= t.x << 13
	t.x ^= t.x >> 7
	t.x ^= t.x << 17
	return (t.x>>32)*uint64(n)>>32 == 0
}

// globalRand is math/rand/v2's goroutine-safe global source.
type globalRand struct{}

func (globalRand) IntN(n int) int   { return rand.IntN(n) }   //nolint:gosec // load balancing
func (globalRand) Float64() float64 { return rand.Float64() } //nolint:gosec // load balancing

// view is a policy's picture of a pool: for each target, in the pool's
// order, its feedback state, its registry weight and the policy's own
// state. It is rebuilt only when the pool's addresses or the registry
// snapshot change, so that selecting allocates nothing.
type view[T any] struct {
	addrs   []string
	reg     *registry.Pool
	targets []*Target
	weights []float64
	// cum are the running sums of weights, for weighted draws.
	cum   []float64
	items []T
	// ext is the policy's state for the whole pool (ring, table, …).
	ext any
}

// views holds the current view of a policy.
type views[T any] struct {
	cur atomic.Pointer[view[T]]
	// item builds the policy's state of a target.
	item func(tg *Target, weight float64) T
	// finish completes a new view (optional); prev is the previous one.
	finish func(v, prev *view[T])
}

// fresh returns the current view (nil before the first selection),
// rebuilt first when the registry snapshot changed since it was built: a
// weight changed through the control-plane API shows in the metrics and
// the estimates at once, not after the next request.
func (vs *views[T]) fresh(fb *store, reg *registry.Pool) *view[T] {
	v := vs.cur.Load()
	if v == nil || v.reg == reg {
		return v
	}
	pool := make(reverseproxy.UpstreamPool, len(v.addrs))
	for i, a := range v.addrs {
		pool[i] = &reverseproxy.Upstream{Dial: a}
	}
	return vs.get(fb, pool, reg)
}

// emitSelections reports each target's selection count with the baseline
// metrics (for the policies whose per-target state is that counter).
func (vs *views[T]) emitSelections(b *base, emit func(string, targetMetrics)) {
	v := vs.fresh(b.fb, b.regPool())
	if v == nil {
		return
	}
	for i, it := range v.items {
		c, ok := any(it).(*atomic.Uint64)
		if !ok {
			return
		}
		emit(v.addrs[i], baselineMetrics(v.targets[i], c.Load(), v.weights[i]))
	}
}

// get returns the view of pool, rebuilding it when needed.
func (vs *views[T]) get(fb *store, pool reverseproxy.UpstreamPool, reg *registry.Pool) *view[T] {
	v := vs.cur.Load()
	if v != nil && v.reg == reg && v.matches(pool) {
		return v
	}
	nv := &view[T]{
		addrs:   make([]string, len(pool)),
		reg:     reg,
		targets: make([]*Target, len(pool)),
		weights: make([]float64, len(pool)),
		cum:     make([]float64, len(pool)),
		items:   make([]T, len(pool)),
	}
	sum := 0.0
	for i, u := range pool {
		nv.addrs[i] = u.Dial
		nv.targets[i] = fb.target(u.Dial)
		w := 1.0
		if reg != nil {
			w = float64(reg.Weight(u.Dial))
		}
		nv.weights[i] = w
		sum += max(w, 0)
		nv.cum[i] = sum
		nv.items[i] = vs.item(nv.targets[i], w)
	}
	if vs.finish != nil {
		vs.finish(nv, v)
	}
	vs.cur.Store(nv)
	return nv
}

// scanning returns the current view when it has the pool's length and
// registry snapshot, without comparing the addresses: the policies that
// read every target compare each address as they go (stale) and call get
// when one differs, so that a selection walks the pool once.
func (vs *views[T]) scanning(fb *store, pool reverseproxy.UpstreamPool, reg *registry.Pool) *view[T] {
	v := vs.cur.Load()
	if v == nil || v.reg != reg || len(v.addrs) != len(pool) {
		v = vs.get(fb, pool, reg)
	}
	return v
}

// stale reports whether target i of the pool is not the view's.
func (v *view[T]) stale(pool reverseproxy.UpstreamPool, i int) bool {
	return pool[i].Dial != v.addrs[i]
}

// drawn returns the view of pool and k targets drawn from it (see draw;
// the targets in ex are left out),
// comparing only the drawn targets' addresses with the view's: the
// power-of-d-choices policies read nothing else, so their selection
// costs O(d), not O(n). Any other change of the pool shows in its length
// or the registry snapshot, or in a drawn address (then the view is
// rebuilt and the draw made again).
func (vs *views[T]) drawn(fb *store, pool reverseproxy.UpstreamPool, reg *registry.Pool, rnd random, k int, weighted bool, ex *attempts, buf *[maxChoices]int) (*view[T], []int) {
	v := vs.cur.Load()
	if v == nil || v.reg != reg || len(v.addrs) != len(pool) {
		v = vs.get(fb, pool, reg)
	}
	cands := v.draw(pool, rnd, k, weighted && v.reg != nil, ex, buf)
	for _, i := range cands {
		if pool[i].Dial != v.addrs[i] {
			v = vs.get(fb, pool, reg)
			return v, v.draw(pool, rnd, k, weighted && v.reg != nil, ex, buf)
		}
	}
	return v, cands
}

// matches reports whether the view is of the pool's addresses, in order.
func (v *view[T]) matches(pool reverseproxy.UpstreamPool) bool {
	if len(pool) != len(v.addrs) {
		return false
	}
	for i, u := range pool {
		if u.Dial != v.addrs[i] {
			return false
		}
	}
	return true
}

// maxChoices bounds the candidates of the power-of-d-choices policies.
const maxChoices = 8

// draw picks up to k distinct available targets at random (by weight when
// weighted) into buf and returns them; every available target when k is
// at least the pool's size. Unavailable or repeated draws, and the
// targets in ex (already tried by the request), are redrawn a few times,
// then the pool is scanned.
func (v *view[T]) draw(pool reverseproxy.UpstreamPool, rnd random, k int, weighted bool, ex *attempts, buf *[maxChoices]int) []int {
	n := len(pool)
	out := buf[:0]
	if n == 0 {
		return out
	}
	if k >= n {
		return v.scanWeighted(pool, rnd, k, false, ex, buf)
	}
	total := 0.0
	if weighted {
		total = v.cum[n-1]
		if total <= 0 {
			return out
		}
	}
	misses := 0
	for len(out) < k && misses < 4*k {
		var i int
		if weighted {
			i = v.searchCum(rnd.Float64() * total)
		} else {
			i = rnd.IntN(n)
		}
		if contains(out, i) || !ex.avail(pool[i]) || weighted && v.weights[i] <= 0 {
			misses++
			continue
		}
		out = append(out, i)
	}
	if len(out) < k {
		// Many targets are out: sample among the available ones.
		return v.scanWeighted(pool, rnd, k, weighted, ex, buf)
	}
	return out
}

// scanWeighted samples up to k available targets not in ex: uniformly
// (reservoir sampling) or, when weighted, with probability growing with
// the weight (Efraimidis–Spirakis keys u^(1/w), the k highest).
func (v *view[T]) scanWeighted(pool reverseproxy.UpstreamPool, rnd random, k int, weighted bool, ex *attempts, buf *[maxChoices]int) []int {
	k = min(k, maxChoices)
	out := buf[:0]
	var keys [maxChoices]float64
	seen := 0
	for i, u := range pool {
		if !ex.avail(u) || weighted && v.weights[i] <= 0 {
			continue
		}
		seen++
		if !weighted {
			if len(out) < k {
				out = append(out, i)
			} else if j := rnd.IntN(seen); j < k {
				out[j] = i
			}
			continue
		}
		key := powInv(rnd.Float64(), v.weights[i])
		if len(out) < k {
			keys[len(out)] = key
			out = append(out, i)
			continue
		}
		lo := 0
		for j := 1; j < k; j++ {
			if keys[j] < keys[lo] {
				lo = j
			}
		}
		if key > keys[lo] {
			keys[lo], out[lo] = key, i
		}
	}
	return out
}

// lowest returns the candidate with the lowest load (skipping NaN loads,
// the excluded ones), ties broken at random; -1 when there is none.
func lowest(cands []int, rnd random, load func(i int) float64) int {
	best, ties, bestLoad := -1, 0, 0.0
	for _, i := range cands {
		l := load(i)
		switch {
		case math.IsNaN(l):
		case best < 0 || l < bestLoad:
			best, ties, bestLoad = i, 1, l
		case l == bestLoad:
			ties++
			if rnd.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// searchCum returns the first index whose running weight exceeds r.
func (v *view[T]) searchCum(r float64) int {
	lo, hi := 0, len(v.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if v.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

func contains(s []int, x int) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// upstreamAt returns pool[i], or nil for i < 0.
func upstreamAt(pool reverseproxy.UpstreamPool, i int) *reverseproxy.Upstream {
	if i < 0 {
		return nil
	}
	return pool[i]
}

// powInv is u^(1/w), the Efraimidis–Spirakis key of a weight.
func powInv(u, w float64) float64 { return math.Pow(u, 1/w) }

// durationOr returns d in nanoseconds, or def when d is not positive.
func durationOr(d caddy.Duration, def int64) int64 {
	if d > 0 {
		return int64(d)
	}
	return def
}
