package kubestore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/registry"
)

// TestReportLeases: the fleet's replica reports in Leases, as a user
// with the documented rights: a report is seen by another store's watch;
// an unchanged one is renewed without a write each time; a replica lost
// without withdrawing (its renewals stop) drops out when its Lease
// expires, and the Lease is deleted; one republished afterwards is seen
// again; a withdrawn one is gone at once. Registries on the store list
// each other (GET /api/v1/state's replicas).
func TestReportLeases(t *testing.T) {
	kubetest.Need(t, env)
	kc := restricted(t, "reports", "sentinel-state")
	a, b := newStore(t, kc, "reports", "sentinel-state"), newStore(t, kc, "reports", "sentinel-state")
	a.ttl, b.ttl = 2*time.Second, 2*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan map[string]registry.ReplicaReport, 64)
	go a.WatchReports(ctx, func(m map[string]registry.ReplicaReport) { seen <- m })
	wait := func(what string, ok func(map[string]registry.ReplicaReport) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
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
	if err := b.PublishReport(ctx, "lost", rep); err != nil {
		t.Fatal(err)
	}
	wait("the report", func(m map[string]registry.ReplicaReport) bool {
		r, ok := m["lost"]
		return ok && r.Revision == 7 && slices.Equal(r.Busy, rep.Busy)
	})
	// Unchanged at once: no write (the Lease's resourceVersion stays).
	before := b.reports.lease.ResourceVersion
	if err := b.PublishReport(ctx, "lost", rep); err != nil || b.reports.lease.ResourceVersion != before {
		t.Fatalf("an unchanged report was written again at once: %v", err)
	}
	name := b.leaseName("lost")
	start := time.Now()
	wait("the lost replica's report to expire", func(m map[string]registry.ReplicaReport) bool { _, ok := m["lost"]; return !ok })
	t.Logf("a lost replica dropped out after %v (Lease duration 2 s)", time.Since(start))
	eventually(t, 5*time.Second, "the expired Lease deleted", func() bool {
		_, err := admin(t).CoordinationV1().Leases("reports").Get(ctx, name, metav1.GetOptions{})
		return err != nil && strings.Contains(err.Error(), "not found")
	})
	// Republished after it expired (its Lease deleted under it).
	if err := b.PublishReport(ctx, "lost", rep); err != nil {
		// The first try finds its Lease gone and starts again.
		if err := b.PublishReport(ctx, "lost", rep); err != nil {
			t.Fatalf("publishing after the Lease expired: %v", err)
		}
	}
	wait("the report again", func(m map[string]registry.ReplicaReport) bool { _, ok := m["lost"]; return ok })
	if err := b.WithdrawReport(ctx, "lost"); err != nil {
		t.Fatal(err)
	}
	wait("the withdrawn report gone", func(m map[string]registry.ReplicaReport) bool { _, ok := m["lost"]; return !ok })

	// Three registries on the store see each other.
	fleet := []*registry.Registry{replica(t, kc, "reports", "sentinel-state"), replica(t, kc, "reports", "sentinel-state"), replica(t, kc, "reports", "sentinel-state")}
	for i, r := range fleet {
		eventually(t, 10*time.Second, "every replica listed", func() bool { return len(r.Status().Replicas) == 3 })
		t.Logf("replica %d lists %d replicas", i, len(r.Status().Replicas))
	}
}
