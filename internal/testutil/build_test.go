package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}

// TestBuild compiles a small main package of this module once, runs it,
// and reports a package that does not build as a failure with go's output.
func TestBuild(t *testing.T) {
	// A folder of its own: the run's shared one may be in use by other
	// packages' tests, which RemoveBuilds rightly leaves alone.
	RemoveBuilds()
	t.Setenv("TMPDIR", t.TempDir())
	defer RemoveBuilds()
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
	if _, err := os.Stat(filepath.Dir(bin)); !os.IsNotExist(err) {
		t.Errorf("RemoveBuilds left %s: %v", filepath.Dir(bin), err)
	}
	again := Build(t, "./internal/testutil/testdata/hello")
	if _, err := os.Stat(again); err != nil {
		t.Errorf("no fresh build after RemoveBuilds: %v", err)
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

// TestBuildShared: a binary another test process of the same run built
// is reused, not built again; a folder of another live user is kept when
// this process leaves it.
func TestBuildShared(t *testing.T) {
	RemoveBuilds()
	t.Setenv("TMPDIR", t.TempDir())
	defer RemoveBuilds()
	dir := t.TempDir()
	first, err := buildInto(dir, "./internal/testutil/testdata/hello", time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(first)
	// What another process left there is used as it is.
	if err := os.WriteFile(first, []byte("not rebuilt"), 0o700); err != nil {
		t.Fatal(err)
	}
	second, err := buildInto(dir, "./internal/testutil/testdata/hello", time.Time{}, false)
	if b, _ := os.ReadFile(second); err != nil || second != first || string(b) != "not rebuilt" || st1 == nil {
		t.Errorf("rebuilt: %v %s", err, b)
	}

	// Another user of this run's folder (a second shared lock) keeps it.
	shared, err := buildDir()
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(filepath.Join(shared, ".users"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	RemoveBuilds()
	if _, err := os.Stat(shared); err != nil {
		t.Errorf("folder removed while another process uses it: %v", err)
	}
	other.Close()
}

// TestBuildKeepsTheLinkedBinary: the next run of the same checkout finds
// the binary the last one linked up to date (go build does not link it
// again) and gets its own hard link to it; a changed binary is replaced
// by a new file, never written over the one a run uses.
func TestBuildKeepsTheLinkedBinary(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	first, err := buildInto(t.TempDir(), "./internal/testutil/testdata/hello", time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(linkDir(root), "internal_testutil_testdata_hello")
	st0, err := os.Stat(kept)
	if err != nil {
		t.Fatal(err)
	}
	second, err := buildInto(t.TempDir(), "./internal/testutil/testdata/hello", time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(first)
	st2, _ := os.Stat(second)
	stKept, _ := os.Stat(kept)
	if second == first || !os.SameFile(st0, stKept) || !os.SameFile(st1, st2) {
		t.Errorf("the second run linked again (a new file)")
	}
	if out, err := exec.Command(second).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// A broken kept binary is built again, as a new file.
	os.Remove(kept)
	os.WriteFile(kept, []byte("broken"), 0o700)
	third, err := buildInto(t.TempDir(), "./internal/testutil/testdata/hello", time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(third).CombinedOutput(); err != nil {
		t.Fatalf("rebuilt: %v %s", err, out)
	}
	if out, err := exec.Command(first).CombinedOutput(); err != nil {
		t.Fatalf("the first run's binary after the rebuild: %v %s", err, out)
	}
}

// TestBuildKilledBeforeDeadline: a build still running when the test
// deadline nears is killed with its process group, and says so.
func TestBuildKilledBeforeDeadline(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	_, err := buildInto(dir, "./internal/testutil/testdata/hello", time.Now().Add(buildMargin+300*time.Millisecond), true)
	if err == nil {
		// A warm cache may finish the build in time; a deadline already
		// inside the margin cannot.
		_, err = buildInto(t.TempDir(), "./internal/testutil/testdata/hello", time.Now().Add(buildMargin-time.Second), true)
	}
	if err == nil || !strings.Contains(err.Error(), "before the test deadline") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) > 0 {
		t.Errorf("left %v", tmp)
	}
}

// TestReapBuildDirs: folders of runs whose go command is gone are
// deleted; those of live runs and of other forms are kept.
func TestReapBuildDirs(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip(err)
	}
	gone := filepath.Join(os.TempDir(), fmt.Sprintf("sentinel-test-bin-%d-abc", dead.Process.Pid))
	live := filepath.Join(os.TempDir(), fmt.Sprintf("sentinel-test-bin-%d-abc", os.Getpid()))
	older := filepath.Join(os.TempDir(), "sentinel-test-bin-12345")
	for _, d := range []string{gone, live, older} {
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, ".users"), nil, 0o600)
	}
	reapBuildDirs()
	for d, want := range map[string]bool{gone: false, live: true, older: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(d), err == nil, want)
		}
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

// TestShared: a missing shared path skips in a plain clone and fails
// under CI; a present one is returned relative to the package.
func TestShared(t *testing.T) {
	t.Setenv("CI", "")
	ft := &skipCatcher{TB: t}
	func() {
		defer func() { _ = recover() }()
		Shared(ft, "no/such/thing")
	}()
	if !ft.skipped || ft.failed {
		t.Errorf("plain clone: skipped=%v failed=%v", ft.skipped, ft.failed)
	}
	t.Setenv("CI", "true")
	ft = &skipCatcher{TB: t}
	func() {
		defer func() { _ = recover() }()
		Shared(ft, "no/such/thing")
	}()
	if ft.skipped || !ft.failed {
		t.Errorf("CI: skipped=%v failed=%v", ft.skipped, ft.failed)
	}
	t.Setenv(LongEnv, "")
	ft = &skipCatcher{TB: t}
	func() {
		defer func() { _ = recover() }()
		Long(ft)
	}()
	if !ft.skipped || LongTests() {
		t.Error("Long did not skip")
	}
	t.Setenv(LongEnv, "1")
	Long(t) // runs on
}

// skipCatcher records Skip and Fatal instead of ending the test.
type skipCatcher struct {
	testing.TB
	skipped, failed bool
}

func (s *skipCatcher) Helper() {}
func (s *skipCatcher) Skipf(string, ...any) {
	s.skipped = true
	panic("skip")
}
func (s *skipCatcher) Fatalf(string, ...any) {
	s.failed = true
	panic("fatal")
}

// TestCopyFile: where a hard link is not possible (another file system),
// the kept binary is copied, executable.
func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(src, []byte("bin"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "bin" {
		t.Errorf("%q %v", b, err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("mode: %v %v", fi.Mode(), err)
	}
	if err := copyFile(filepath.Join(dir, "missing"), dst); err == nil {
		t.Error("a missing source copied")
	}
}
