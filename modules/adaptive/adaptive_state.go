package adaptive

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// adaptiveParams are the tunables of the adaptive algorithm.
type adaptiveParams struct {
	interval         int64    // ns between weight adjustments
	minRatio         float64  // lowest weight, × the configured weight
	maxRatio         float64  // highest weight, × the configured weight
	errThreshold     float64  // failure ratio above which the weight drops
	latThreshold     float64  // ns; average latency above which the weight drops
	latRatio         float64  // a latency above latRatio × the median of the pool's also drops it (0: off)
	alpha            float64  // weight of the new interval in the EWMAs
	recovery         float64  // weight factor of a healthy interval
	penalty          float64  // the weight factor of an unhealthy interval is penalty + (1-penalty)·adj
	minRequests      uint64   // requests an interval needs to count
	maxCarryOver     int      // intervals a target's counters carry over at most (< 0: no limit)
	breakerFailures  int      // consecutive failures that open the breaker (0: no breaker)
	breakerSuccesses int      // consecutive successes that close it
	breakerTimeout   int64    // ns an open breaker excludes the target before it is tried again
	slow             slowRule // a target this much slower than the pool's median recent latency is left out
}

// recentTau is the time constant of a target's recent latency, in
// adjustment intervals.
const recentTau = 2

// adaptiveGroup is the shared state of the adaptive policies of one
// upstream with the same parameters; it is the shared state of their
// policyState, so it outlives the config loads that keep the parameters.
type adaptiveGroup struct {
	p          adaptiveParams
	lastAdjust atomic.Int64
	// refLat is the median of the targets' recent latencies at the last
	// adjustment (ns; 0: unknown), the reference of the slow rule.
	refLat atomicFloat

	mu      sync.Mutex
	members map[string]bool // addresses of the last pool seen
}

func newAdaptiveGroup(p adaptiveParams, now int64) *adaptiveGroup {
	g := &adaptiveGroup{p: p, members: map[string]bool{}}
	g.lastAdjust.Store(now)
	return g
}

// maybeAdjust adjusts the weights of targets, at most once per interval
// (the first caller after the interval does it).
func (g *adaptiveGroup) maybeAdjust(now int64, targets []*adaptiveTarget) bool {
	last := g.lastAdjust.Load()
	if now-last < g.p.interval || !g.lastAdjust.CompareAndSwap(last, now) {
		return false
	}
	due := make([]bool, len(targets))
	lats := make([]float64, 0, len(targets))
	recent := make([]float64, 0, len(targets))
	for i, t := range targets {
		due[i] = t.average()
		if l := t.ewmaLat.Load(); l > 0 {
			lats = append(lats, l)
		}
		if l := t.recentAt(now); l > 0 {
			recent = append(recent, l)
		}
	}
	if len(recent) > 0 {
		g.refLat.Store(median(recent))
	} else {
		g.refLat.Store(0)
	}
	threshold := g.p.latThreshold
	if g.p.latRatio > 0 && len(lats) >= 2 {
		// Relative to the pool: a target much slower than its peers is
		// penalised even under the absolute threshold (not below 1 ms,
		// so that sub-millisecond jitter does not move weights).
		threshold = min(threshold, max(g.p.latRatio*median(lats), float64(time.Millisecond)))
	}
	for i, t := range targets {
		if due[i] {
			t.reweigh(threshold)
		}
	}
	return true
}

// median returns the median of xs (which it sorts); the lower middle
// value for an even count.
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[(len(xs)-1)/2]
}

// rejoin resets the targets that came back into the pool (a health check
// marked them healthy again, or they were re-added): weight back to the
// configured one, breaker and failure counters cleared.
func (g *adaptiveGroup) rejoin(addrs []string, targets []*adaptiveTarget) {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := make(map[string]bool, len(addrs))
	for i, a := range addrs {
		next[a] = true
		if !g.members[a] && len(g.members) > 0 {
			targets[i].reset()
		}
	}
	g.members = next
}

