package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// compilationCache is the process-level cache of machine code compiled by
// wazero, shared by every runtime this package creates: compiling the same
// module bytes again (for a new memory limit, an http-wasm middleware, or
// ABI detection) reuses it.
var compilationCache = wazero.NewCompilationCache()

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
func newRuntime(ctx context.Context, pages uint32) (wazero.Runtime, error) {
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(compilationCache).
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
func loadModule(key string, code []byte, pages uint32) (*compiledModule, error) {
	v, _, err := modules.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx := context.Background()
		rt, err := newRuntime(ctx, pages)
		if err != nil {
			return nil, err
		}
		if err := instantiateHostModule(ctx, rt); err != nil {
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
		if !m.hooks[hookRequestHeaders] && !m.hooks[hookRequestBody] && !m.hooks[hookResponseHeaders] {
			_ = rt.Close(ctx)
			return nil, fmt.Errorf("module exports none of %s, %s, %s", hookRequestHeaders, hookRequestBody, hookResponseHeaders)
		}
		for _, f := range compiled.ImportedFunctions() {
			mod, name, _ := f.Import()
			if mod != hostModule && mod != wasi_snapshot_preview1.ModuleName {
				_ = rt.Close(ctx)
				return nil, fmt.Errorf("module imports %s.%s: only %q and WASI are provided", mod, name, hostModule)
			}
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*compiledModule), nil
}

// detectABI compiles code (the machine code is kept in compilationCache)
// and returns its ABI from its imports.
func detectABI(ctx context.Context, code []byte) (string, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
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
