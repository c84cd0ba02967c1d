package sharedstore

import (
	"errors"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned by Do while the store is considered down
// (a recent operation failed and the backoff has not passed yet).
var ErrUnavailable = errors.New("shared store unavailable")

// DefaultBackoff is how long a store is left alone after a failed
// operation before one call probes it again.
const DefaultBackoff = time.Second

// Health tracks whether a store can be used. It is safe for concurrent
// use; the zero value is a healthy store with DefaultBackoff.
//
// After a failure (Report with a non-nil error) the store is down until
// the backoff has passed; then Allow lets exactly one call through as a
// probe, and the outcome of that call, reported with Report, brings the
// store back or starts a new backoff.
type Health struct {
	// Backoff is how long the store is skipped after a failure; zero
	// means DefaultBackoff.
	Backoff time.Duration
	// OnChange, when set, is called once per transition (down, then up
	// again) with the error that took the store down, or nil when it
	// recovered. It must not block.
	OnChange func(up bool, err error)

	downUntil atomic.Int64 // unix nanoseconds; 0: up
	probing   atomic.Bool
	down      atomic.Bool
}

// Allow reports whether a call may use the store now.
func (h *Health) Allow(now time.Time) bool {
	until := h.downUntil.Load()
	if until == 0 {
		return true
	}
	if now.UnixNano() < until {
		return false
	}
	// The backoff has passed: one probe at a time.
	return h.probing.CompareAndSwap(false, true)
}

// Up reports whether the store is considered usable (not in a backoff).
func (h *Health) Up() bool { return !h.down.Load() }

// Report records the outcome of a call that Allow let through: nil for
// an answer from the store (including "not found"), an error when the
// store could not be reached or did not answer in time.
func (h *Health) Report(now time.Time, err error) {
	if err == nil {
		if h.downUntil.Load() != 0 {
			h.downUntil.Store(0)
		}
		h.probing.Store(false)
		if h.down.CompareAndSwap(true, false) && h.OnChange != nil {
			h.OnChange(true, nil)
		}
		return
	}
	backoff := h.Backoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	h.downUntil.Store(now.Add(backoff).UnixNano())
	h.probing.Store(false)
	if h.down.CompareAndSwap(false, true) && h.OnChange != nil {
		h.OnChange(false, err)
	}
}
