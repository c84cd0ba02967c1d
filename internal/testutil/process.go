package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a program a test runs, stops and may start again (a proxy
// replica, a store server, an agent). It is stopped when the test ends,
// and killed by the kernel if the test process dies first; the output of
// all its runs is written to the test's log then if the test has failed.
// Its methods may be called from several goroutines.
type Process struct {
	// Name labels the output in the log.
	Name string
	// Args are the program and its arguments; Env its environment (nil:
	// the test's); Dir its working directory (empty: the test's). Set
	// them before Start.
	Args, Env []string
	Dir       string
	// Grace is how long Stop and Terminate wait after their signal
	// before SIGKILL (default 10 s).
	Grace time.Duration

	tb     testing.TB
	mu     sync.Mutex // guards cmd, done, starts; held while a run ends
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // the run's exit, once done is closed
	starts int
	logs   lockedBuilder
}

// NewProcess returns a process of the test (not started).
func NewProcess(tb testing.TB, name string, env []string, args ...string) *Process {
	p := &Process{Name: name, Args: args, Env: env, tb: tb}
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() && p.Starts() > 0 {
			tb.Logf("%s output:\n%s", p.Name, p.Output())
		}
	})
	return p
}

// Start runs the process (again) unless it runs; each run's output
// begins with a line "--- start N".
func (p *Process) Start() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		return
	}
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env, cmd.Dir = p.Env, p.Dir
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs // one writer: one Write at a time
	cmd.SysProcAttr = childProcAttr()         // killed with the test process
	p.starts++
	fmt.Fprintf(&p.logs, "--- start %d\n", p.starts)
	if err := cmd.Start(); err != nil {
		p.cmd = nil
		p.tb.Fatalf("starting %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { p.err = cmd.Wait(); close(done) }()
}

// Starts is how many times the process was started.
func (p *Process) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Output is the output of every run so far.
func (p *Process) Output() string { return p.logs.String() }

// Running tells whether the process was started and has not ended.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

func (p *Process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for the current run to end by itself and returns
// whether it ended and, if so, its exit error (nil for status 0).
func (p *Process) Wait(d time.Duration) (exited bool, err error) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return false, nil
	}
	select {
	case <-done:
		return true, p.err
	default:
	}
	if d <= 0 {
		return false, nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true, p.err
	case <-timer.C:
		return false, nil
	}
}

// Stop ends the process: SIGINT, then SIGKILL after Grace.
func (p *Process) Stop() {
	_ = p.end(os.Interrupt)
}

// Terminate ends the process with sig and returns how it exited: nil
// for a clean exit, an error when it exited with another status or was
// still running after Grace (then it is killed).
func (p *Process) Terminate(sig os.Signal) error {
	return p.end(sig)
}

// Kill ends the process with SIGKILL, as a crash would, and waits for
// its end.
func (p *Process) Kill() {
	_ = p.end(syscall.SIGKILL)
}

// end signals the process, waits up to Grace for its end and kills it
// then.
func (p *Process) end(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	grace := p.Grace
	if grace == 0 {
		grace = 10 * time.Second
	}
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	select {
	case <-p.done:
		if err == nil {
			err = p.err
		}
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		err = fmt.Errorf("%s still running %s after %v: killed", p.Name, grace, sig)
	}
	p.cmd = nil
	return err
}

// lockedBuilder is a strings.Builder written by a process and read by
// the test at the same time.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
