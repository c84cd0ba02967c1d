package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds caches the binaries Build made in this process, by package. Like
// taken, it is process state that only tests use.
var builds = struct {
	sync.Mutex
	dir  string
	bins map[string]*build
}{bins: map[string]*build{}}

type build struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the main package pkg (a path relative to the module root,
// such as "./cmd/sentinel" or "./examples/agents/echo") once per test
// process, statically (CGO_ENABLED=0, as the container image is built),
// and returns the executable's path. It skips the test under -short.
// RemoveBuilds deletes what it made.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: no binary is built")
	}
	builds.Lock()
	b := builds.bins[pkg]
	if b == nil {
		b = &build{}
		builds.bins[pkg] = b
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "sentinel-test-bin-")
		if err != nil {
			builds.Unlock()
			tb.Fatal(err)
		}
		builds.dir = dir
	}
	dir := builds.dir
	builds.Unlock()
	b.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		name := strings.NewReplacer("/", "_", ".", "_").Replace(strings.Trim(pkg, "./"))
		if name == "" {
			name = path.Base(root)
		}
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("CGO_ENABLED=0 go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// RemoveBuilds deletes the binaries Build made; call it from TestMain
// after m.Run.
func RemoveBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir = ""
		builds.bins = map[string]*build{}
	}
}

// ModuleRoot returns the directory of the go.mod above the working
// directory (a test runs in its package's folder).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testutil: no go.mod above the working directory")
		}
		dir = parent
	}
}
