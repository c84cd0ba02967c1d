package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}

// TestBuild compiles a small main package of this module once, runs it,
// and reports a package that does not build as a failure with go's output.
func TestBuild(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	bin := Build(t, "./internal/testutil/testdata/hello")
	if again := Build(t, "./internal/testutil/testdata/hello"); again != bin {
		t.Errorf("built twice: %s, %s", bin, again)
	}
	out, err := exec.Command(bin).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("%q %v", out, err)
	}
	RemoveBuilds()
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("RemoveBuilds left %s: %v", bin, err)
	}
	if again := Build(t, "./internal/testutil/testdata/hello"); again == bin || again == "" {
		t.Errorf("no fresh build after RemoveBuilds: %q", again)
	}
	if b := builds.bins["./no/such/pkg"]; b != nil {
		t.Fatal("unexpected cache entry")
	}
	ft := &fatalCatcher{TB: t}
	func() {
		defer func() { _ = recover() }()
		Build(ft, "./no/such/pkg")
	}()
	if !ft.failed || !strings.Contains(ft.msg, "go build ./no/such/pkg") {
		t.Errorf("a package that does not build: failed=%v %q", ft.failed, ft.msg)
	}
}

// fatalCatcher records Fatal instead of ending the test.
type fatalCatcher struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalCatcher) Helper() {}
func (f *fatalCatcher) Fatal(args ...any) {
	f.failed = true
	for _, a := range args {
		if e, ok := a.(error); ok {
			f.msg += e.Error()
		}
	}
	panic("fatal")
}

// TestWriteCertBadDir: a folder that does not exist fails the test with
// the reason.
func TestWriteCertBadDir(t *testing.T) {
	ft := &fatalCatcher{TB: t}
	func() {
		defer func() { _ = recover() }()
		WriteCert(ft, filepath.Join(t.TempDir(), "missing", "dir"), "x")
	}()
	if !ft.failed || !strings.Contains(ft.msg, "no such file") {
		t.Errorf("failed=%v %q", ft.failed, ft.msg)
	}
}
