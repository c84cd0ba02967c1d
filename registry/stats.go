package registry

import "sync/atomic"

// TargetStats are the live counters of one target address, shared by
// every upstream and config that uses the address.
type TargetStats struct {
	inFlight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
}

// Stats returns the counters of an address, creating them.
func (r *Registry) Stats(address string) *TargetStats {
	if s, ok := r.stats.Load(address); ok {
		return s.(*TargetStats)
	}
	s, _ := r.stats.LoadOrStore(address, &TargetStats{})
	return s.(*TargetStats)
}

// Start counts a request sent to the target; end it with Done exactly
// once.
func (s *TargetStats) Start() { s.inFlight.Add(1); s.requests.Add(1) }

// Done ends a request started with Start (failed reports an error or
// 5xx).
func (s *TargetStats) Done(failed bool) {
	s.inFlight.Add(-1)
	if failed {
		s.failures.Add(1)
	}
}

// InFlight is the number of requests being served by the target.
func (s *TargetStats) InFlight() int64 { return s.inFlight.Load() }

// Requests is the number of requests sent to the target.
func (s *TargetStats) Requests() uint64 { return s.requests.Load() }

// Failures is the number of requests that failed (error or 5xx).
func (s *TargetStats) Failures() uint64 { return s.failures.Load() }

// TargetState returns the reported state of a target: drained when it is
// draining and nothing is in flight — in a fleet (FleetStore), on no
// replica that has applied the drain, and every live replica has.
func (r *Registry) TargetState(t Target) State {
	if t.State == StateDraining && r.Stats(t.Address).InFlight() == 0 {
		r.mu.Lock()
		rev := r.rev
		r.mu.Unlock()
		if r.fleetBusy(t.Address, rev) {
			return StateDraining
		}
		return StateDrained
	}
	return t.State
}
