package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/logring"
)

// spooledLines returns the complete lines in the spool directory's
// segments.
func spooledLines(t *testing.T, dir string) []string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.ndjson"))
	var out []string
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if strings.HasSuffix(l, "\n") {
				out = append(out, l)
			}
		}
	}
	return out
}

// TestEmitDurableOnReturn: once Emit returned, the event is in every
// sink's spool file (what a SIGKILL cannot take back), with nothing
// stopped or flushed; the syncer syncs the spools (and a stop once more).
func TestEmitDurableOnReturn(t *testing.T) {
	es := newESServer(t)
	es.down.Store(true)
	dir := t.TempDir()
	a, _, stop := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"name":"es","sink":{"type":"elasticsearch","url":%q}},{"name":"f","sink":{"type":"file","filename":%q}}]}`,
		dir, es.URL, filepath.Join(dir, "audit.log")))
	for i := range 1000 {
		if err := a.Emit(Event{Kind: KindRateLimit, Action: "reject", Path: fmt.Sprintf("/%d", i), Status: 429}); err != nil {
			t.Fatal(err)
		}
		// Checked at once, before any other goroutine had to run.
		if got := len(spooledLines(t, filepath.Join(dir, "es"))); i%100 == 0 && got < i+1 {
			t.Fatalf("after Emit %d returned, %d events in the spool", i+1, got)
		}
	}
	lines := spooledLines(t, filepath.Join(dir, "es"))
	if len(lines) != 1000 {
		t.Fatalf("%d events in the es spool, want 1000", len(lines))
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[999]), &e); err != nil || e.Path != "/999" {
		t.Fatalf("last line %q: %v", lines[999], err)
	}
	a.syncAll()
	if a.Sinks[0].spool.dirty || a.Sinks[1].spool.dirty {
		t.Fatal("spools dirty after a sync")
	}
	stop()
}

// TestRingTee: events other than control-plane ones reach the admin UI's
// audit view in the control-plane entries' shape (ts, level, msg, who,
// route_id, decision, error) with the event's fields.
func TestRingTee(t *testing.T) {
	dir := t.TempDir()
	a, _, _ := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"sink":{"type":"file","filename":%q}}]}`, dir, filepath.Join(dir, "audit.log")))
	ring := logring.New(10)
	a.ring = ring
	for _, e := range []Event{
		{Kind: KindAgentDecision, Action: "block", Actor: "waf", Route: "team-a:api", Namespace: "team-a", Status: 403, Path: "/p", RuleIDs: []string{"942100"}},
		{Kind: KindRateLimit, Action: "reject", Actor: "zone", Namespace: "team-b", Status: 429},
		{Kind: KindControlPlane, Action: "change", Actor: "ops", Status: 200},
		{Kind: KindConfigLoad, Action: "load"},
		{Kind: KindConfigReloadFailed, Action: "reload_failed", Reason: "bad.kdl:1:1: oops"},
	} {
		if err := a.Emit(e); err != nil {
			t.Fatal(err)
		}
	}
	lines, last := ring.After(0, 10)
	if len(lines) != 4 || last != 4 {
		t.Fatalf("%d lines (last %d), want 4 (no control_plane): %v", len(lines), last, lines)
	}
	var m []map[string]any
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l.Text), &e); err != nil {
			t.Fatal(err)
		}
		m = append(m, e)
	}
	if m[0]["msg"] != "agent_decision block" || m[0]["who"] != "waf" || m[0]["route_id"] != "team-a:api" || m[0]["route"] != "team-a:api" ||
		m[0]["decision"] != "block" || m[0]["status"] != 403.0 || m[0]["namespace"] != "team-a" || m[0]["level"] != "warn" ||
		m[0]["ts"].(float64) < 1e9 || m[0]["id"] == "" || m[0]["rule_ids"].([]any)[0] != "942100" {
		t.Errorf("agent decision entry %v", m[0])
	}
	if m[1]["msg"] != "rate_limit reject" || m[1]["namespace"] != "team-b" || m[1]["status"] != 429.0 || m[1]["decision"] != nil {
		t.Errorf("rate-limit entry %v", m[1])
	}
	if m[2]["level"] != "info" || m[3]["level"] != "error" || m[3]["error"] != "bad.kdl:1:1: oops" {
		t.Errorf("config entries %v %v", m[2], m[3])
	}
}

// BenchmarkEmit is the cost a request pays for one audit event: encoding
// it and writing it to one sink's spool (page cache, no fsync), plus the
// admin UI view.
func BenchmarkEmit(b *testing.B) {
	dir := b.TempDir()
	a := new(App)
	if err := json.Unmarshal([]byte(fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"name":"es","sink":{"type":"elasticsearch","url":"http://127.0.0.1:9"}}]}`, dir)), a); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := newCtx()
	defer cancel()
	if err := a.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer a.Cleanup()
	e := Event{Kind: KindRateLimit, Action: "reject", Actor: "zone", Namespace: "team-a", Client: "192.0.2.1", Method: "GET", Host: "example.com", Path: "/api/x", Status: 429}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = a.Emit(e)
		}
	})
}
