package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// builds is the state of the binaries Build made or reused in this
// process. Like the reserved ports, it is process state that only tests use.
var builds = struct {
	sync.Mutex
	dir   string
	users *os.File // shared flock on dir/.users while this process uses dir
	bins  map[string]*build
}{bins: map[string]*build{}}

type build struct {
	once sync.Once
	path string
	err  error
}

// buildMargin is how long before the test deadline (go test -timeout) a
// build still running is killed, so that the test fails with a message
// and TestMain's RemoveBuilds runs, instead of the process being killed
// with the build still running.
const buildMargin = 20 * time.Second

// Build compiles the main package pkg (a path relative to the module root,
// such as "./cmd/sentinel" or "./examples/agents/echo") statically
// (CGO_ENABLED=0, as the container image is built) and returns the
// executable's path. It skips the test under -short.
//
// One `go test ./...` run builds each package once: the test processes of
// one go command (they share its process id as their parent) share a
// folder in the temporary directory, and build into it one at a time (a
// file lock), so the second package that needs the binary finds it. The
// build runs in its own process group, which is killed when the test
// deadline nears, when the test process gets SIGINT or SIGTERM, or when it
// dies. RemoveBuilds deletes the folder once no process of the run uses
// it; folders of runs that were killed are deleted by the next Build.
// The binaries themselves are kept between runs, per checkout (see
// buildLinked): a run of unchanged code does not link them again.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: no binary is built")
	}
	dir, err := buildDir()
	if err != nil {
		tb.Fatal(err)
	}
	builds.Lock()
	b := builds.bins[pkg]
	if b == nil {
		b = &build{}
		builds.bins[pkg] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		deadline, ok := time.Time{}, false
		if d, has := tb.(interface{ Deadline() (time.Time, bool) }); has {
			deadline, ok = d.Deadline()
		}
		b.path, b.err = buildInto(dir, pkg, deadline, ok)
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// buildDir returns this run's shared build folder, joining it (a shared
// lock on its .users file) the first time.
func buildDir() (string, error) {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		return builds.dir, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	reapBuildDirs()
	// The run: the go command that started this test process, and the
	// module (two checkouts tested at once do not share binaries).
	run := os.Getppid()
	if run == 1 {
		run = os.Getpid() // orphaned (a detached test binary): no run to share with
	}
	name := fmt.Sprintf("sentinel-test-bin-%d-%x", run, fnv(root))
	dir := filepath.Join(os.TempDir(), name)
	for range 10 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		users, err := os.OpenFile(filepath.Join(dir, ".users"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			continue // removed under us by a process that was the last user
		}
		if err := syscall.Flock(int(users.Fd()), syscall.LOCK_SH); err != nil {
			users.Close()
			return "", fmt.Errorf("locking %s: %w", dir, err)
		}
		// The last user may have removed the folder between our open and
		// our lock: then the file we hold is not the one in the folder.
		held, err1 := users.Stat()
		now, err2 := os.Stat(users.Name())
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			builds.dir, builds.users = dir, users
			return dir, nil
		}
		users.Close()
	}
	return "", fmt.Errorf("could not join the build folder %s", dir)
}

