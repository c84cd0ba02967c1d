package wasm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// childEnv carries the cache folder and plugin of TestDiskCacheChild.
const childEnv = "SENTINEL_WASM_CACHE_CHILD"

// childResult is what TestDiskCacheChild prints.
type childResult struct {
	CacheHit bool    `json:"cache_hit"`
	Seconds  float64 `json:"seconds"`
}

// TestDiskCacheAcrossProcesses: a plugin compiled by one process is read
// back from the disk cache by the next one (a restart), which neither
// compiles it again nor rewrites the cache, and loads faster; the load
// is logged with its duration and whether the cache was hit.
func TestDiskCacheAcrossProcesses(t *testing.T) {
	plugin := buildPlugin(t, "pathallow")
	dir := filepath.Join(t.TempDir(), "cache")
	run := func() childResult {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskCacheChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+dir+string(os.PathListSeparator)+plugin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
				var r childResult
				if err := json.Unmarshal([]byte(rest), &r); err != nil {
					t.Fatal(err)
				}
				return r
			}
		}
		t.Fatalf("child printed no result:\n%s", out)
		return childResult{}
	}
	first := run()
	files := cacheFiles(dir)
	if first.CacheHit || len(files) == 0 {
		t.Fatalf("first process: %+v, %d cache files", first, len(files))
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache folder mode: %v %v", fi.Mode(), err)
	}
	second := run()
	if !second.CacheHit || cacheWritten(dir, files) {
		t.Fatalf("second process did not use the disk cache: %+v", second)
	}
	t.Logf("first load %.3fs (compiled), second %.3fs (disk cache)", first.Seconds, second.Seconds)
	if second.Seconds >= first.Seconds {
		t.Errorf("the cached load (%.3fs) is not faster than the compilation (%.3fs)", second.Seconds, first.Seconds)
	}
}

// TestDiskCacheChild is the process TestDiskCacheAcrossProcesses starts:
// it loads a plugin with a cache folder and prints the log's verdict.
func TestDiskCacheChild(t *testing.T) {
	arg := os.Getenv(childEnv)
	if arg == "" {
		t.Skip("run by TestDiskCacheAcrossProcesses")
	}
	dir, plugin, _ := strings.Cut(arg, string(os.PathListSeparator))
	core, logs := observer.New(zapcore.InfoLevel)
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := compilationCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	p := &Plugin{ID: "p", Path: plugin, Config: json.RawMessage(`{"allow":["/"]}`), cache: cc, cacheDir: dir}
	if err := p.provision(ctx, zap.New(core), m); err != nil {
		t.Fatal(err)
	}
	defer p.releaseResources()
	if logs.FilterMessageSnippet("loading WASM plugin").Len() != 1 {
		t.Fatalf("no log line before the load: %v", logs.All())
	}
	done := logs.FilterMessage("WASM plugin loaded").All()
	if len(done) != 1 {
		t.Fatalf("no log line after the load: %v", logs.All())
	}
	f := done[0].ContextMap()
	d, ok := f["duration"].(time.Duration)
	if !ok || d <= 0 || f["cache_dir"] != dir {
		t.Fatalf("load log fields: %v", f)
	}
	b, _ := json.Marshal(childResult{CacheHit: f["cache_hit"] == true, Seconds: d.Seconds()})
	fmt.Printf("RESULT %s\n", b)
}

// TestCacheDirSettings: the default folder is under Caddy's data folder,
// "off" is memory only, and a folder others may write is refused
// (configured: load error; default: memory only with a warning).
func TestCacheDirSettings(t *testing.T) {
	if got, want := cacheDirOf(""), filepath.Join(caddy.AppDataDir(), "wasm-cache"); got != want {
		t.Errorf("default %q, want %q", got, want)
	}
	if cacheDirOf(cacheOff) != "" || cacheDirOf("/x") != "/x" {
		t.Error("cacheDirOf")
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	trivial := buildPlugin(t, "trivial")
	_, err := provisionHandler(t, mustJSON(t, map[string]any{"cache_dir": open, "plugins": []any{map[string]any{"path": trivial}}}))
	if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("world-writable cache folder: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkCacheDir(file); err == nil {
		t.Fatal("a file as cache folder")
	}
	if _, err := provisionHandler(t, mustJSON(t, map[string]any{"cache_dir": "off", "plugins": []any{map[string]any{"path": trivial}}})); err != nil {
		t.Fatal(err)
	}
	// the default folder, unusable: memory only, the load goes on
	t.Setenv("XDG_DATA_HOME", open)
	if err := os.MkdirAll(filepath.Join(open, "caddy", "wasm-cache"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(open, "caddy", "wasm-cache"), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": trivial}}})); err != nil {
		t.Fatalf("unusable default cache folder failed the load: %v", err)
	}
}