// adaptiveTarget is the adaptive state of one target of a group.
type adaptiveTarget struct {
	g *adaptiveGroup

	// Read without lock by the selection.
	weight  atomicFloat // effective weight
	w0      atomicFloat // configured weight
	ewmaErr atomicFloat
	ewmaLat atomicFloat // ns
	// recent is the floor latency (ns) of every outcome (see valley): a
	// faster response lowers it at once, slower ones raise it with an
	// exponential moving average, and it decays toward 0 with time (time
	// constant recentTau intervals, for both), as of recentStamp.
	recent      atomicFloat
	recentStamp atomic.Int64
	open        atomic.Bool
	openedAt    atomic.Int64

	mu         sync.Mutex
	requests   uint64
	failures   uint64
	successes  uint64
	latSum     float64 // ns, of the successes
	carried    int     // intervals the counters carried over
	consecSucc int
	consecFail int

	selections atomic.Uint64
}

func newAdaptiveTarget(g *adaptiveGroup, w0 float64) *adaptiveTarget {
	t := &adaptiveTarget{g: g}
	t.w0.Store(w0)
	t.weight.Store(w0)
	return t
}

// observe records one outcome: a success is a response below 500; its
// latency counts.
func (t *adaptiveTarget) observe(now int64, s sample) {
	p := &t.g.p
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeRecent(now, float64(s.rtt))
	t.requests++
	if !s.failed() {
		t.consecSucc++
		t.consecFail = 0
		t.latSum += float64(s.rtt)
		t.successes++
		if t.open.Load() && t.consecSucc >= p.breakerSuccesses {
			t.open.Store(false)
		}
		return
	}
	t.failures++
	t.consecFail++
	t.consecSucc = 0
	if p.breakerFailures > 0 && t.consecFail >= p.breakerFailures {
		// Opens, or opens again after a failed trial.
		t.openedAt.Store(now)
		t.open.Store(true)
	}
}

// observeRecent feeds a latency (ns) into the recent latency; t.mu is
// held.
func (t *adaptiveTarget) observeRecent(now int64, rtt float64) {
	stamp := t.recentStamp.Load()
	tau := float64(recentTau * t.g.p.interval)
	t.recent.Store(valley(t.recent.Load()*decay(now-stamp, tau), rtt, now-stamp, stamp == 0, tau))
	if now > stamp {
		t.recentStamp.Store(now)
	}
}

// recentAt returns the recent latency decayed to now (ns).
func (t *adaptiveTarget) recentAt(now int64) float64 {
	return t.recent.Load() * decay(now-t.recentStamp.Load(), float64(recentTau*t.g.p.interval))
}

// slowAt reports whether the target, with inFlight requests in flight, is
// slow against the pool (see slowRule): its recent latency (or, while
// requests wait on it, the time since its last response when longer: see
// waitedCost) against the median at the last adjustment.
func (t *adaptiveTarget) slowAt(now, inFlight int64) bool {
	stamp := t.recentStamp.Load()
	if stamp == 0 {
		return false
	}
	lat := waitedCost(t.recent.Load()*decay(now-stamp, float64(recentTau*t.g.p.interval)), stamp, now, inFlight)
	return t.g.p.slow.slow(lat, t.g.refLat.Load())
}

// average ends an interval of a target that saw enough requests (or
// whose counters carried over maxCarryOver intervals), updating its
// averages; it reports whether the weight is then due (reweigh):
//
//	ewma_err = α·failures/requests + (1-α)·ewma_err
//	ewma_lat = α·mean latency of successes + (1-α)·ewma_lat
func (t *adaptiveTarget) average() bool {
	p := &t.g.p
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.requests < p.minRequests {
		t.carried++
		if p.maxCarryOver < 0 || t.carried < p.maxCarryOver {
			return false // carry over, as in the original
		}
		t.carried = 0
		if t.requests == 0 {
			// Starved (its own penalty keeps the traffic away): the
			// averages fade as after a clean interval, so the target is
			// tried again (as peak EWMA decays).
			t.ewmaErr.Store((1 - p.alpha) * t.ewmaErr.Load())
			t.ewmaLat.Store((1 - p.alpha) * t.ewmaLat.Load())
			return false
		}
	}
	t.carried = 0
	errs := float64(t.failures) / float64(t.requests)
	lat := t.ewmaLat.Load()
	if t.successes > 0 {
		lat = t.latSum / float64(t.successes)
	}
	t.ewmaErr.Store(p.alpha*errs + (1-p.alpha)*t.ewmaErr.Load())
	t.ewmaLat.Store(p.alpha*lat + (1-p.alpha)*t.ewmaLat.Load())
	t.requests, t.failures, t.successes, t.latSum = 0, 0, 0, 0
	return true
}

