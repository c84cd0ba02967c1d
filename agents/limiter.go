package agents

import (
	"context"
	"errors"
	"sync/atomic"
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
}

func newLimiter(concurrency, queue int) *limiter {
	if concurrency < 1 {
		concurrency = 1
	}
	if queue < 0 {
		queue = 0
	}
	return &limiter{slots: make(chan struct{}, concurrency), maxQueue: int64(queue)}
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
		return errQueueFull
	}
	defer l.queued.Add(-1)
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
func (l *limiter) release() { <-l.slots }

// inFlight is the number of slots taken.
func (l *limiter) inFlight() int { return len(l.slots) }

// queueDepth is the number of calls waiting.
func (l *limiter) queueDepth() int { return int(l.queued.Load()) }