// buildInto builds pkg into dir unless a process of the same run did,
// holding dir's build lock meanwhile.
func buildInto(dir, pkg string, deadline time.Time, hasDeadline bool) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	name := strings.NewReplacer("/", "_", ".", "_").Replace(strings.Trim(pkg, "./"))
	if name == "" {
		name = path.Base(root)
	}
	out := filepath.Join(dir, name)
	lock, err := os.OpenFile(filepath.Join(dir, ".build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(out); err == nil {
		return out, nil // built by another package's tests of this run
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if hasDeadline {
		var cancelDeadline context.CancelFunc
		ctx, cancelDeadline = context.WithDeadline(ctx, deadline.Add(-buildMargin))
		defer cancelDeadline()
	}
	tmp := out + ".tmp"
	err = buildLinked(ctx, root, pkg, name, tmp)
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return out, nil
}

// buildLinked builds pkg into the checkout's link folder (linkDir), where
// the binary of the last run stays: go build leaves a binary that is up
// to date as it is, so that a run after one that built the same code
// skips the link of a static binary (tens of seconds on a small machine).
// The result is then hard-linked (or copied) to out: go build replaces
// the link folder's file by a rename, so a run that rebuilds it never
// changes the file a running test executes.
func buildLinked(ctx context.Context, root, pkg, name, out string) error {
	dir := linkDir(root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	// Two runs of one checkout at once (the full suite and one package)
	// take turns.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	linked := filepath.Join(dir, name)
	if err := runBuild(ctx, root, linked, pkg); err != nil {
		// go build refuses to replace a file that is not a binary (one
		// left broken): build it anew once.
		if _, statErr := os.Stat(linked); statErr != nil || ctx.Err() != nil {
			return err
		}
		os.Remove(linked)
		if err := runBuild(ctx, root, linked, pkg); err != nil {
			return err
		}
	}
	os.Remove(out)
	if err := os.Link(linked, out); err == nil {
		return nil
	}
	return copyFile(linked, out)
}

// linkDir is the folder, per checkout, that keeps the test binaries
// between runs.
func linkDir(root string) string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("sentinel-test-links-%x", fnv(root)))
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	outF, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(outF, in); err != nil {
		outF.Close()
		return err
	}
	return outF.Close()
}

// runBuild runs `go build -ldflags="-s -w" -o out pkg` (as the container
// image is built: no symbol table nor DWARF, a third smaller and quicker
// to link) with CGO_ENABLED=0 in its own
// process group. The group is killed when ctx ends, and on SIGINT or
// SIGTERM to this process (which then gets the signal again, so it ends
// as it would have); the go command is killed if this process dies.
func runBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.SysProcAttr = childProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	killed := func() error {
		return fmt.Errorf("CGO_ENABLED=0 go build %s: killed %s before the test deadline (go test -timeout): %w\n%s", pkg, buildMargin, ctx.Err(), output.String())
	}
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			return killed()
		}
		return fmt.Errorf("CGO_ENABLED=0 go build %s: %w", pkg, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			if ctx.Err() != nil {
				return killed()
			}
			return fmt.Errorf("CGO_ENABLED=0 go build %s: %v\n%s", pkg, err, output.String())
		}
		return nil
	case sig := <-sigs:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		os.Remove(out)
		RemoveBuilds()
		signal.Stop(sigs)
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		time.Sleep(time.Second) // the signal ends the process
		return errors.New("interrupted")
	}
}

// RemoveBuilds leaves this run's build folder, and deletes it when no
// other test process of the run uses it; call it from TestMain after
// m.Run.
func RemoveBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir == "" {
		return
	}
	dir, users := builds.dir, builds.users
	builds.dir, builds.users, builds.bins = "", nil, map[string]*build{}
	// Trade the shared lock for an exclusive one: granted only when no
	// other process of the run holds the folder.
	if syscall.Flock(int(users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		os.RemoveAll(dir)
	}
	users.Close()
}

// reapBuildDirs deletes the build folders of runs whose go command is
// gone (a run killed before its tests could clean up).
func reapBuildDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sentinel-test-bin-*"))
	for _, dir := range dirs {
		// sentinel-test-bin-<pid>-<hash>; other forms (older checkouts
		// use sentinel-test-bin-<random> per process) are not ours to
		// remove.
		fields := strings.Split(filepath.Base(dir), "-")
		if len(fields) != 5 {
			continue
		}
		pid, err := strconv.Atoi(fields[3])
		if err != nil || pid == os.Getppid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		users, err := os.Open(filepath.Join(dir, ".users"))
		if err != nil {
			os.RemoveAll(dir)
			continue
		}
		if syscall.Flock(int(users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(dir)
		}
		users.Close()
	}
}

// fnv hashes s (FNV-1a, 32 bits).
func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
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
