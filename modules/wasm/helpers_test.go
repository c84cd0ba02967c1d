package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tetratelabs/wazero"

	"github.com/sentinel-proxy/sentinel/modules/builtin"
)

// adminPort is this package's own Caddy admin port.
const adminPort = 2988

// listenPort is the port of the test server.
const listenPort = 19160

// pluginDir holds the plugins built for the tests.
var pluginDir string

// keptCacheLimit is the size above which the kept compilation cache is
// emptied at the start of a run (old entries of plugins that changed
// accumulate).
const keptCacheLimit = 512 << 20

// TestMain keeps the plugins and the default compilation cache between
// runs, in a folder of the temp dir per checkout: go build leaves a .wasm
// that is up to date as it is, and the cache is keyed by the module's
// content and wazero's version, so a run of unchanged plugins neither
// links nor compiles them again (compiling a Go-built module takes
// seconds each). The tests about compiling use folders of their own.
func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256([]byte(wd))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("sentinel-wasm-plugins-%x", sum[:6]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		panic(err)
	}
	pluginDir = dir
	// The default compilation cache folder is under Caddy's data
	// folder.
	data := filepath.Join(dir, "data")
	if dirSize(data) > keptCacheLimit {
		os.RemoveAll(data)
	}
	os.Setenv("XDG_DATA_HOME", data)
	os.Exit(m.Run())
}

// dirSize is the size of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

var (
	buildMu   sync.Mutex
	built     = map[string]string{}
	buildErrs = map[string]error{}
)

// pluginSources maps plugin names to their package directories.
var pluginSources = map[string]string{
	"headerinject": "../../examples/plugins/headerinject",
	"pathallow":    "../../examples/plugins/pathallow",
	"bodyguard":    "../../examples/plugins/bodyguard",
	"loop":         "testdata/loop",
	"trap":         "testdata/trap",
	"memhog":       "testdata/memhog",
	"hostflood":    "testdata/hostflood",
	"blockstatus":  "testdata/blockstatus",
	"trivial":      "testdata/trivial",
	"httpwasm":     "testdata/httpwasm",
	"hwguest":      "testdata/hwguest",
	"facts":        "testdata/facts",
	"respbody":     "testdata/respbody",
	"respguard":    "testdata/respguard",
	"paths":        "testdata/paths",
}

// buildPlugin builds the named plugin from source once per test run (go
// build leaves the last run's .wasm as it is when it is up to date) and
// returns the path of its .wasm file.
func buildPlugin(tb testing.TB, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if err, ok := buildErrs[name]; ok {
		tb.Fatal(err)
	}
	out := filepath.Join(pluginDir, name+".wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, "./"+pluginSources[name])
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErrs[name] = fmt.Errorf("building %s: %v\n%s", name, err, b)
		tb.Fatal(buildErrs[name])
	}
	// Compile it into the process-level compilation cache now: compiling
	// a Go-built module takes seconds, longer than caddytest waits for a
	// config load.
	code, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	cc, err := compilationCache(cacheDirOf(""))
	if err != nil {
		tb.Fatal(err)
	}
	if err := precompile(code, cc); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("compiled %s (%d bytes) in %s", name, len(code), time.Since(start))
	built[name] = out
	return out
}

// precompile compiles code into cc with the settings of the plugins'
// runtimes (newRuntime: the machine code depends on them), so that a
// config load finds it in the cache.
func precompile(code []byte, cc wazero.CompilationCache) error {
	ctx := context.Background()
	rt, err := newRuntime(ctx, DefaultMaxMemoryPages, cc)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	_, err = rt.CompileModule(ctx, code)
	return err
}

// newBackend starts an upstream that answers with the request it got.
func newBackend(t testing.TB) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", "yes")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"path":     r.URL.Path,
			"injected": r.Header.Get("X-Injected"),
			"removed":  r.Header.Get("X-Remove-Me"),
			"body":     string(body),
		})
	}))
	t.Cleanup(ts.Close)
	return ts
}

