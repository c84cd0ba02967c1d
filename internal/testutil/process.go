package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Process is a program a test runs, stops and may start again (a proxy
// replica, say). Its output is kept and written to the test's log when
// the test has failed by the time the process stops.
type Process struct {
	// Name labels the output in the log.
	Name string
	// Args are the program and its arguments; Env its environment (nil:
	// the test's).
	Args, Env []string
	// Grace is how long Stop waits after SIGINT before SIGKILL (default
	// 10 s).
	Grace time.Duration

	tb   testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	logs strings.Builder
}

// NewProcess returns a process of the test (not started); it is stopped
// when the test ends.
func NewProcess(tb testing.TB, name string, env []string, args ...string) *Process {
	p := &Process{Name: name, Args: args, Env: env, tb: tb}
	tb.Cleanup(p.Stop)
	return p
}

// Start runs the process (again). Its earlier output is dropped.
func (p *Process) Start() {
	p.tb.Helper()
	if p.cmd != nil {
		return
	}
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env = p.Env
	p.logs.Reset()
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs // one writer: one Write at a time
	cmd.SysProcAttr = buildProcAttr()         // killed with the test process
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("starting %s: %v", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(p.done) }()
}

// Stop ends the process: SIGINT, then SIGKILL after Grace.
func (p *Process) Stop() {
	if p.cmd == nil {
		return
	}
	grace := p.Grace
	if grace == 0 {
		grace = 10 * time.Second
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
	if p.tb.Failed() {
		p.tb.Logf("%s output:\n%s", p.Name, p.logs.String())
	}
	p.cmd = nil
}
