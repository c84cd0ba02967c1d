package wasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// rustWorkspace is the cargo workspace of the Rust SDK and its example
// plugins.
const rustWorkspace = "../../sdk/rust"

var (
	rustOnce sync.Once
	rustDir  string // target/wasm32-wasi/release of the build
	rustErr  error
	// rustMissing is what is missing to build Rust plugins, if anything.
	rustMissing string
)

// rustToolchain returns the cargo and rustc to build with: Debian's in
// /usr/bin first (the 1.63 CI has; a rustup toolchain may be newer), else
// the ones on PATH. It says what is missing when there is none, or when
// rustc lacks the wasm32-wasi standard library.
func rustToolchain() (cargo, rustc, missing string) {
	for _, dir := range []string{"/usr/bin", ""} {
		c, r := filepath.Join(dir, "cargo"), filepath.Join(dir, "rustc")
		if dir == "" {
			var err error
			if c, err = exec.LookPath("cargo"); err != nil {
				continue
			}
			if r, err = exec.LookPath("rustc"); err != nil {
				continue
			}
		}
		if _, err := os.Stat(c); err != nil {
			continue
		}
		if _, err := os.Stat(r); err != nil {
			continue
		}
		out, err := exec.Command(r, "--print", "sysroot").Output()
		if err != nil {
			return "", "", fmt.Sprintf("%s --print sysroot: %v", r, err)
		}
		std := filepath.Join(strings.TrimSpace(string(out)), "lib", "rustlib", "wasm32-wasi")
		if _, err := os.Stat(std); err != nil {
			return "", "", fmt.Sprintf("the wasm32-wasi standard library (%s) is not installed: apt-get install libstd-rust-dev-wasm32", std)
		}
		return c, r, ""
	}
	return "", "", "cargo and rustc are not installed: apt-get install rustc cargo libstd-rust-dev-wasm32"
}

// buildRustPlugin builds the Rust SDK's workspace once per test run
// (cargo build --release --target wasm32-wasi, offline: the crates have
// no dependencies) and returns the path of the named example's .wasm
// file, compiled into the compilation cache. The build output is kept in
// a folder of the system's temp dir, so that later runs only relink what
// changed. Without a toolchain the test is skipped, and fails under CI.
func buildRustPlugin(tb testing.TB, name string) string {
	tb.Helper()
	rustOnce.Do(func() {
		var cargo, rustc string
		if cargo, rustc, rustMissing = rustToolchain(); rustMissing != "" {
			return
		}
		target := filepath.Join(os.TempDir(), "sentinel-rust-plugins-target")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, cargo, "build", "--offline", "--release", "--target", "wasm32-wasi")
		cmd.Dir = rustWorkspace
		cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+target, "RUSTC="+rustc,
			"PATH="+filepath.Dir(rustc)+string(os.PathListSeparator)+os.Getenv("PATH"))
		if b, err := cmd.CombinedOutput(); err != nil {
			rustErr = fmt.Errorf("building the Rust plugins (%s): %v\n%s", cargo, err, b)
			return
		}
		v, _ := exec.Command(rustc, "--version").Output()
		tb.Logf("built the Rust plugins with %s in %s", strings.TrimSpace(string(v)), time.Since(start).Round(time.Millisecond))
		rustDir = filepath.Join(target, "wasm32-wasi", "release")
	})
	if rustMissing != "" {
		testutil.Missing(tb, "%s", rustMissing)
	}
	if rustErr != nil {
		tb.Fatal(rustErr)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	key := "rust/" + name
	if p, ok := built[key]; ok {
		return p
	}
	code, err := os.ReadFile(filepath.Join(rustDir, name+".wasm"))
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(pluginDir, "rust-"+name+".wasm")
	if err := os.WriteFile(out, code, 0o644); err != nil {
		tb.Fatal(err)
	}
	cc, err := compilationCache(cacheDirOf(""))
	if err != nil {
		tb.Fatal(err)
	}
	if err := precompile(code, cc); err != nil {
		tb.Fatal(err)
	}
	built[key] = out
	return out
}