// plugins is a shorthand for a plugin list in a config.
type plugins []map[string]any

// proxyConfig returns a Caddy JSON config with one server on listenPort
// whose route runs the plugins, then proxies to backend; its errors are
// answered by sentinel_builtin's error kind, as on the KDL adapter's
// listeners.
func proxyConfig(t testing.TB, backend string, ps plugins) string {
	t.Helper()
	// Tests of timeouts set their own; the others get a deadline that a
	// busy 2-core CI machine cannot miss (the default is 50 ms).
	for _, p := range ps {
		if _, ok := p["timeout"]; !ok {
			p["timeout"] = "5s"
		}
	}
	pj, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	wasmHandler := fmt.Sprintf(`{"handler": "sentinel_wasm", "plugins": %s},`, pj)
	if ps == nil {
		wasmHandler = ""
	}
	return fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {"http": {
			"http_port": %d, "https_port": %d,
			"servers": {"wasm": {
				"listen": ["127.0.0.1:%d"],
				"automatic_https": {"disable": true},
				"metrics": {},
				"errors": {"routes": [{"handle": [{"handler": "sentinel_builtin", "kind": "error"}]}]},
				"routes": [{"handle": [
					%s
					{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
				]}]
			}}
		}}
	}`, adminPort, listenPort, listenPort+1, listenPort, wasmHandler, backend)
}

// startProxy starts Caddy with the plugins in front of a new backend.
func startProxy(t testing.TB, ps plugins) *caddytest.Tester {
	t.Helper()
	backend := newBackend(t)
	return startConfig(t, proxyConfig(t, backend.Listener.Addr().String(), ps))
}

// startConfig starts Caddy with a JSON config.
func startConfig(t testing.TB, cfg string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(cfg, "json")
	return tester
}

// url returns the test server's URL of path.
func url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", listenPort, path)
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, tester *caddytest.Tester, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := tester.Client.Do(req)
	if err != nil && (req.Body == nil || req.GetBody != nil) {
		// a connection accepted while Caddy switches configs may be
		// closed (EOF) with or without this handler (the test config
		// has no sentinel_handoff listener); retry once, with a fresh
		// body when there is one
		t.Logf("retrying after transport error: %v", err)
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				t.Fatal(gerr)
			}
			req.Body = body
		}
		resp, err = tester.Client.Do(req)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, tester *caddytest.Tester, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, tester, req)
}

// adminMetrics returns the text of the admin API's /metrics.
func adminMetrics(t *testing.T, tester *caddytest.Tester) string {
	t.Helper()
	resp, err := tester.Client.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// assertMetrics checks that the admin metrics contain every line of want.
func assertMetrics(t *testing.T, tester *caddytest.Tester, want ...string) {
	t.Helper()
	m := adminMetrics(t, tester)
	for _, w := range want {
		if !strings.Contains(m, w+"\n") {
			t.Errorf("metrics lack %q", w)
		}
	}
}

// errorRoute answers a handler error as the error route of the KDL
// adapter's listeners does (sentinel_builtin, kind error), with the
// placeholders Caddy's server sets.
func errorRoute(t testing.TB, w http.ResponseWriter, r *http.Request, err error) {
	t.Helper()
	he, ok := err.(caddyhttp.HandlerError)
	if !ok {
		t.Fatalf("not a handler error: %v", err)
	}
	repl := caddy.NewReplacer()
	repl.Set("http.error", err)
	repl.Set("http.error.status_code", he.StatusCode)
	repl.Set("http.error.id", he.ID)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	b := &builtin.Builtin{Kind: builtin.KindError}
	if err := b.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	if err := b.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
}

// serveStage runs one plugin stage as Handler.ServeHTTP does and answers
// its failure through errorRoute.
func serveStage(t testing.TB, stage http.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	cs := &chainState{}
	r = r.WithContext(context.WithValue(r.Context(), chainKey{}, cs))
	stage.ServeHTTP(rec, r)
	if cs.failure != nil {
		errorRoute(t, rec, r, cs.failure)
	}
	return rec
}
