package audit

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gcsServer implements the JSON API's simple media upload
// (POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=…, bearer
// token), keeping the objects by name.
type gcsServer struct {
	*httptest.Server
	token   string
	down    atomic.Bool
	mu      sync.Mutex
	objects map[string][]byte
}

func newGCSServer(t *testing.T, token string) *gcsServer {
	s := &gcsServer{token: token, objects: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			http.Error(w, `{"error":{"code":401}}`, http.StatusUnauthorized)
			return
		}
		if s.down.Load() {
			http.Error(w, `{"error":{"code":503}}`, http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/upload/storage/v1/b/audit-bucket/o" || r.URL.Query().Get("uploadType") != "media" || r.URL.Query().Get("name") == "" {
			http.Error(w, `{"error":{"code":400}}`, http.StatusBadRequest)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, `{"error":{"code":400}}`, http.StatusBadRequest)
			return
		}
		var b strings.Builder
		if _, err := bufio.NewReader(zr).WriteTo(&b); err != nil {
			http.Error(w, `{"error":{"code":400}}`, http.StatusBadRequest)
			return
		}
		name := r.URL.Query().Get("name")
		s.mu.Lock()
		s.objects[name] = []byte(b.String())
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"kind": "storage#object", "bucket": "audit-bucket", "name": name})
	}))
	t.Cleanup(s.Close)
	return s
}

// TestGCSSink: batches become gzip NDJSON objects named after their
// first and last ids under the day; while the bucket is down they wait;
// every event ends up in exactly one object.
func TestGCSSink(t *testing.T) {
	gcs := newGCSServer(t, "ya29.token")
	gcs.down.Store(true)
	t.Setenv("TEST_AUDIT_GCS_TOKEN", "ya29.token")
	a, _, _ := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"batch_size":40,"min_backoff":"20ms","sink":{"type":"gcs","bucket":"audit-bucket","prefix":"p/","token":"{env.TEST_AUDIT_GCS_TOKEN}","endpoint":%q}}]}`, t.TempDir(), gcs.URL))
	for i := range 100 {
		_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject", Path: fmt.Sprintf("/%d", i)})
	}
	time.Sleep(200 * time.Millisecond)
	gcs.down.Store(false)
	seen := map[string]int{}
	waitFor(t, 5*time.Second, "100 events in objects", func() bool {
		gcs.mu.Lock()
		defer gcs.mu.Unlock()
		clear(seen)
		for name, body := range gcs.objects {
			day := time.Now().UTC().Format("2006/01/02")
			if !strings.HasPrefix(name, "p/"+day+"/") || !strings.HasSuffix(name, ".ndjson.gz") {
				t.Fatalf("object name %q", name)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				var e Event
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("object %s: %v", name, err)
				}
				seen[e.Path]++
			}
		}
		return len(seen) == 100
	})
	for p, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d objects", p, n)
		}
	}
	if _, ok := uuidv7Time("not-a-uuid"); ok {
		t.Error("uuidv7Time accepted garbage")
	}
}
