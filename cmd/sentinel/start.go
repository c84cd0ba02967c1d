package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
)

// start runs `sentinel run` in the background and returns once it serves,
// as Caddy's start does (the child connects back to a loopback listener
// and echoes random bytes given on its standard input), with Sentinel's
// messages.
func (e *cliEnv) start(cmd *cobra.Command) error {
	cmd.SilenceErrors = true
	fl := cmd.Flags()
	config, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	pidfile, _ := fl.GetString("pidfile")
	watch, _ := fl.GetBool("watch")
	envfiles, _ := fl.GetStringSlice("envfile")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return e.startFailed(fmt.Errorf("opening the listener for the start confirmation: %w", err))
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	child := exec.Command(self, "run", "--pingback", ln.Addr().String())
	if config != "" {
		child.Args = append(child.Args, "--config", config)
	}
	for _, f := range envfiles {
		child.Args = append(child.Args, "--envfile", f)
	}
	if adapter != "" {
		child.Args = append(child.Args, "--adapter", adapter)
	}
	if watch {
		child.Args = append(child.Args, "--watch")
	}
	if pidfile != "" {
		child.Args = append(child.Args, "--pidfile", pidfile)
	}
	expect := make([]byte, 32)
	if _, err := rand.Read(expect); err != nil {
		return e.startFailed(err)
	}
	child.Stdin = bytes.NewReader(expect)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	if err := child.Start(); err != nil {
		return e.startFailed(fmt.Errorf("starting sentinel run: %w", err))
	}
	success, exited := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			got, _ := io.ReadAll(io.LimitReader(conn, 32))
			conn.Close()
			if bytes.Equal(got, expect) {
				close(success)
				return
			}
		}
	}()
	go func() { exited <- child.Wait() }()
	select {
	case <-success:
		fmt.Fprintf(e.stdout, "Sentinel started in the background (pid %d); stop it with 'sentinel stop'\n", child.Process.Pid)
		return nil
	case err := <-exited:
		if err == nil {
			err = errors.New("exited without an error before serving")
		}
		return e.startFailed(fmt.Errorf("sentinel run: %w", err))
	}
}

func (e *cliEnv) startFailed(err error) error {
	fmt.Fprintln(e.stderr, "sentinel start:", err)
	return &exitError{code: 1, err: err}
}
