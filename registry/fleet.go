package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FleetStore is a SharedStore whose replicas also share what each of
// them is serving, so that a drain is fleet-wide: a draining target is
// reported drained only when no replica has a request in flight to it.
//
// Each replica publishes a ReplicaReport under its own id; the store
// keeps it while the replica lives (an etcd lease) and drops it when the
// replica stops or is lost, so that a dead replica does not hold a drain
// forever.
type FleetStore interface {
	SharedStore
	// PublishReport saves this replica's report (and keeps it alive: a
	// replica that stops publishing is dropped after a few seconds).
	PublishReport(ctx context.Context, replica string, report ReplicaReport) error
	// WithdrawReport removes this replica's report (it stops following
	// the store).
	WithdrawReport(ctx context.Context, replica string) error
	// WatchReports calls update with the reports of every live replica,
	// this one included, at the start and after every change, until ctx
	// is done.
	WatchReports(ctx context.Context, update func(map[string]ReplicaReport))
}

// ReplicaReport is what one replica of a fleet tells the others.
type ReplicaReport struct {
	// Revision is the shared state's revision the replica has applied.
	Revision int64 `json:"revision"`
	// Busy are the draining targets to which the replica has requests
	// in flight, sorted.
	Busy []string `json:"busy,omitempty"`
}

// ReplicaStatus is one live replica of the fleet, as GET /api/v1/state
// shows it.
type ReplicaStatus struct {
	// ID names the replica: its host name, process id and a random part.
	ID string `json:"id"`
	// Revision is the shared state's revision the replica has applied.
	Revision int64 `json:"revision"`
	// Busy are the draining targets it still sends requests to.
	Busy []string `json:"busy,omitempty"`
	// Self marks the replica that answers.
	Self bool `json:"self,omitempty"`
}

// fleetState is a registry's view of the other replicas.
type fleetState struct {
	mu      sync.Mutex
	id      string
	active  bool
	reports map[string]ReplicaReport
}

// reportInterval is how often a replica checks whether its report
// changed (and so how long a finished drain takes to be seen);
// keepAliveInterval how often an unchanged report is renewed.
const (
	reportInterval    = 200 * time.Millisecond
	keepAliveInterval = time.Second
)

// replicaID names this process in the fleet: host name, pid and a
// random part (a restarted replica is a new one).
func replicaID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// followFleet publishes this replica's reports and follows the others'
// until ctx is done; then it withdraws its report.
func (r *Registry) followFleet(ctx context.Context, s FleetStore) {
	r.fleet.mu.Lock()
	if r.fleet.id == "" {
		r.fleet.id = replicaID()
	}
	id := r.fleet.id
	r.fleet.active = true
	r.fleet.reports = nil
	r.fleet.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.WatchReports(ctx, func(m map[string]ReplicaReport) {
			r.fleet.mu.Lock()
			r.fleet.reports = m
			r.fleet.mu.Unlock()
		})
	}()
	var last *ReplicaReport
	var sent time.Time
	var draining drainingSet
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	for {
		rep := r.report(&draining)
		if last == nil || rep.Revision != last.Revision || !slices.Equal(rep.Busy, last.Busy) || time.Since(sent) >= keepAliveInterval {
			pctx, cancel := context.WithTimeout(ctx, sharedTimeout)
			if err := s.PublishReport(pctx, id, rep); err == nil {
				last, sent = &rep, time.Now()
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.WithdrawReport(wctx, id)
			cancel()
			wg.Wait()
			r.fleet.mu.Lock()
			r.fleet.active = false
			r.fleet.reports = nil
			r.fleet.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

// drainingSet is the draining targets' addresses, listed again only
// when the registry's state may have changed (its version, the shared
// revision applied, the configuration), not at every report: a registry
// of 100,000 upstreams is not scanned five times a second.
type drainingSet struct {
	key   [3]uint64
	addrs []string
}

// report is this replica's report now.
func (r *Registry) report(d *drainingSet) ReplicaReport {
	r.mu.Lock()
	rep := ReplicaReport{Revision: r.rev}
	if key := [3]uint64{r.version, uint64(r.rev), r.generation}; d.addrs == nil || d.key != key {
		d.key, d.addrs = key, []string{}
		for _, e := range r.upstreams {
			for _, t := range e.effective {
				if t.State == StateDraining {
					d.addrs = append(d.addrs, t.Address)
				}
			}
		}
		slices.Sort(d.addrs)
		d.addrs = slices.Compact(d.addrs)
	}
	r.mu.Unlock()
	for _, a := range d.addrs {
		if r.Stats(a).InFlight() > 0 {
			rep.Busy = append(rep.Busy, a)
		}
	}
	return rep
}

// fleetBusy reports whether another replica may still be serving
// address: it has not applied the state this replica has (rev), or it
// says it is busy with it. Without a fleet, no other replica is.
func (r *Registry) fleetBusy(address string, rev int64) bool {
	r.fleet.mu.Lock()
	defer r.fleet.mu.Unlock()
	if !r.fleet.active {
		return false
	}
	if r.fleet.reports == nil {
		return true // not heard from the fleet yet
	}
	for id, rep := range r.fleet.reports {
		if id == r.fleet.id {
			continue
		}
		if rep.Revision < rev || slices.Contains(rep.Busy, address) {
			return true
		}
	}
	return false
}

// replicas lists the live replicas of the fleet (nil without one).
func (r *Registry) replicas() []ReplicaStatus {
	r.fleet.mu.Lock()
	defer r.fleet.mu.Unlock()
	if !r.fleet.active {
		return nil
	}
	out := []ReplicaStatus{}
	for id, rep := range r.fleet.reports {
		out = append(out, ReplicaStatus{ID: id, Revision: rep.Revision, Busy: rep.Busy, Self: id == r.fleet.id})
	}
	slices.SortFunc(out, func(a, b ReplicaStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}
