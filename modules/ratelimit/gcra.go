package ratelimit

import "time"

// The limiter is GCRA (the generic cell rate algorithm): a key's whole
// state is one number, its theoretical arrival time (TAT), the instant at
// which its bucket would be full again. A request is admitted when moving
// the TAT one emission interval on keeps it within the tolerance of now.
// It is a token bucket of `burst` requests refilled at `max-rps`, without
// a timer or a counter, so that a shared store can run it in one atomic
// step.

// params are the GCRA parameters of a limit, in nanoseconds.
type params struct {
	interval int64 // T: one request's share of a second, 1s / rps
	tol      int64 // τ: burst × T, how far ahead of now the TAT may go
	maxDelay int64 // D: in delay mode, how much further requests may wait
}

func newParams(rps float64, burst int, maxDelay time.Duration) params {
	t := int64(float64(time.Second) / rps)
	if t < 1 {
		t = 1
	}
	return params{interval: t, tol: int64(max(burst, 1)) * t, maxDelay: int64(maxDelay)}
}

// decision is the outcome of one request against a limit.
type decision struct {
	// allowed: the request goes on (after wait, in delay mode).
	allowed bool
	// wait is how long a delayed request waits before it goes on.
	wait time.Duration
	// remaining is how many more requests would be admitted right now.
	remaining int64
	// reset is how long until the bucket is full again.
	reset time.Duration
	// retryAfter is, for a rejected request, how long until one would
	// be admitted.
	retryAfter time.Duration
}

// gcra decides a request at now against the TAT tat (0: unknown key) and
// returns the new TAT, to be stored when the request is admitted.
func gcra(p params, tat, now int64) (int64, decision) {
	base := max(tat, now)
	next := base + p.interval
	ahead := next - now
	switch {
	case ahead <= p.tol:
		return next, decision{allowed: true, remaining: (p.tol - ahead) / p.interval, reset: time.Duration(ahead)}
	case ahead <= p.tol+p.maxDelay:
		return next, decision{allowed: true, wait: time.Duration(ahead - p.tol), reset: time.Duration(ahead)}
	default:
		return tat, decision{reset: time.Duration(base - now), retryAfter: time.Duration(ahead - p.tol)}
	}
}
