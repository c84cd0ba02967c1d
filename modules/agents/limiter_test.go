package agents

import (
	"context"
	"testing"
	"time"
)

// TestLimiterWaitIdle: the drain wakes when the last call ends (no
// polling interval) and gives up at its deadline while a call is still
// in flight.
func TestLimiterWaitIdle(t *testing.T) {
	l := newLimiter(2, 1)
	if !l.waitIdle(time.Now()) {
		t.Fatal("an unused limiter is not idle")
	}
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if l.waitIdle(start.Add(30 * time.Millisecond)) {
		t.Fatal("idle with a call in flight")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("gave up after %v, before the deadline", d)
	}

	done := make(chan bool)
	go func() { done <- l.waitIdle(time.Now().Add(time.Minute)) }()
	time.Sleep(20 * time.Millisecond)
	released := time.Now()
	l.release()
	select {
	case idle := <-done:
		if !idle {
			t.Fatal("not idle after the release")
		}
		if d := time.Since(released); d > 5*time.Second {
			t.Fatalf("woke %v after the release", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitIdle did not wake on the release")
	}

	// A queued call that gives up wakes the waiter too.
	for range 2 {
		if err := l.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error)
	go func() { queued <- l.acquire(ctx) }()
	for l.queueDepth() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() { done <- l.waitIdle(time.Now().Add(time.Minute)) }()
	cancel()
	if err := <-queued; err == nil {
		t.Fatal("cancelled acquire succeeded")
	}
	l.release()
	l.release()
	if !<-done {
		t.Fatal("not idle after the queue emptied")
	}
}
