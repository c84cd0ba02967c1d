package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// freeAddrs returns n distinct free loopback addresses, reserved to this
// process as the tests' are (testutil.LookupFreeAddr).
func freeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := testutil.LookupFreeAddr("127.0.0.1")
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// ModuleRoot returns the directory of this Go module's go.mod, found with
// `go env GOMOD` from dir.
func ModuleRoot(dir string) (string, error) {
	cmd := exec.Command("go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("no go.mod above %s", dir)
	}
	return filepath.Dir(gomod), nil
}

// Binaries are the two proxy binaries under test.
type Binaries struct {
	// Sentinel is the path of the sentinel binary (go build ./cmd/sentinel).
	Sentinel string
	// Caddy is the path of the stock Caddy binary of the same version.
	Caddy string
	// SentinelEnv are environment variables (KEY=value) set for Sentinel
	// only, e.g. GOGC=100 to measure Sentinel's runtime defaults against
	// Caddy's.
	SentinelEnv []string
	// SentinelAlt is a second Sentinel binary (another build of it, e.g.
	// without profile-guided optimization), run as the contender
	// "sentinel-alt" with Sentinel's config and environment.
	SentinelAlt string
}

// BuildBinaries builds Sentinel and stock Caddy from the module at root into
// cacheDir. Stock Caddy is cached by a hash of go.mod, go.sum, its main
// package and the Go version, so it is built once per dependency set;
// Sentinel is rebuilt every time (Go's build cache makes that cheap when
// nothing changed).
func BuildBinaries(ctx context.Context, root, cacheDir string, logf func(string, ...any)) (Binaries, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("cache dir: %w", err)
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "integration/loadharness/internal/stockcaddy/main.go"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return Binaries{}, fmt.Errorf("hash inputs: %w", err)
		}
		h.Write(b)
	}
	gv, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("go env GOVERSION: %w", err)
	}
	h.Write(gv)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	bins := Binaries{
		Sentinel: filepath.Join(cacheDir, "sentinel"),
		Caddy:    filepath.Join(cacheDir, "caddy-"+key),
	}
	build := func(out, pkg string) error {
		logf("building %s -> %s", pkg, out)
		tmp := out + ".tmp"
		cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, pkg)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", pkg, err, stderr.String())
		}
		return os.Rename(tmp, out)
	}
	if _, err := os.Stat(bins.Caddy); err != nil {
		if err := build(bins.Caddy, "./integration/loadharness/internal/stockcaddy"); err != nil {
			return Binaries{}, err
		}
	} else {
		logf("stock caddy cached: %s", bins.Caddy)
	}
	if err := build(bins.Sentinel, "./cmd/sentinel"); err != nil {
		return Binaries{}, err
	}
	return bins, nil
}

// BuildEchoAgent builds the example agent examples/agents/echo into
// cacheDir and returns its path.
func BuildEchoAgent(ctx context.Context, root, cacheDir string) (string, error) {
	out := filepath.Join(cacheDir, "echo-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./examples/agents/echo")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/agents/echo: %w: %s", err, b)
	}
	return out, nil
}

// Kill ends the process group at once with SIGKILL, as a crash.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	<-p.done
}

// RaiseFileLimit raises RLIMIT_NOFILE to its hard limit (children inherit
// it), so that 1,000+ connections fit in the load generator and the proxies.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return r.Cur, nil
}

// SetMigrateReq sets net.ipv4.tcp_migrate_req=1 (best effort: it needs root
// and Linux ≥ 5.14) so that connections queued on a closing listener move
// to the new one during reloads. It reports whether the setting is on.
func SetMigrateReq() bool {
	const p = "/proc/sys/net/ipv4/tcp_migrate_req"
	_ = os.WriteFile(p, []byte("1\n"), 0o644)
	b, err := os.ReadFile(p)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Process is a server process started by the harness.
type Process struct {
	// Name names the process in logs and errors.
	Name string
	// Cmd is the running command.
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

// StartProcess starts name with args, its output going to logPath, in
// its own process group.
func StartProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	evictPageCache(bin)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, done: make(chan struct{}), log: f}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// evictPageCache drops the page cache of the file bin where no running
// process maps it (POSIX_FADV_DONTNEED), so that every contender starts
// from its file as a freshly deployed binary does. How much of an
// executable is resident depends on how its pages came into the page
// cache: a binary the linker just wrote is cached in large folios, and a
// fault maps the whole folio (an idle `sentinel run` held 78 MiB of its
// executable after a build, 54 MiB when read from disk; stock Caddy 43
// and 42 MiB): without this, the build order decided the RSS ratio.
func evictPageCache(bin string) {
	f, err := os.Open(bin)
	if err != nil {
		return // exec reports it
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// PID returns the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// LogTail returns the last bytes of the process's log, for error messages.
func (p *Process) LogTail() string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop ends the process group: SIGTERM, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
	}
}

// WaitTCP waits until addr accepts TCP connections or the process exits.
func (p *Process) WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.LogTail())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not listening after %s\n%s", p.Name, addr, timeout, p.LogTail())
}

// Usage is what /proc says about a process tree at one moment.
type Usage struct {
	// CPU is user+system CPU time of the process and its children.
	CPU time.Duration
	// PeakRSS is VmHWM (peak resident set), summed over the tree, in bytes.
	PeakRSS int64
	// RSS is VmRSS summed over the tree, in bytes.
	RSS int64
	// FileRSS is the file-backed and shared part of RSS (RssFile and
	// RssShmem) summed over the tree, in bytes: mostly the pages of the
	// executable mapped in. They are clean and shared with the page
	// cache, and grow with the binary's size, not with the load. On
	// kernels that map large folios of the page cache at a fault, nearly
	// all of the binary's text and read-only data is resident after
	// startup.
	FileRSS int64
	// FDs counts open file descriptors of the tree.
	FDs int
}

// ReadUsage reads the usage of pid and its direct children (NGINX's
// workers).
func ReadUsage(pid int) (Usage, error) {
	pids := append([]int{pid}, children(pid)...)
	var u Usage
	for i, p := range pids {
		cpu, err := procCPU(p)
		if err != nil {
			if i == 0 {
				return u, err
			}
			continue
		}
		u.CPU += cpu
		hwm, rss, file := procMem(p)
		u.PeakRSS += hwm
		u.RSS += rss
		u.FileRSS += file
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p)); err == nil {
			u.FDs += len(ents)
		}
	}
	return u, nil
}

// procCPU returns utime+stime of pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU extracts utime+stime from the text of /proc/PID/stat.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(0) ppid(1) … utime(11) stime(12).
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed utime/stime")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procMem returns VmHWM, VmRSS and RssFile+RssShmem of pid in bytes.
func procMem(pid int) (hwm, rss, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	s := string(b)
	return statusKB(s, "VmHWM:") * 1024, statusKB(s, "VmRSS:") * 1024, (statusKB(s, "RssFile:") + statusKB(s, "RssShmem:")) * 1024
}

// statusKB returns the kB value of a /proc/PID/status field.
func statusKB(s, field string) int64 {
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line[len(field):])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}
