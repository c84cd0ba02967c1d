package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory that can be told to fail.
type memStore struct {
	mu    sync.Mutex
	data  []byte
	saves int
	fail  error
}

func (m *memStore) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data, nil
}

func (m *memStore) Save(data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.data = append([]byte(nil), data...)
	m.saves++
	return nil
}

func (m *memStore) String() string { return fmt.Sprintf("memory %p", m) }

// TestConcurrentChangesSaveTheNewestState is issue 12.2: concurrent
// changes, all acknowledged, must leave the file equal to the live state
// (it was left older in 3 of 30 rounds when saves raced outside the lock).
func TestConcurrentChangesSaveTheNewestState(t *testing.T) {
	for round := 0; round < 10; round++ {
		path := filepath.Join(t.TempDir(), "state.json")
		r := New()
		r.Reconcile([]UpstreamSpec{spec("u", "a:1", "b:1", "c:1", "d:1")}, nil)
		if err := r.UseStore(FileStore{Path: path}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				w := i + 1
				addr := []string{"a:1", "b:1", "c:1", "d:1"}[i%4]
				if _, err := r.PatchTarget("u", addr, TargetPatch{Weight: &w}, 0); err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		onDisk, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		live, _ := r.Snapshot()
		if string(onDisk) != string(live) {
			t.Fatalf("round %d: the state file is not the live state:\n%s\nlive:\n%s", round, onDisk, live)
		}
		// And a new process reads back exactly what the API shows.
		r2 := New()
		r2.Reconcile([]UpstreamSpec{spec("u", "a:1", "b:1", "c:1", "d:1")}, nil)
		if err := r2.UseStore(FileStore{Path: path}); err != nil {
			t.Fatal(err)
		}
		a, _ := r.Get("u")
		b, _ := r2.Get("u")
		if fmt.Sprint(a.Targets) != fmt.Sprint(b.Targets) {
			t.Fatalf("after restart %v, live %v", b.Targets, a.Targets)
		}
	}
}

// TestFailedSaveIsNotApplied is issue 12.7: when persisting fails, the
// call fails and nothing is half-applied.
func TestFailedSaveIsNotApplied(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("u", "a:1", "b:1")}, []string{"r"})
	store := &memStore{}
	if err := r.UseStore(store); err != nil {
		t.Fatal(err)
	}
	before, _ := r.Get("u")
	pool := strings.Join(r.Pool("u").Addresses, ",")
	store.fail = errors.New("no space left on device")
	w := 9
	checks := map[string]error{}
	_, checks["patch"] = r.PatchTarget("u", "a:1", TargetPatch{Weight: &w}, 0)
	_, checks["add"] = r.AddTarget("u", Target{Address: "c:1", Weight: 1}, 0)
	_, checks["remove"] = r.RemoveTarget("u", "b:1", 0)
	_, checks["put"] = r.PutTargets("u", []Target{{Address: "z:1", Weight: 1}}, 0)
	_, checks["drain"] = r.Drain("u", "", time.Second, 0)
	_, checks["create"] = r.CreateUpstream("new", []Target{{Address: "n:1", Weight: 1}})
	checks["route"] = r.SetRouteEnabled("r", false)
	for name, err := range checks {
		if !errors.Is(err, ErrPersist) {
			t.Errorf("%s: want ErrPersist, got %v", name, err)
		}
	}
	after, _ := r.Get("u")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("upstream changed by failed calls: %+v -> %+v", before, after)
	}
	if got := strings.Join(r.Pool("u").Addresses, ","); got != pool {
		t.Errorf("pool %s, want %s", got, pool)
	}
	if _, ok := r.Get("new"); ok {
		t.Error("failed create left the upstream")
	}
	if !r.RouteFlag("r").Enabled() {
		t.Error("failed route switch applied")
	}
	if st := r.Status(); !strings.Contains(st.SaveError, "no space") {
		t.Errorf("status %+v", st)
	}
	// Deleting an API upstream that cannot be saved keeps it.
	store.fail = nil
	if _, err := r.CreateUpstream("api", []Target{{Address: "n:1", Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	store.fail = errors.New("read-only file system")
	if err := r.DeleteUpstream("api", 0); !errors.Is(err, ErrPersist) {
		t.Errorf("delete: %v", err)
	}
	if _, ok := r.Get("api"); !ok {
		t.Error("failed delete removed the upstream")
	}
	// Expiry that cannot be saved removes nothing and is tried again.
	store.fail = nil
	if _, err := r.Drain("u", "a:1", time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	store.fail = errors.New("disk gone")
	if gone, err := r.Expire(time.Now().Add(time.Hour)); err == nil || len(gone) != 0 {
		t.Errorf("expire with a failing store: %v %v", gone, err)
	}
	store.fail = nil
	gone, err := r.Expire(time.Now().Add(time.Hour))
	if err != nil || len(gone) != 1 || gone[0].Upstream != "u" || gone[0].Target.Address != "a:1" {
		t.Errorf("expire: %+v %v", gone, err)
	}
	if st := r.Status(); st.SaveError != "" {
		t.Errorf("save error not cleared: %+v", st)
	}
}

// TestFileStoreWriteFailure: a state file that cannot be written fails
// the call (here its folder is a regular file).
func TestFileStoreWriteFailure(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, []byte("x"), 0o600)
	r := New()
	r.Reconcile([]UpstreamSpec{spec("u", "a:1")}, nil)
	if err := r.UseStore(FileStore{Path: filepath.Join(blocker, "state.json")}); err == nil || r.Status().MovedTo != "" {
		t.Fatalf("unreadable state file: %v %+v", err, r.Status())
	}
	w := 3
	if _, err := r.PatchTarget("u", "a:1", TargetPatch{Weight: &w}, 0); !errors.Is(err, ErrPersist) {
		t.Fatalf("want ErrPersist, got %v", err)
	}
	if u, _ := r.Get("u"); u.Targets[0].Weight != 1 {
		t.Error("weight applied")
	}
}

// TestBadStateFiles is issue 12.7: truncated, empty, corrupt or invalid
// state files do not stop the start; they are moved aside and reported.
func TestBadStateFiles(t *testing.T) {
	good := `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"x:1","weight":1,"state":"active","origin":"api"}]}]}`
	cases := map[string]string{
		"empty":          "",
		"truncated":      good[:40],
		"not json":       "\x00\x01garbage",
		"trailing":       good + `{}`,
		"unknown field":  `{"version":1,"upstreams":[],"extra":1}`,
		"version":        `{"version":2,"upstreams":[]}`,
		"address":        `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"http://evil","weight":1,"state":"active","origin":"api"}]}]}`,
		"weight":         `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"x:1","weight":-5,"state":"active","origin":"api"}]}]}`,
		"zero weight":    `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"x:1","weight":0,"state":"active","origin":"api"}]}]}`,
		"state":          `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"x:1","weight":1,"state":"bogus","origin":"api"}]}]}`,
		"id":             `{"version":1,"upstreams":[{"id":"../x y","origin":"api","override":[]}]}`,
		"origin":         `{"version":1,"upstreams":[{"id":"api","origin":"evil","override":[]}]}`,
		"no override":    `{"version":1,"upstreams":[{"id":"api","origin":"api"}]}`,
		"twice":          `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[]},{"id":"api","origin":"api","override":[]}]}`,
		"target twice":   `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"x:1","weight":1,"state":"active","origin":"api"},{"address":"x:1","weight":1,"state":"active","origin":"api"}]}]}`,
		"replace+base":   `{"version":1,"upstreams":[{"id":"api","origin":"api","replace":true,"override":[],"override_base":[]}]}`,
		"missing origin": `{"version":1,"upstreams":[{"id":"api","origin":"api","override":[{"address":"x:1","weight":1,"state":"active"}]}]}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			os.WriteFile(path, []byte(content), 0o600)
			r := New()
			r.Reconcile([]UpstreamSpec{spec("cfg", "a:1")}, nil)
			err := r.UseStore(FileStore{Path: path})
			if err == nil {
				t.Fatal("bad state accepted")
			}
			if _, ok := r.Get("api"); ok {
				t.Error("part of a bad state was applied")
			}
			if _, ok := r.Get("cfg"); !ok {
				t.Error("config upstream lost")
			}
			st := r.Status()
			if st.LoadError == "" || st.MovedTo == "" {
				t.Fatalf("status %+v", st)
			}
			if moved, err := os.ReadFile(st.MovedTo); err != nil || string(moved) != content {
				t.Errorf("bad file not kept aside: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Error("bad file still in place")
			}
			// The next change writes a good file again.
			if _, err := r.AddTarget("cfg", Target{Address: "b:1", Weight: 1}, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := decodeState(mustRead(t, path)); err != nil {
				t.Error(err)
			}
		})
	}
	// The good one loads, once per process and store.
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte(good), 0o600)
	r := New()
	if err := r.UseStore(FileStore{Path: path}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Get("api"); !ok || r.Status().Loaded.IsZero() {
		t.Error("good state not loaded")
	}
	if err := r.DeleteUpstream("api", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.UseStore(FileStore{Path: path}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Get("api"); ok {
		t.Error("a reload read the state file again")
	}
	if err := r.UseStore(nil); err != nil || r.Status().Store != "" {
		t.Error("UseStore(nil)")
	}
}

func TestFileStoreLoad(t *testing.T) {
	dir := t.TempDir()
	if data, err := (FileStore{Path: filepath.Join(dir, "none")}).Load(); data != nil || err != nil {
		t.Errorf("missing file: %q %v", data, err)
	}
	if _, err := (FileStore{Path: dir}).Load(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	f.Truncate(MaxStateBytes + 1)
	f.Close()
	if _, err := (FileStore{Path: big}).Load(); !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("big file: %v", err)
	}
	r := New()
	err := r.UseStore(FileStore{Path: dir})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as state file: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestStagedConfig is issue 12.8: what a configuration that is never
// committed staged is discarded, and nothing of the running one changes.
func TestStagedConfig(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("a", "a:1")}, []string{"ra"})
	gen := r.Prepare([]UpstreamSpec{spec("b", "b:1"), spec("a", "z:1")})
	if p := r.Pool("b"); p == nil || p.Addresses[0] != "b:1" {
		t.Fatal("staged upstream has no pool for the new config's routes")
	}
	if _, ok := r.Get("b"); ok || len(r.Upstreams()) != 1 {
		t.Error("staged upstream is listed")
	}
	if _, err := r.AddTarget("b", Target{Address: "c:1", Weight: 1}, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("staged upstream changed through the API: %v", err)
	}
	if u, _ := r.Get("a"); u.Targets[0].Address != "a:1" {
		t.Error("prepare changed a running upstream")
	}
	if data, _ := r.Snapshot(); strings.Contains(string(data), `"b"`) {
		t.Error("staged upstream saved")
	}
	r.Discard(gen)
	if r.Pool("b") != nil || r.Pool("a") == nil {
		t.Error("discard")
	}
	// Committing takes the staged upstream over.
	gen = r.Prepare([]UpstreamSpec{spec("b", "b:1")})
	r.Reconcile([]UpstreamSpec{spec("a", "a:1"), spec("b", "b:1")}, nil)
	r.Discard(gen)
	if u, ok := r.Get("b"); !ok || u.Origin != OriginConfig {
		t.Error("committed upstream missing")
	}
}

func TestInvalidErrorText(t *testing.T) {
	err := ValidateTarget(Target{Address: "x:1", Weight: 0})
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Field != "weight" || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "drain") {
		t.Errorf("%v", err)
	}
	for _, bad := range []Target{{Address: "x:1", Weight: 1, Origin: "evil"}, {Address: "[::1%%]:1", Weight: 1}, {Address: "[fe80::1%eth0]:1", Weight: MaxWeight + 1}, {Address: "1.2.3.4", Weight: 1}, {Address: "::1:80", Weight: 1}, {Address: "0.0.0.0:80", Weight: 1}, {Address: "bad_host!:80", Weight: 1}, {Address: "h:123456", Weight: 1}} {
		if err := ValidateTarget(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	for _, id := range []string{"", "-x", strings.Repeat("a", MaxIDLength+1), "a b"} {
		if ValidateID(id) == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	if ValidateID("ok.id_1-x") != nil || ValidateAddress("[fe80::1%eth0]:80") != nil || ValidateAddress("svc.ns.svc.cluster.local.:443") != nil {
		t.Error("good values refused")
	}
	b, _ := json.Marshal(StoreStatus{Store: "file x"})
	if string(b) != `{"store":"file x"}` {
		t.Errorf("status JSON %s", b)
	}
}

// TestReplaceOverride: a state written by the operator with replace set
// makes its override the whole target list of a config upstream (the
// config's targets are not added back), and the registry saves it in its
// own terms (override_base) afterwards.
func TestReplaceOverride(t *testing.T) {
	r := New()
	r.Reconcile([]UpstreamSpec{spec("cfg", "a:1", "b:1")}, nil)
	st := `{"version":1,"upstreams":[{"id":"cfg","origin":"config","replace":true,"version":7,"override":[{"address":"c:1","weight":2,"state":"active","origin":"api"}]},` +
		`{"id":"new","origin":"api","replace":true,"override":[{"address":"d:1","weight":1,"state":"active","origin":"api"}]}]}`
	if err := r.Restore([]byte(st)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"cfg": "c:1", "new": "d:1"} {
		u, ok := r.Get(id)
		if !ok || len(u.Targets) != 1 || u.Targets[0].Address != want {
			t.Fatalf("%s: %+v, want only %s", id, u, want)
		}
	}
	if u, _ := r.Get("cfg"); u.Version != 7 || u.Targets[0].Weight != 2 {
		t.Errorf("cfg: %+v, want version 7 and weight 2", u)
	}
	snap, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(snap), "replace") || !strings.Contains(string(snap), `"override_base"`) {
		t.Errorf("snapshot %s, want override_base and no replace", snap)
	}
}
