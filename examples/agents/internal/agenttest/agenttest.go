// Package agenttest helps the example agents' tests: run an agent's run
// function on a fresh Unix socket and dial it with the proxy-side client.
package agenttest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

// Start runs run(ctx, append(args, "-uds", path)) until the test ends and
// returns a client connected to it with opts.
func Start(t *testing.T, run func(context.Context, []string) error, opts protocol.Options, args ...string) protocol.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "ea")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append(args, "-uds", path)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		os.RemoveAll(dir)
	})
	WaitDial(t, "unix", path, done)
	if opts.PingInterval == 0 {
		opts.PingInterval = -1
	}
	c, err := protocol.DialUDS(Ctx(t, 10*time.Second), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// WaitDial waits until network/addr accepts connections (or done reports).
func WaitDial(t *testing.T, network, addr string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("agent exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not listen on %s", addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ctx returns a context canceled after d or at the end of the test.
func Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Headers builds a RequestHeaders event.
func Headers(corr, clientIP, uri string, h map[string][]string) *protocol.RequestHeaders {
	if h == nil {
		h = map[string][]string{}
	}
	return &protocol.RequestHeaders{Metadata: protocol.RequestMetadata{CorrelationID: corr, ClientIP: clientIP, Protocol: "HTTP/1.1"},
		Method: "GET", URI: uri, Headers: h}
}
