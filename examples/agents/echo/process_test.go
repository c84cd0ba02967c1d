package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
)

// TestEchoProcess builds the echo command, runs it as a real process on a
// Unix socket, calls it, and checks SIGTERM ends it cleanly (socket removed).
func TestEchoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	dir, err := os.MkdirTemp("", "ep")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "echo")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "e.sock")
	cmd := exec.Command(bin, "-uds", sock, "-name", "proc")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	agenttest.WaitDial(t, "unix", sock, exited)
	c, err := protocol.DialUDS(agenttest.Ctx(t, 10*time.Second), sock, protocol.Options{PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Call(agenttest.Ctx(t, 10*time.Second), agenttest.Headers("p-1", "", "/", nil))
	if err != nil || r.RequestHeaders[0].Value != "proc" {
		t.Fatalf("%v %+v", err, r)
	}
	c.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
