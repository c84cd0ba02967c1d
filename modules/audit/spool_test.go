package audit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func line(i int) []byte { return fmt.Appendf(nil, `{"id":"%06d"}`+"\n", i) } // 16 bytes

// TestSpoolReadAckReopen: lines are read in order across segments, the
// cursor survives a reopen (only unacknowledged lines are read again),
// delivered segments are removed, and a line cut by a crash at the end
// of a segment is skipped.
func TestSpoolReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<20, 64) // 4 lines a segment
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := s.append(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.bytes() != 160 {
		t.Fatalf("pending %d", s.bytes())
	}
	lines, pos, err := s.read(6, 1<<20)
	if err != nil || len(lines) != 6 || string(lines[5]) != `{"id":"000005"}` {
		t.Fatalf("read %q %v", lines, err)
	}
	if err := s.ack(pos); err != nil {
		t.Fatal(err)
	}
	if s.bytes() != 64 {
		t.Fatalf("pending %d after ack", s.bytes())
	}
	if _, err := os.Stat(filepath.Join(dir, segName(0))); !os.IsNotExist(err) {
		t.Fatal("a delivered segment was not removed")
	}
	// A crash: the process's last line cut in the middle.
	_, _ = s.w.Write([]byte(`{"id":"cut`))
	s.sizes[s.wseq] += 10
	_ = s.close()

	s, err = openSpool(dir, 1<<20, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	_ = s.append(line(10))
	var got []string
	for {
		lines, pos, err := s.read(3, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 0 {
			break
		}
		for _, l := range lines {
			got = append(got, string(l))
		}
		_ = s.ack(pos)
	}
	want := `{"id":"000006"} {"id":"000007"} {"id":"000008"} {"id":"000009"} {"id":"000010"}`
	if strings.Join(got, " ") != want {
		t.Fatalf("after reopen read %v, want %s", got, want)
	}
	if s.bytes() != 0 {
		t.Fatalf("pending %d", s.bytes())
	}
}

// TestSpoolBadCursor: a damaged cursor file is an error naming the file.
func TestSpoolBadCursor(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, cursorFile), []byte("{"), 0o600)
	if _, err := openSpool(dir, 0, 0); err == nil || !strings.Contains(err.Error(), cursorFile) {
		t.Fatalf("error %v", err)
	}
}

