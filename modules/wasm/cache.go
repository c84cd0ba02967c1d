package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// compilationCaches are the process-level caches of machine code
// compiled by wazero, one per disk folder ("" = memory only), shared by
// every runtime of this package that uses the folder: compiling the same
// module bytes again (for a new memory limit, an http-wasm middleware,
// ABI detection, a reload) reuses the code in memory, and a folder's
// files make the first load after a restart a read instead of seconds of
// compilation. They live as long as the process.
var compilationCaches = struct {
	sync.Mutex
	m map[string]wazero.CompilationCache
}{m: map[string]wazero.CompilationCache{}}

// cacheOff is the cache_dir value that keeps compiled code in memory only.
const cacheOff = "off"

// compilationCache returns the compilation cache of dir ("" = memory
// only), opening it on first use.
func compilationCache(dir string) (wazero.CompilationCache, error) {
	compilationCaches.Lock()
	defer compilationCaches.Unlock()
	if c, ok := compilationCaches.m[dir]; ok {
		return c, nil
	}
	c := wazero.NewCompilationCache()
	if dir != "" {
		if err := checkCacheDir(dir); err != nil {
			return nil, err
		}
		var err error
		if c, err = wazero.NewCompilationCacheWithDir(dir); err != nil {
			return nil, fmt.Errorf("wasm cache folder %s: %w", dir, err)
		}
	}
	compilationCaches.m[dir] = c
	return c, nil
}

// checkCacheDir creates dir (mode 0700) and refuses a folder that group
// or others may write: its files are machine code the proxy runs.
func checkCacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wasm cache folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("wasm cache folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("wasm cache folder %s is not a folder", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("wasm cache folder %s is writable by group or others (mode %v); it holds machine code the proxy runs: chmod go-w it", dir, fi.Mode().Perm())
	}
	return nil
}

// cacheDirOf is the folder a handler's cache_dir names: "" is the
// default under Caddy's data folder, "off" is none ("").
func cacheDirOf(setting string) string {
	switch setting {
	case "":
		return filepath.Join(caddy.AppDataDir(), "wasm-cache")
	case cacheOff:
		return ""
	}
	return setting
}

// cacheFiles snapshots the files of a cache folder (recursively), to
// tell afterwards whether a compilation wrote new machine code.
func cacheFiles(dir string) map[string]os.FileInfo {
	if dir == "" {
		return nil
	}
	out := map[string]os.FileInfo{}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				out[path] = fi
			}
		}
		return nil
	})
	return out
}

// cacheWritten reports whether dir has a file that is not in before, or
// was replaced since (wazero writes a new file and renames it).
func cacheWritten(dir string, before map[string]os.FileInfo) bool {
	for path, fi := range cacheFiles(dir) {
		if old, ok := before[path]; !ok || !os.SameFile(old, fi) || !old.ModTime().Equal(fi.ModTime()) {
			return true
		}
	}
	return false
}

// modules is the process-level cache of compiled Sentinel-ABI modules,
// keyed by "<sha256 of the module bytes>/<memory limit in pages>". Each
// entry is a wazero runtime (with its memory limit, the WASI and
// "sentinel_v1" host modules) and the module compiled in it. Handlers
// load entries in Provision and delete them in Cleanup; Caddy provisions a
// new config before cleaning up the old one, so a config reload that keeps
// a plugin reuses its compiled module, and an entry is closed when the
// last config using it is cleaned up.
var modules = caddy.NewUsagePool()

// compiles counts the modules compiled into a modules entry (for tests).
var compiles atomic.Int64

// compiledModule is an entry of modules.
type compiledModule struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	hooks    map[string]bool
}

// Destruct closes the runtime, and with it the module and its instances.
func (m *compiledModule) Destruct() error {
	return m.runtime.Close(context.Background())
}

// newRuntime returns a runtime with a memory limit of pages, whose calls
// are interrupted when their context is done, and with WASI linked.
func newRuntime(ctx context.Context, pages uint32, cc wazero.CompilationCache) (wazero.Runtime, error) {
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cc).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, err
	}
	return rt, nil
}

// loadModule returns the compiled module of key, compiling code if no
// config has it loaded.
func loadModule(key string, code []byte, pages uint32, cc wazero.CompilationCache) (*compiledModule, error) {
	v, _, err := modules.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx := context.Background()
		rt, err := newRuntime(ctx, pages, cc)
		if err != nil {
			return nil, err
		}
		provided, err := instantiateHostModule(ctx, rt)
		if err != nil {
			_ = rt.Close(ctx)
			return nil, err
		}
		compiled, err := rt.CompileModule(ctx, code)
		if err != nil {
			_ = rt.Close(ctx)
			return nil, fmt.Errorf("compiling: %w", err)
		}
		compiles.Add(1)
		m := &compiledModule{runtime: rt, compiled: compiled, hooks: make(map[string]bool)}
		for name := range compiled.ExportedFunctions() {
			m.hooks[name] = true
		}
		if !m.hooks[hookRequestHeaders] && !m.hooks[hookRequestBody] && !m.hooks[hookResponseHeaders] && !m.hooks[hookResponseBody] {
			_ = rt.Close(ctx)
			return nil, fmt.Errorf("module exports none of %s, %s, %s, %s", hookRequestHeaders, hookRequestBody, hookResponseHeaders, hookResponseBody)
		}
		for _, f := range compiled.ImportedFunctions() {
			mod, name, _ := f.Import()
			if mod != hostModule && mod != wasi_snapshot_preview1.ModuleName {
				_ = rt.Close(ctx)
				return nil, fmt.Errorf("module imports %s.%s: only %q and WASI are provided", mod, name, hostModule)
			}
			if mod == hostModule && !provided[name] {
				_ = rt.Close(ctx)
				return nil, fmt.Errorf("module imports %s.%s, which this Sentinel does not provide (a plugin built for a later ABI revision; docs/wasm.md lists the revisions)", mod, name)
			}
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*compiledModule), nil
}

// detectABI compiles code (the machine code is kept in cc) and returns
// its ABI from its imports. It compiles with the plugins' runtime
// settings (newRuntime), on which the machine code depends: the plugin's
// own compilation then finds it in the cache instead of compiling the
// module a second time (seconds for a Go-built plugin).
func detectABI(ctx context.Context, code []byte, cc wazero.CompilationCache) (string, error) {
	rt, err := newRuntime(ctx, DefaultMaxMemoryPages, cc)
	if err != nil {
		return "", err
	}
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, code)
	if err != nil {
		return "", fmt.Errorf("compiling: %w", err)
	}
	var imports []string
	for _, f := range compiled.ImportedFunctions() {
		mod, _, _ := f.Import()
		imports = append(imports, mod)
	}
	return abiOf(imports), nil
}

// sha256Hex returns the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Interface guards
var _ caddy.Destructor = (*compiledModule)(nil)
