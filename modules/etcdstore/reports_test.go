package etcdstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestReportLease checks that a replica lost without withdrawing (its
// renewals stop) drops out of the fleet when its lease expires, and that
// a report republished after the lease expired is saved again.
func TestReportLease(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	e := newStore(t, etcd.Endpoint, "/lease/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan map[string]registry.ReplicaReport, 64)
	go e.WatchReports(ctx, func(m map[string]registry.ReplicaReport) { seen <- m })
	wait := func(what string, ok func(map[string]registry.ReplicaReport) bool) {
		t.Helper()
		deadline := time.After(3 * reportTTL * time.Second)
		for {
			select {
			case m := <-seen:
				if ok(m) {
					return
				}
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	rep := registry.ReplicaReport{Revision: 7, Busy: []string{"10.0.0.9:80"}}
	if err := e.PublishReport(ctx, "lost", rep); err != nil {
		t.Fatal(err)
	}
	wait("the report", func(m map[string]registry.ReplicaReport) bool {
		r, ok := m["lost"]
		return ok && r.Revision == 7 && slices.Equal(r.Busy, rep.Busy)
	})
	// Unchanged: only the lease is renewed.
	if err := e.PublishReport(ctx, "lost", rep); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wait("the lost replica's report to expire", func(m map[string]registry.ReplicaReport) bool { _, ok := m["lost"]; return !ok })
	t.Logf("a lost replica dropped out after %v", time.Since(start))
	if err := e.PublishReport(ctx, "lost", rep); err != nil {
		t.Fatalf("publishing after the lease expired: %v", err)
	}
	wait("the report again", func(m map[string]registry.ReplicaReport) bool { _, ok := m["lost"]; return ok })
}
