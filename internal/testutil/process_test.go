package testutil

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitOutput waits until the process has written want.
func waitOutput(t *testing.T, p *Process, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Output(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", want, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProcessRuns: a program started, ended by a signal it handles
// (clean exit), started again and killed; the output of both runs is
// kept, each after its start line.
func TestProcessRuns(t *testing.T) {
	p := NewProcess(t, "sh", nil, "sh", "-c", `echo up; trap 'echo term; exit 0' TERM; while :; do sleep 0.05; done`)
	if p.Running() {
		t.Fatal("running before Start")
	}
	if exited, err := p.Wait(0); exited || err != nil {
		t.Fatalf("Wait before Start: %v %v", exited, err)
	}
	p.Start()
	p.Start() // running: no second process
	waitOutput(t, p, "up")
	if !p.Running() || p.Starts() != 1 {
		t.Fatalf("after Start: running %v, %d starts", p.Running(), p.Starts())
	}
	if exited, _ := p.Wait(20 * time.Millisecond); exited {
		t.Fatal("Wait: exited while running")
	}
	if err := p.Terminate(syscall.SIGTERM); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if p.Running() {
		t.Fatal("running after Terminate")
	}
	p.Start()
	waitOutput(t, p, "--- start 2\nup")
	p.Kill()
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if want := "--- start 1\nup\nterm\n--- start 2\nup\n"; p.Output() != want {
		t.Errorf("output %q, want %q", p.Output(), want)
	}
	p.Stop() // not running: nothing to do
}

// TestProcessExits: a program that ends by itself reports its exit
// status; one that ignores the signal is killed after Grace and
// Terminate says so.
func TestProcessExits(t *testing.T) {
	p := NewProcess(t, "exit 3", nil, "sh", "-c", "exit 3")
	p.Start()
	exited, err := p.Wait(10 * time.Second)
	var ee *exec.ExitError
	if !exited || !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait: exited %v, %v", exited, err)
	}
	if p.Running() {
		t.Fatal("running after its exit")
	}

	deaf := NewProcess(t, "deaf", nil, "sh", "-c", `trap '' TERM; echo up; while :; do sleep 0.05; done`)
	deaf.Grace = 100 * time.Millisecond
	deaf.Start()
	waitOutput(t, deaf, "up")
	err = deaf.Terminate(syscall.SIGTERM)
	if err == nil || !strings.Contains(err.Error(), "deaf still running 100ms after terminated: killed") {
		t.Fatalf("Terminate of a program ignoring SIGTERM: %v", err)
	}
	if deaf.Running() {
		t.Fatal("running after the kill")
	}
}
