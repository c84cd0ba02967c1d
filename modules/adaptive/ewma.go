package adaptive

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// unprobedPenalty is the load of a target that has no estimate yet but
// already a request in flight (Finagle's Penalty, Long.MaxValue >> 16
// nanoseconds): a new target gets one request at a time until its first
// response.
const unprobedPenalty = float64(math.MaxInt64 >> 16)

// peakParams are the parameters of a peak-EWMA estimator.
type peakParams struct {
	// tau is the decay time constant, in nanoseconds.
	tau float64
	// defaultRTT is the estimate of a target never observed (0: unprobed,
	// as Finagle).
	defaultRTT float64
	// penalty is the latency a failure or 429 counts as (0: failures
	// count their real latency).
	penalty float64
	// maxRetryAfter caps the Retry-After that raises the penalty.
	maxRetryAfter float64
}

// peakEWMA is Finagle's peak-EWMA latency estimate of one target (the
// same math as tower's and Linkerd's PeakEwma), with Linkerd's failure
// penalty ("load biaser"):
//
//	observe(rtt): rtt' = max(rtt, penalty, min(Retry-After, cap)) for a failure or 429
//	              cost = rtt'                        if rtt' > cost   (peaks count at once)
//	              cost = cost·w + rtt'·(1-w)         otherwise, w = exp(-Δt/τ)
//	load(pending): cost = cost·exp(-Δt/τ)            (decay on read)
//	              Penalty + pending                  if cost = 0 and pending > 0
//	              cost·(pending+1)                   otherwise
//
// Δt is the time since the last observation or read.
type peakEWMA struct {
	p peakParams

	mu       sync.Mutex
	cost     float64 // ns
	stamp    int64   // ns
	observed int64   // ns, time of the last observation (0: none)
	floor    float64 // ns, the valley estimate (see observeFloor)

	selections atomic.Uint64
}

func newPeakEWMA(p peakParams, now int64) *peakEWMA {
	return &peakEWMA{p: p, cost: p.defaultRTT, stamp: now}
}

// observe feeds one outcome.
func (e *peakEWMA) observe(now int64, s sample) {
	rtt := float64(s.rtt)
	if e.p.penalty > 0 && s.overloaded() {
		rtt = max(rtt, e.p.penalty, min(float64(s.retryAfter), e.p.maxRetryAfter))
	}
	e.mu.Lock()
	if rtt > e.cost {
		e.cost = rtt
	} else {
		w := decay(now-e.stamp, e.p.tau)
		e.cost = e.cost*w + rtt*(1-w)
	}
	if now > e.stamp {
		e.stamp = now
	}
	e.floor = valley(e.floor, float64(s.rtt), now-e.observed, e.observed == 0, floorTau)
	e.observed = max(e.observed, now)
	e.mu.Unlock()
}

// floorTau is the time constant with which a target's floor latency rises.
const floorTau = float64(time.Second)

// valley is the floor estimate of a latency after a sample rtt, dt after
// the previous one: a lower sample counts at once, higher ones raise it
// with an exponential moving average of time constant tau. Peaks that all
// targets share when the proxy stalls (a GC pause, the OS running
// something else) barely move it; a target that is slow by itself has no
// fast answers, and its floor is its latency.
func valley(floor, rtt float64, dt int64, first bool, tau float64) float64 {
	if first || rtt <= floor {
		return rtt
	}
	w := decay(dt, tau)
	return floor*w + rtt*(1-w)
}

// load decays the estimate to now and returns the load with pending
// requests in flight.
func (e *peakEWMA) load(now, pending int64) float64 {
	return peakLoad(e.costAt(now), pending)
}

// costAt decays the estimate to now and returns it.
func (e *peakEWMA) costAt(now int64) float64 {
	c, _, _ := e.costSince(now)
	return c
}

// costSince decays the estimate to now and returns it with the floor
// estimate and the time of the last observation (0: none).
func (e *peakEWMA) costSince(now int64) (cost, floor float64, observed int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now > e.stamp {
		e.cost *= decay(now-e.stamp, e.p.tau)
		e.stamp = now
	}
	return e.cost, e.floor, e.observed
}

// waitedCost is the latency the slow-target rule compares: the estimate,
// or, while requests are in flight, the time since the last response when
// longer — a lower bound of how long the oldest of them has been waiting.
// A target whose estimate decayed while it got no traffic thus does not
// look fast once requests wait on it: without it, every comparison would
// go to such a target until its first answer (a herd).
func waitedCost(cost float64, observed, now, pending int64) float64 {
	if pending > 0 && observed > 0 && now > observed {
		return max(cost, float64(now-observed))
	}
	return cost
}

// estimate returns the estimate projected to now, without changing it
// (for the metrics).
func (e *peakEWMA) estimate(now int64) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cost * decay(now-e.stamp, e.p.tau)
}

func peakLoad(cost float64, pending int64) float64 {
	if pending < 0 {
		pending = 0
	}
	if cost == 0 && pending > 0 {
		return unprobedPenalty + float64(pending)
	}
	return cost * float64(pending+1)
}
