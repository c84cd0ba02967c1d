package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// LongEnv is the environment variable that turns the long tests on: full
// load-harness scenarios, soak, chaos and the load-balancing benchmark.
// The README's test command leaves them out; .ci/run runs them after it
// with SENTINEL_LONG_TESTS=1.
const LongEnv = "SENTINEL_LONG_TESTS"

// LongTests reports whether SENTINEL_LONG_TESTS=1.
func LongTests() bool { return os.Getenv(LongEnv) == "1" }

// Long skips the calling test unless SENTINEL_LONG_TESTS=1.
func Long(tb testing.TB) {
	tb.Helper()
	if !LongTests() {
		tb.Skipf("long test: set %s=1 to run it", LongEnv)
	}
}

// SharedDir is the team's shared folder, beside the repository.
const SharedDir = "shared"

// Shared returns the path of rel (e.g. "testdata/sentinel-configs") in the
// team's shared folder beside the repository (../shared from the module
// root). When it is missing the test skips with one line saying so; when
// the environment variable CI is set it fails instead, since CI runs
// beside the shared folder and a silent skip would hide that the tests
// did not run.
func Shared(tb testing.TB, rel string) string {
	tb.Helper()
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(root), SharedDir, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		Missing(tb, "needs ../%s/%s beside the repository (not in a plain clone): %v", SharedDir, rel, err)
	}
	// Relative to the package folder, as the tests wrote it before
	// (messages and golden files may hold the path).
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil {
			return r
		}
	}
	return p
}

// Missing reports that something the test needs from its environment (a
// tool, a kernel setting, the shared folder) is not there: the test skips
// with the reason on a developer's machine, and fails when the
// environment variable CI is set, since .ci/run provides everything and
// a silent skip would hide that the test did not run.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("CI is set, but: "+format, args...)
	}
	tb.Skipf(format, args...)
}
