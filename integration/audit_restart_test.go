//go:build linux

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
)

// TestAuditSinkDownProcessKilled is issue 21's proof with a real crash:
// the built sentinel binary, configured in KDL with an audit-log shipping
// to an Elasticsearch-compatible bulk server run by the test, answers
// requests a route's rate limit rejects (429: one rate_limit audit event
// each, its path unique). Meanwhile the sink goes down, the process is
// killed with SIGKILL (no graceful stop) in the middle of the stream and
// started again on the same spool directory, and the sink comes back;
// the process is killed once more while it delivers the backlog, after
// the sink stored a batch and before its answer: that batch is sent again
// after the restart, under the same ids.
// Every event whose 429 the client received arrives; an event may arrive
// twice only with the same id (the bulk server stores it once, and checks
// a second copy is identical); no path arrives under two ids.
//
// The default run is short (1,000 events, the sink down about 2 s, one
// kill); SENTINEL_LONG_TESTS=1 runs the 10,000 events with the
// sink down 30 s.
func TestAuditSinkDownProcessKilled(t *testing.T) {
	n, span, downAt, killAt, upAt := 1000, 4*time.Second, 500*time.Millisecond, 1500*time.Millisecond, 2500*time.Millisecond
	if testutil.LongTests() {
		n, span, downAt, killAt, upAt = 10000, 40*time.Second, 5*time.Second, 20*time.Second, 35*time.Second
	}
	bin := testutil.Build(t, "./cmd/sentinel")
	es := audittest.NewESBulk(t)
	b := startBackend(t, "b")
	addr := testutil.FreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sentinel.kdl")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
system { caddy-admin "off"; }
listeners { listener "http" { address %q; } }
upstreams { upstream "b" { target %q; } }
observability {
    logging {
        audit-log {
            spool-dir %q
            sinks {
                elasticsearch {
                    url %q
                    max-backoff "500ms"
                    batch-size 20
                    timeout "5s"
                }
            }
        }
    }
}
routes {
    route "api" {
        upstream "b"
        policies { rate-limit { requests-per-second 1; burst 1; key "global"; } }
    }
}
`, addr, b.addr, filepath.Join(dir, "spool"), es.URL)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	proc := testutil.NewProcess(t, "sentinel", env, bin, "run", "--config", cfg)
	proc.Start()
	waitUp(t, "http://"+addr+fmt.Sprintf("/up/%d", proc.Starts()))

	// The load: requests at n/span per second, each on its own path,
	// from 8 clients, until n were answered 429.
	var (
		mu       sync.Mutex
		acked    = make(map[string]bool, n) // paths answered 429
		ackedN   atomic.Int64
		failed   atomic.Int64 // no answer (the process was down or killed)
		admitted atomic.Int64
		next     atomic.Int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), span+2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(span / time.Duration(n))
	defer tick.Stop()
	work := make(chan string, 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for path := range work {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
				res, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusTooManyRequests:
					mu.Lock()
					acked[path] = true
					mu.Unlock()
					ackedN.Add(1)
				default:
					admitted.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	var killed, restarted, killed2 time.Time
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		defer close(work)
		for ackedN.Load() < int64(n) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			select {
			case work <- fmt.Sprintf("/e/%d", next.Add(1)):
			case <-ctx.Done():
				return
			}
		}
	}()
	timeline := []struct {
		at time.Duration
		do func()
	}{
		{downAt, func() { es.Down.Store(true) }},
		{killAt, func() {
			proc.Kill()
			killed = time.Now()
			proc.Start()
			waitUp(t, "http://"+addr+fmt.Sprintf("/up/%d", proc.Starts()))
			restarted = time.Now()
		}},
		{upAt, func() {
			es.Delay.Store(int64(200 * time.Millisecond)) // answers slow enough to die before one
			es.Down.Store(false)
		}},
		// A second kill while the backlog is being delivered: a batch
		// the sink stored but whose cursor was not saved is sent again
		// after the restart (same ids).
		{upAt, func() {
			// As soon as the sink stored a batch of the backlog, before
			// its (delayed) answer.
			for before, wait := es.Count(), time.Now().Add(3*time.Second); es.Count() == before && time.Now().Before(wait); {
				time.Sleep(time.Millisecond)
			}
			proc.Kill()
			es.Delay.Store(0)
			killed2 = time.Now()
			proc.Start()
			waitUp(t, "http://"+addr+fmt.Sprintf("/up/%d", proc.Starts()))
		}},
	}
	for _, step := range timeline {
		time.Sleep(time.Until(start.Add(step.at)))
		step.do()
	}
	<-feedDone
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the load did not finish: %d of %d events answered", ackedN.Load(), n)
	}
	loadDone := time.Now()

	// Every acknowledged event arrives.
	deadline := time.Now().Add(60 * time.Second)
	var docs map[string]audit.Event
	var total int
	var conflicting []string
	for {
		docs, total, conflicting = es.Snapshot()
		byPath := make(map[string]bool, len(docs))
		for _, e := range docs {
			byPath[e.Path] = true
		}
		missing := 0
		mu.Lock()
		for p := range acked {
			if !byPath[p] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never arrived (%d documents stored)", missing, len(acked), len(docs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	arrived := time.Now()
	ids := map[string]string{}
	extra, loads := 0, 0
	for id, e := range docs {
		if e.Kind == audit.KindConfigLoad {
			loads++ // one per start
			continue
		}
		if e.Kind != audit.KindRateLimit || e.Action != "reject" || e.Status != http.StatusTooManyRequests || e.SchemaVersion != audit.SchemaVersion {
			t.Errorf("event %s: %+v", id, e)
		}
		if prev, ok := ids[e.Path]; ok {
			t.Errorf("path %s arrived under two ids (%s, %s): one event recorded twice", e.Path, prev, id)
		}
		ids[e.Path] = id
		if !acked[e.Path] && !strings.HasPrefix(e.Path, "/up/") { // not the readiness probes
			extra++ // recorded, but the client got no answer (killed in flight)
		}
	}
	if total == len(docs) {
		t.Errorf("no duplicate: the second kill did not hit a delivery in flight")
	}
	if loads != 3 {
		t.Errorf("%d config_load events, want 3 (one per start)", loads)
	}
	if len(conflicting) > 0 {
		t.Errorf("ids received twice with different content: %v", conflicting)
	}
	t.Logf("%d events acknowledged (429) by the proxy, %d requests without an answer (process down), %d admitted; "+
		"%d distinct rate_limit events stored (%d recorded but not answered: in flight at the kill) and %d config_load, %d deliveries in all (%d duplicates, same id); "+
		"sink down %s, SIGKILL at %s (sink down), back up after %s, SIGKILL again at %s (sink up, backlog delivering); load %s, all arrived %s after the load",
		len(acked), failed.Load(), admitted.Load(), len(docs)-loads, extra, loads, total, total-len(docs),
		upAt-downAt, killed.Sub(start).Round(time.Millisecond), restarted.Sub(killed).Round(time.Millisecond), killed2.Sub(start).Round(time.Millisecond),
		loadDone.Sub(start).Round(time.Millisecond), arrived.Sub(loadDone).Round(time.Millisecond))
}