// policyApp is an app whose only sink's destination is down, with a
// spool of 10 lines of the events emitted.
func policyApp(t *testing.T, policy string) (*App, *esServer, func()) {
	es := newESServer(t)
	es.down.Store(true)
	a, _, stop := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"name":"es","when_full":%q,"max_spool_bytes":%d,"min_backoff":"10ms","max_backoff":"20ms","sink":{"type":"elasticsearch","url":%q}}]}`,
		t.TempDir(), policy, 10*eventLen(t), es.URL))
	a.Sinks[0].spool.segBytes = 2 * eventLen(t)
	return a, es, stop
}

// eventLen is the spooled size of the events of the policy tests.
func eventLen(t *testing.T) int64 {
	b, _ := jsonLine(Event{SchemaVersion: 1, ID: newID(time.Now()), Time: time.Now().UTC().Truncate(time.Second).Add(123456789), Kind: KindRateLimit, Action: "reject", Path: "/000"})
	return int64(len(b))
}

func emitN(t *testing.T, a *App, from, n int) (refused int) {
	for i := from; i < from+n; i++ {
		if err := a.Emit(Event{Time: time.Now().Truncate(time.Second).Add(123456789), Kind: KindRateLimit, Action: "reject", Path: fmt.Sprintf("/%03d", i)}); err == ErrRefused {
			refused++
		}
	}
	return refused
}

// TestPolicyDropNewest: a full spool drops new events and counts them.
func TestPolicyDropNewest(t *testing.T) {
	a, es, _ := policyApp(t, "drop_newest")
	emitN(t, a, 0, 15)
	waitFor(t, 2*time.Second, "5 dropped", func() bool { return a.Sinks[0].c.droppedNewest.Load() == 5 })
	es.down.Store(false)
	waitFor(t, 5*time.Second, "10 delivered", func() bool { return es.got.count() == 10 })
	assertPaths(t, es, 0, 10)
}

// TestPolicyDropOldest: a full spool drops its oldest segment.
func TestPolicyDropOldest(t *testing.T) {
	a, es, _ := policyApp(t, "drop_oldest")
	emitN(t, a, 0, 15)
	waitFor(t, 2*time.Second, "drops", func() bool { return a.Sinks[0].c.droppedOldest.Load() >= 5 })
	es.down.Store(false)
	waitFor(t, 5*time.Second, "delivery", func() bool { return a.Sinks[0].spool.bytes() == 0 })
	dropped := int(a.Sinks[0].c.droppedOldest.Load())
	if es.got.count() != 15-dropped {
		t.Fatalf("%d delivered, %d dropped", es.got.count(), dropped)
	}
	assertPaths(t, es, dropped, 15)
}

// TestPolicyFailClosed: a full fail_closed spool makes Emit refuse (and
// Refusing true) until the destination took the events; the event that
// did not fit is refused to its caller at once.
func TestPolicyFailClosed(t *testing.T) {
	a, es, _ := policyApp(t, "fail_closed")
	if refused := emitN(t, a, 0, 10); refused != 0 {
		t.Fatalf("%d refused before the spool was full", refused)
	}
	if refused := emitN(t, a, 10, 1); refused != 1 || !a.Refusing() {
		t.Fatalf("the event that does not fit: %d refused, refusing %v", refused, a.Refusing())
	}
	gate := &Gate{app: a}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error { w.WriteHeader(204); return nil })
	err := gate.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), next)
	if he, ok := err.(caddyhttp.HandlerError); !ok || he.StatusCode != 503 {
		t.Fatalf("gate while refusing: %v", err)
	}
	if refused := emitN(t, a, 11, 3); refused != 3 {
		t.Fatalf("%d of 3 refused while full", refused)
	}
	es.down.Store(false)
	waitFor(t, 5*time.Second, "recovery", func() bool { return !a.Refusing() })
	if refused := emitN(t, a, 14, 1); refused != 0 {
		t.Fatal("refused after recovery")
	}
	waitFor(t, 5*time.Second, "11 delivered", func() bool { return es.got.count() == 11 })
	if err := gate.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), next); err != nil {
		t.Fatalf("gate after recovery: %v", err)
	}
}

func assertPaths(t *testing.T, es *esServer, from, to int) {
	t.Helper()
	es.got.mu.Lock()
	defer es.got.mu.Unlock()
	for _, e := range es.got.docs {
		var i int
		fmt.Sscanf(e.Path, "/%d", &i)
		if i < from || i >= to {
			t.Errorf("event %s delivered, want %d..%d", e.Path, from, to-1)
		}
	}
}

// TestSpoolFolderIsPrivate: a sink's spool folder that others may write
// in, that is a symbolic link, or that belongs to another user (checked
// when the test runs as root) is refused, and its mode is left alone:
// whoever could write in it could swap the segments for their own
// events, sent to the sink as the proxy's. A folder others may only read
// is used (the files are 0600).
func TestSpoolFolderIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sink")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := openSpool(dir, 0, 0); err == nil || !strings.Contains(err.Error(), "writable by other users (mode 0777)") {
		t.Errorf("a folder others may write in: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("the folder's mode was changed: %v (%v)", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := openSpool(dir, 0, 0)
	if err != nil {
		t.Fatalf("a folder others may read: %v", err)
	}
	_ = s.close()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := openSpool(link, 0, 0); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symbolic link as the spool folder: %v", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := openSpool(other, 0, 0); err == nil || !strings.Contains(err.Error(), "belongs to user 12345") {
			t.Errorf("another user's folder: %v", err)
		}
	}
}
