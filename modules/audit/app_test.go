package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

var uuidv7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestFileSinkSchema: events reach the file sink as NDJSON lines with the
// documented fields, a unique UUIDv7 id each, schema_version 1, in order;
// the file is 0600.
func TestFileSinkSchema(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.log")
	a, _, stop := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"sink":{"type":"file","filename":%q,"roll_size_mb":1}}]}`, filepath.Join(dir, "spool"), file))
	for i := range 100 {
		if err := a.Emit(Event{Kind: KindAgentDecision, Action: "block", Actor: "waf", Route: "api", Namespace: "team-a",
			Client: "192.0.2.1", Method: "GET", Host: "example.com", Path: fmt.Sprintf("/x/%d", i), Status: 403,
			RuleIDs: []string{"942100"}, Tags: []string{"sqli"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "100 lines", func() bool { return countFileLines(file) == 100 })
	stop()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info, _ := f.Stat(); info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode().Perm())
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		id, _ := m["id"].(string)
		if !uuidv7.MatchString(id) || seen[id] {
			t.Fatalf("line %d: id %q not a fresh UUIDv7", i, id)
		}
		seen[id] = true
		if m["schema_version"] != 1.0 || m["kind"] != "agent_decision" || m["action"] != "block" || m["namespace"] != "team-a" ||
			m["path"] != fmt.Sprintf("/x/%d", i) || m["rule_ids"].([]any)[0] != "942100" || m["client"] != "192.0.2.1" {
			t.Fatalf("line %d: %s", i, sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil || !strings.HasSuffix(m["time"].(string), "Z") {
			t.Fatalf("line %d: time %v not UTC RFC 3339", i, m["time"])
		}
		i++
	}
}

func countFileLines(name string) int {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// TestSkipKinds: skipped kinds and, with skip_blocked, refused requests'
// events are not recorded; Emit on a nil app is a no-op.
func TestSkipKinds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.log")
	a, _, stop := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"skip_kinds":["waf"],"skip_blocked":true,"sinks":[{"sink":{"type":"file","filename":%q}}]}`, dir, file))
	var none *App
	if err := none.Emit(Event{Kind: KindWAF}); err != nil || none.Wants(KindWAF, false) || none.Refusing() {
		t.Fatal("nil app must do nothing")
	}
	_ = a.Emit(Event{Kind: KindWAF, Action: "block"})
	_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject"})
	_ = a.Emit(Event{Kind: KindAgentDecision, Action: "redirect"})
	_ = a.Emit(Event{Kind: KindConfigLoad, Action: "load"})
	waitFor(t, 5*time.Second, "2 lines", func() bool { return countFileLines(file) == 2 })
	stop()
	b, _ := os.ReadFile(file)
	if strings.Contains(string(b), `"waf"`) || strings.Contains(string(b), `"rate_limit"`) {
		t.Fatalf("skipped events recorded:\n%s", b)
	}
}

