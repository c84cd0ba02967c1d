package agents

import (
	"sync"
	"time"
)

// breakerState is the state of a circuit breaker.
type breakerState int32

// The breaker states, as exported in the breaker_state metric.
const (
	breakerClosed   breakerState = 0
	breakerOpen     breakerState = 1
	breakerHalfOpen breakerState = 2
)

// String is the state's name in /api/v1/agents.
func (s breakerState) String() string {
	switch s {
	case breakerOpen:
		return "open"
	case breakerHalfOpen:
		return "half_open"
	default:
		return "closed"
	}
}

// breaker is one agent's circuit breaker, with the original's semantics:
// failureThreshold consecutive failures open it; after openFor one call
// in halfOpenMax is let through at a time; successThreshold successes in
// a row close it, a failure re-opens it.
type breaker struct {
	failureThreshold int
	successThreshold int
	halfOpenMax      int
	openFor          time.Duration
	now              func() time.Time

	mu        sync.Mutex
	state     breakerState
	failures  int
	successes int
	probes    int
	openedAt  time.Time
}

func newBreaker(c *BreakerConfig) *breaker {
	b := &breaker{failureThreshold: 5, successThreshold: 2, halfOpenMax: 1, openFor: 30 * time.Second, now: time.Now}
	if c != nil {
		if c.FailureThreshold > 0 {
			b.failureThreshold = c.FailureThreshold
		}
		if c.SuccessThreshold > 0 {
			b.successThreshold = c.SuccessThreshold
		}
		if c.HalfOpenMaxRequests > 0 {
			b.halfOpenMax = c.HalfOpenMaxRequests
		}
		if c.Timeout > 0 {
			b.openFor = time.Duration(c.Timeout)
		}
	}
	return b
}

// allow reports whether a call may go to the agent. A true answer must be
// followed by exactly one success, failure or release.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerOpen:
		if b.now().Sub(b.openedAt) < b.openFor {
			return false
		}
		b.state, b.successes, b.probes = breakerHalfOpen, 0, 0
		fallthrough
	case breakerHalfOpen:
		if b.probes >= b.halfOpenMax {
			return false
		}
		b.probes++
	}
	return true
}

// success records a successful call.
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerHalfOpen:
		b.probes--
		b.successes++
		if b.successes >= b.successThreshold {
			b.state, b.failures, b.successes = breakerClosed, 0, 0
		}
	default:
		b.failures = 0
	}
}

// failure records a failed call (transport error or timeout).
func (b *breaker) failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerHalfOpen:
		b.state, b.openedAt, b.probes = breakerOpen, b.now(), 0
	case breakerClosed:
		b.failures++
		if b.failures >= b.failureThreshold {
			b.state, b.openedAt = breakerOpen, b.now()
		}
	}
}

// release gives back a half-open probe that ended neither way (the
// client went away).
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerHalfOpen && b.probes > 0 {
		b.probes--
	}
}

// current returns the state (open turns half-open when its time is up).
func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerOpen && b.now().Sub(b.openedAt) >= b.openFor {
		return breakerHalfOpen
	}
	return b.state
}