// reweigh sets the weight from the averages (see nextWeight), with
// latThreshold the latency above which the weight drops.
func (t *adaptiveTarget) reweigh(latThreshold float64) {
	p := t.g.p
	p.latThreshold = latThreshold
	t.mu.Lock()
	defer t.mu.Unlock()
	t.weight.Store(nextWeight(&p, t.weight.Load(), t.w0.Load(), t.ewmaErr.Load(), t.ewmaLat.Load()))
}

// nextWeight is the weight after an interval:
//
//	adj = 1
//	if ewma_err > error threshold: adj ×= 1 - min((ewma_err - threshold)·10, 0.9)
//	if ewma_lat > latency threshold: adj ×= max(threshold/ewma_lat, 0.1)
//	w = w·(penalty + (1-penalty)·adj) if adj < 1, else w·recovery
//	w = clamp(w, min ratio·w0, max ratio·w0)
func nextWeight(p *adaptiveParams, w, w0, ewmaErr, ewmaLat float64) float64 {
	adj := 1.0
	if ewmaErr > p.errThreshold {
		adj *= 1 - math.Min((ewmaErr-p.errThreshold)*10, 0.9)
	}
	if ewmaLat > p.latThreshold && p.latThreshold > 0 {
		adj *= math.Max(p.latThreshold/ewmaLat, 0.1)
	}
	if adj < 1 {
		w *= p.penalty + (1-p.penalty)*adj
	} else {
		w *= p.recovery
	}
	return math.Min(math.Max(w, p.minRatio*w0), p.maxRatio*w0)
}

// reset brings a target back to its configured weight, closes its
// breaker and clears its failure counters.
func (t *adaptiveTarget) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.weight.Store(t.w0.Load())
	t.open.Store(false)
	t.consecFail, t.failures = 0, 0
}

// setConfigured follows a change of the configured weight, keeping the
// learned ratio.
func (t *adaptiveTarget) setConfigured(w0 float64) {
	old := t.w0.Load()
	if old == w0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old > 0 {
		t.weight.Store(t.weight.Load() / old * w0)
	} else {
		t.weight.Store(w0)
	}
	t.w0.Store(w0)
}

// blocked reports whether the breaker keeps the target out: open, and
// opened less than the breaker timeout ago (after it, the target is tried
// again; the next failure opens the breaker again, enough successes close
// it).
func (t *adaptiveTarget) blocked(now int64) bool {
	return t.open.Load() && now-t.openedAt.Load() < t.g.p.breakerTimeout
}

// score is the target's share in the weighted random choice:
//
//	w / (1 + in flight + ewma_err·100 + ewma_lat_ms/10)
func (t *adaptiveTarget) score(inFlight int64) float64 {
	return adaptiveScore(t.weight.Load(), inFlight, t.ewmaErr.Load(), t.ewmaLat.Load())
}

func adaptiveScore(w float64, inFlight int64, ewmaErr, ewmaLatNs float64) float64 {
	return w / (1 + float64(max(inFlight, 0)) + ewmaErr*100 + math.Max(ewmaLatNs/1e6/10, 0))
}

// atomicFloat is a float64 read and written atomically.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) Load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) Store(v float64) { f.bits.Store(math.Float64bits(v)) }
