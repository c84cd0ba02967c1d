package adaptive

import (
	"math"
	"sync"
	"sync/atomic"
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
	e.observed = max(e.observed, now)
	e.mu.Unlock()
}

// load decays the estimate to now and returns the load with pending
// requests in flight.
func (e *peakEWMA) load(now, pending int64) float64 {
	return peakLoad(e.costAt(now), pending)
}

// costAt decays the estimate to now and returns it.
func (e *peakEWMA) costAt(now int64) float64 {
	c, _ := e.costSince(now)
	return c
}

// costSince decays the estimate to now and returns it with the time of
// the last observation (0: none).
func (e *peakEWMA) costSince(now int64) (float64, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now > e.stamp {
		e.cost *= decay(now-e.stamp, e.p.tau)
		e.stamp = now
	}
	return e.cost, e.observed
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
