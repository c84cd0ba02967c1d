package adaptive

import (
	"math"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// maxSchedule bounds the length of a precomputed round-robin cycle (the sum
// of the weights it covers). Larger weight sums use the O(n) algorithm on
// every selection.
const maxSchedule = 1 << 14

// schedule is one precomputed cycle of smooth weighted round robin (nginx's
// algorithm) over some targets of a view, all assumed available: selecting
// is then one atomic increment and an index, O(1) whatever the pool size,
// instead of a walk over every target. Each target appears in the cycle as
// many times as its weight, spread as the smooth algorithm spreads it
// (weights 5:1:1 give a a b a c a a).
//
// The cycle only holds while every target in it is available: when the
// drawn target is not, the caller falls back to the O(n) algorithm over
// the available targets (an unhealthy target is rare; the cost is paid
// only then).
type schedule struct {
	seq  []int32
	next atomic.Uint64
}

// newSchedule computes the cycle over the targets i of weights for which
// include(i) is true. It returns nil when a weight is not an integer, or
// the sum of the weights is 0 or over maxSchedule.
func newSchedule(weights []float64, include func(int) bool) *schedule {
	total := 0
	w := make([]int, len(weights))
	for i, f := range weights {
		if !include(i) || f <= 0 {
			continue
		}
		if f != math.Trunc(f) || f > maxSchedule {
			return nil
		}
		w[i] = int(f)
		total += w[i]
	}
	if total == 0 || total > maxSchedule {
		return nil
	}
	cur := make([]int, len(w))
	seq := make([]int32, total)
	for k := range seq {
		best := -1
		for i, wi := range w {
			if wi == 0 {
				continue
			}
			cur[i] += wi
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq[k] = int32(best)
	}
	return &schedule{seq: seq}
}

// pick returns the next target of the cycle; pickStale when its address is
// not the pool's (the caller rebuilds its view), pickEmpty when it is not
// available or in ex (the caller falls back to the scan).
func (sc *schedule) pick(pool reverseproxy.UpstreamPool, addrs []string, ex *attempts) int {
	i := int(sc.seq[(sc.next.Add(1)-1)%uint64(len(sc.seq))])
	if i >= len(pool) || pool[i].Dial != addrs[i] {
		return pickStale
	}
	if !ex.avail(pool[i]) {
		return pickEmpty
	}
	return i
}
