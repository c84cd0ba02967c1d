package audittest

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/modules/audit"
)

// ESBulk is an Elasticsearch-compatible server run by a test: it
// implements the documented bulk endpoint (POST /_bulk, NDJSON
// action/source pairs; `create` with `_id` stores the document once and
// answers 409 version_conflict_engine_exception for an id it has; the
// answer has `errors` and one item per action) over a map of documents.
// While Down it answers 503, like a cluster that is unavailable.
//
// (The package's own tests have a richer one, which cannot be shared:
// package audit's tests cannot import audittest.)
type ESBulk struct {
	*httptest.Server
	// Down makes every request answer 503.
	Down atomic.Bool
	// Delay (nanoseconds) is waited after a batch was stored, before
	// answering: a slow cluster, whose client may die in between.
	Delay atomic.Int64

	mu    sync.Mutex
	docs  map[string]audit.Event // by _id
	total int                    // documents received, duplicates included
	bad   []string               // ids received twice with different content
}

// NewESBulk starts an ESBulk server on loopback; it is closed when the
// test ends.
func NewESBulk(tb testing.TB) *ESBulk {
	s := &ESBulk{docs: map[string]audit.Event{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// Snapshot returns the stored documents by id, the number of documents
// received (a document received twice counts twice), and the ids
// received twice with different content (never, if the trail is right).
func (s *ESBulk) Snapshot() (docs map[string]audit.Event, total int, conflicting []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	docs = make(map[string]audit.Event, len(s.docs))
	for k, v := range s.docs {
		docs[k] = v
	}
	return docs, s.total, append([]string(nil), s.bad...)
}

// Count returns the number of distinct documents stored.
func (s *ESBulk) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.docs)
}

func (s *ESBulk) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		http.Error(w, `{"error":"no handler"}`, http.StatusNotFound)
		return
	}
	if s.Down.Load() {
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		http.Error(w, `{"error":"content type"}`, http.StatusNotAcceptable)
		return
	}
	type pair struct {
		id, index string
		raw       []byte
	}
	var pairs []pair
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
		if !ok || meta.ID == "" || !sc.Scan() {
			http.Error(w, `{"error":"illegal_argument_exception"}`, http.StatusBadRequest)
			return
		}
		pairs = append(pairs, pair{id: meta.ID, index: meta.Index, raw: append([]byte(nil), sc.Bytes()...)})
	}
	items := make([]map[string]any, 0, len(pairs))
	errs := false
	s.mu.Lock()
	for _, p := range pairs {
		var e audit.Event
		res := map[string]any{"_index": p.index, "_id": p.id}
		if err := json.Unmarshal(p.raw, &e); err != nil {
			res["status"], res["error"] = 400, map[string]any{"type": "mapper_parsing_exception"}
			errs = true
			items = append(items, map[string]any{"create": res})
			continue
		}
		s.total++
		if prev, ok := s.docs[p.id]; ok {
			a, _ := json.Marshal(prev)
			b, _ := json.Marshal(e)
			if string(a) != string(b) {
				s.bad = append(s.bad, p.id)
			}
			res["status"], res["error"] = 409, map[string]any{"type": "version_conflict_engine_exception"}
			errs = true
		} else {
			s.docs[p.id] = e
			res["status"], res["result"] = 201, "created"
		}
		items = append(items, map[string]any{"create": res})
	}
	s.mu.Unlock()
	time.Sleep(time.Duration(s.Delay.Load()))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errs, "items": items})
}
