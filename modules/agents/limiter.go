package agents

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// errQueueFull is returned at once when an agent's queue is full.
var errQueueFull = errors.New("agent queue full")

// limiter is one agent's concurrency limit with a bounded wait queue. It
// is never shared between agents: a slow agent fills only its own queue,
// and a call that finds it full fails at once instead of waiting.
type limiter struct {
	slots    chan struct{}
	maxQueue int64
	queued   atomic.Int64
	// changed holds a token when a slot was released or a queued call
	// left the queue since the last wait (one waiter: the drain).
	changed chan struct{}
}

func newLimiter(concurrency, queue int) *limiter {
	if concurrency < 1 {
		concurrency = 1
	}
	if queue < 0 {
		queue = 0
	}
	return &limiter{slots: make(chan struct{}, concurrency), maxQueue: int64(queue), changed: make(chan struct{}, 1)}
}

// acquire takes a slot, waiting in the queue if all are taken and the
// queue has room; errQueueFull when it has none, ctx's error when ctx
// ends first.
func (l *limiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	if l.queued.Add(1) > l.maxQueue {
		l.queued.Add(-1)
		l.signal()
		return errQueueFull
	}
	defer func() { l.queued.Add(-1); l.signal() }()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes a slot only if one is free now.
func (l *limiter) tryAcquire() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives a slot back.
func (l *limiter) release() {
	<-l.slots
	l.signal()
}

// signal wakes the waiter of waitIdle, if any.
func (l *limiter) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitIdle waits until no slot is taken and no call is queued, or until
// deadline; it reports whether the limiter is idle. One goroutine at a
// time may wait.
func (l *limiter) waitIdle(deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for l.inFlight() > 0 || l.queueDepth() > 0 {
		select {
		case <-l.changed:
		case <-timer.C:
			return l.inFlight() == 0 && l.queueDepth() == 0
		}
	}
	return true
}

// inFlight is the number of slots taken.
func (l *limiter) inFlight() int { return len(l.slots) }

// queueDepth is the number of calls waiting.
func (l *limiter) queueDepth() int { return int(l.queued.Load()) }
