package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// startApp provisions and starts an app from its JSON; the returned stop
// stops and cleans it up (once).
func startApp(t *testing.T, cfg string) (*App, caddy.Context, func()) {
	t.Helper()
	a := new(App)
	if err := json.Unmarshal([]byte(cfg), a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := a.Provision(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := a.Stop(); err != nil {
				t.Error(err)
			}
			if err := a.Cleanup(); err != nil {
				t.Error(err)
			}
			cancel()
		})
	}
	t.Cleanup(stop)
	return a, ctx, stop
}

// received is what a test destination stored, by event id.
type received struct {
	mu    sync.Mutex
	ids   map[string]int // id → times received
	docs  map[string]Event
	total int
}

func newReceived() *received { return &received{ids: map[string]int{}, docs: map[string]Event{}} }

func (r *received) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[e.ID]++
	r.total++
	if prev, ok := r.docs[e.ID]; ok && !sameEvent(prev, e) {
		panic(fmt.Sprintf("event %s received twice with different content", e.ID))
	}
	r.docs[e.ID] = e
}

func sameEvent(a, b Event) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// waitFor waits until cond holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// esServer implements the documented Elasticsearch bulk endpoint
// (POST /_bulk, NDJSON action/source pairs, `create` with `_id`; the
// answer has `errors` and one item per action) over a map of documents.
// While down it answers 503; items whose event Reason is "bad-mapping"
// are answered 400 mapper_parsing_exception; the first time an id whose
// Reason is "throttle-once" is seen, its item is answered 429.
type esServer struct {
	*httptest.Server
	got       *received
	down      atomic.Bool
	requests  atomic.Int64
	throttled sync.Map
	auth      string
}

func newESServer(t *testing.T) *esServer {
	s := &esServer{got: newReceived()}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *esServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		http.Error(w, `{"error":"no handler"}`, http.StatusNotFound)
		return
	}
	if s.auth != "" && r.Header.Get("Authorization") != s.auth {
		http.Error(w, `{"error":"security_exception"}`, http.StatusUnauthorized)
		return
	}
	if s.down.Load() {
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		http.Error(w, `{"error":"content type"}`, http.StatusNotAcceptable)
		return
	}
	type item map[string]any
	var items []item
	errs := false
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			http.Error(w, `{"error":"illegal_argument_exception"}`, http.StatusBadRequest)
			return
		}
		meta, ok := action["create"]
		if !ok || !sc.Scan() {
			http.Error(w, `{"error":"illegal_argument_exception"}`, http.StatusBadRequest)
			return
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			http.Error(w, `{"error":"illegal_argument_exception"}`, http.StatusBadRequest)
			return
		}
		res := map[string]any{"_index": meta.Index, "_id": meta.ID}
		s.got.mu.Lock()
		_, exists := s.got.ids[meta.ID]
		s.got.mu.Unlock()
		_, throttledBefore := s.throttled.LoadOrStore(meta.ID, true)
		switch {
		case e.Reason == "bad-mapping":
			res["status"], res["error"] = 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse"}
			errs = true
		case e.Reason == "throttle-once" && !throttledBefore:
			res["status"], res["error"] = 429, map[string]any{"type": "es_rejected_execution_exception"}
			errs = true
		case exists:
			res["status"], res["error"] = 409, map[string]any{"type": "version_conflict_engine_exception"}
			errs = true
			s.got.add(e)
		default:
			res["status"], res["result"] = 201, "created"
			s.got.add(e)
		}
		items = append(items, item{"create": res})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errs, "items": items})
}

// ddServer implements Datadog's logs intake v2 (POST /api/v2/logs with
// DD-API-KEY, a JSON array, gzip allowed; 202 on success, 403 on a bad
// key).
type ddServer struct {
	*httptest.Server
	got     *received
	key     string
	down    atomic.Bool
	entries sync.Map // id → the raw entry
}

func newDDServer(t *testing.T, key string) *ddServer {
	s := &ddServer{got: newReceived(), key: key}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *ddServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/logs" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("DD-API-KEY") != s.key {
		http.Error(w, `{"errors":[{"status":"403","title":"Forbidden"}]}`, http.StatusForbidden)
		return
	}
	if s.down.Load() {
		http.Error(w, `{}`, http.StatusServiceUnavailable)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, `{}`, http.StatusBadRequest)
			return
		}
		body = zr
	}
	var entries []json.RawMessage
	if err := json.NewDecoder(body).Decode(&entries); err != nil || len(entries) > 1000 {
		http.Error(w, `{}`, http.StatusBadRequest)
		return
	}
	for _, raw := range entries {
		var e Event
		if err := json.Unmarshal(raw, &e); err != nil || e.ID == "" {
			http.Error(w, `{}`, http.StatusBadRequest)
			return
		}
		s.entries.Store(e.ID, raw)
		s.got.add(e)
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{}`))
}

// metric returns a counter or gauge value from the context's registry.
func metric(t *testing.T, ctx caddy.Context, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s %v not found", name, labels)
	return 0
}

func newCtx() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}