// TestElasticsearchBulkItems: per-item answers of the bulk API: a
// mapping error is rejected (counted, not retried), a 429 item retries
// the batch, and the items already stored answer 409 on the retry and
// count as delivered; the API key comes from {env.*}.
func TestElasticsearchBulkItems(t *testing.T) {
	es := newESServer(t)
	es.auth = "ApiKey s3cr3t-key"
	t.Setenv("TEST_AUDIT_ES_KEY", "s3cr3t-key")
	a, ctx, _ := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"name":"es","min_backoff":"10ms","sink":{"type":"elasticsearch","url":%q,"index":"audit","api_key":"{env.TEST_AUDIT_ES_KEY}"}}]}`, t.TempDir(), es.URL))
	_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject", Reason: "ok-1"})
	_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject", Reason: "bad-mapping"})
	_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject", Reason: "throttle-once"})
	_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject", Reason: "ok-2"})
	waitFor(t, 5*time.Second, "3 stored", func() bool { return es.got.count() == 3 })
	waitFor(t, 5*time.Second, "counters", func() bool {
		return metric(t, ctx, MetricEvents, map[string]string{"sink": "es", "result": "rejected"}) == 1 &&
			metric(t, ctx, MetricEvents, map[string]string{"sink": "es", "result": "delivered"}) == 3
	})
	if f := metric(t, ctx, MetricEvents, map[string]string{"sink": "es", "result": "failed"}); f == 0 {
		t.Error("the throttled batch was not counted as failed")
	}
	if b := metric(t, ctx, MetricSpoolBytes, map[string]string{"sink": "es"}); b != 0 {
		t.Errorf("spool bytes %v after delivery", b)
	}
}

// TestDatadogIntake: events reach the logs intake with the API key from
// {env.*}, gzip, with Datadog's reserved attributes; a wrong key is
// retried, not dropped.
func TestDatadogIntake(t *testing.T) {
	dd := newDDServer(t, "dd-key-123")
	t.Setenv("TEST_AUDIT_DD_KEY", "dd-key-123")
	a, _, _ := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"sink":{"type":"datadog","url":%q,"api_key":"{env.TEST_AUDIT_DD_KEY}","tags":"env:test","hostname":"h1"}}]}`, t.TempDir(), dd.URL))
	for range 1500 { // more than one request's 1000 entries
		_ = a.Emit(Event{Kind: KindControlPlane, Action: "change", Actor: "admin"})
	}
	waitFor(t, 10*time.Second, "1500 entries", func() bool { return dd.got.count() == 1500 })
	var one json.RawMessage
	dd.entries.Range(func(_, v any) bool { one = v.(json.RawMessage); return false })
	var m map[string]any
	_ = json.Unmarshal(one, &m)
	if m["ddsource"] != "sentinel" || m["service"] != "sentinel" || m["ddtags"] != "env:test" || m["hostname"] != "h1" || m["kind"] != "control_plane" {
		t.Fatalf("entry %s", one)
	}

	dd2 := newDDServer(t, "other")
	b, _, stop := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"min_backoff":"10ms","sink":{"type":"datadog","url":%q,"api_key":"wrong"}}]}`, t.TempDir(), dd2.URL))
	_ = b.Emit(Event{Kind: KindControlPlane})
	time.Sleep(200 * time.Millisecond)
	if b.Sinks[0].spool.bytes() == 0 || b.Sinks[0].c.failed.Load() == 0 {
		t.Fatal("an event refused with 403 must stay in the spool and count as failed")
	}
	stop()
}

// TestProvisionErrors: bad settings are named.
func TestProvisionErrors(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"sinks":[{"when_full":"panic","sink":{"type":"file","filename":"x"}}]}`:                     `when_full "panic"`,
		`{"sinks":[{"name":"../x","sink":{"type":"file","filename":"x"}}]}`:                           `name "../x"`,
		`{"sinks":[{"sink":{"type":"file","filename":"a"}},{"sink":{"type":"file","filename":"b"}}]}`: `duplicate name "file"`,
		`{"sinks":[{"sink":{"type":"file"}}]}`:                                                        "filename is required",
		`{"sinks":[{"sink":{"type":"elasticsearch"}}]}`:                                               "url is required",
		`{"sinks":[{"sink":{"type":"datadog","api_key":"{env.TEST_AUDIT_UNSET_KEY}"}}]}`:              "api_key is required",
		`{"sinks":[{}]}`: "no sink",
	} {
		var a App
		if err := json.Unmarshal([]byte(cfg), &a); err != nil {
			t.Fatal(err)
		}
		a.SpoolDir = t.TempDir()
		ctx, cancel := newCtx()
		err := a.Provision(ctx)
		_ = a.Cleanup()
		cancel()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cfg, err, want)
		}
	}
}

// TestSinkDownAndRestart is the delivery proof, short: the destination
// is down for a while, and the app is stopped and started again over the
// same spool in the middle of the events; every event arrives, and an
// event arrives twice only with the same id and content.
func TestSinkDownAndRestart(t *testing.T) {
	restartProof(t, 1000, 2*time.Second)
}

// TestSinkDownAndRestartLong is the proof: 10,000 events, the
// destination down for 30 s, a restart in the middle.
func TestSinkDownAndRestartLong(t *testing.T) {
	testutil.Long(t)
	restartProof(t, 10000, 30*time.Second)
}

func restartProof(t *testing.T, n int, down time.Duration) {
	es := newESServer(t)
	es.down.Store(true)
	spool := t.TempDir()
	cfg := fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"name":"es","batch_size":200,"min_backoff":"20ms","max_backoff":"500ms","sink":{"type":"elasticsearch","url":%q}}]}`, spool, es.URL)
	a, _, stop := startApp(t, cfg)
	start := time.Now()
	for i := range n / 2 {
		if err := a.Emit(Event{Kind: KindAgentDecision, Action: "block", Path: fmt.Sprintf("/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(down / 2)
	stop() // restart in the middle, sink still down
	b, ctx, _ := startApp(t, cfg)
	for i := n / 2; i < n; i++ {
		if err := b.Emit(Event{Kind: KindAgentDecision, Action: "block", Path: fmt.Sprintf("/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Until(start.Add(down)))
	if es.got.count() != 0 {
		t.Fatal("events arrived while the destination was down")
	}
	es.down.Store(false)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d events", n), func() bool { return es.got.count() == n })
	paths := map[string]bool{}
	es.got.mu.Lock()
	for _, e := range es.got.docs {
		paths[e.Path] = true
	}
	dups := es.got.total - len(es.got.ids)
	es.got.mu.Unlock()
	if len(paths) != n {
		t.Fatalf("%d distinct events, want %d", len(paths), n)
	}
	t.Logf("%d events, %d delivered twice (same id), %d bulk requests", n, dups, es.requests.Load())
	waitFor(t, 5*time.Second, "empty spool", func() bool { return metric(t, ctx, MetricSpoolBytes, map[string]string{"sink": "es"}) == 0 })
}
