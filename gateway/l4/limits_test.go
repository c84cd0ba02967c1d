package l4

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// streamBackend greets each connection, then writes a line every
// period (a download the client never answers).
func streamBackend(t *testing.T, period time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(c, "tick %d\n", i); err != nil {
						return
					}
					time.Sleep(period)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dialGreeted connects to listen and reads the backend's first line
// (io.EOF: the connection was closed without reaching a backend).
func dialGreeted(t *testing.T, listen string) (net.Conn, *bufio.Reader, error) {
	t.Helper()
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	_, err = r.ReadString('\n')
	return c, r, err
}

// TestIdleTimeout: a spliced connection without a byte either way for
// idle_timeout is closed (both sides); one with traffic in one direction
// only (a download) stays open; idle_timeout negative never closes.
func TestIdleTimeout(t *testing.T) {
	testutil.Exclusive(t)
	echo, stream := tcpBackend(t, "echo"), streamBackend(t, 50*time.Millisecond)
	quiet, downloading, never := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	server := func(listen, backend, idle string) map[string]any {
		return map[string]any{"listen": []string{listen}, "idle_timeout": idle,
			"routes": []any{map[string]any{"upstreams": []any{map[string]any{"dial": backend}}}}}
	}
	run(t, map[string]any{"servers": map[string]any{
		"quiet": server(quiet, echo, "300ms"), "down": server(downloading, stream, "300ms"), "never": server(never, echo, "-1s"),
	}})

	c, r, err := dialGreeted(t, quiet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fmt.Fprintf(c, "ping\n")
	if l, err := r.ReadString('\n'); err != nil || l != "ping\n" {
		t.Fatalf("echo %q, %v", l, err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("an idle connection: %q, %v, want EOF", rest, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v, want about 300ms", d)
	}

	// A download: the client sends nothing for 5 idle timeouts, the
	// backend writes every 50ms: open throughout.
	_, r, err = dialGreeted(t, downloading)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("the download was cut after %d lines: %v", n, err)
		}
	}

	c, r, err = dialGreeted(t, never)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	fmt.Fprintf(c, "late\n")
	if l, err := r.ReadString('\n'); err != nil || l != "late\n" {
		t.Fatalf("without idle timeout: %q, %v", l, err)
	}
}

// TestMaxConnections: a server with max_connections 2 closes a third
// connection at once, without it reaching the backend; once one of the
// two is closed, a new one is served.
func TestMaxConnections(t *testing.T) {
	var accepted atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "hello\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	listen := testutil.FreeAddr(t)
	run(t, map[string]any{"servers": map[string]any{"tcp": map[string]any{
		"listen": []string{listen}, "max_connections": 2,
		"routes": []any{map[string]any{"upstreams": []any{map[string]any{"dial": ln.Addr().String()}}}},
	}}})
	first, _, err := dialGreeted(t, listen)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialGreeted(t, listen); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialGreeted(t, listen); err != io.EOF {
		t.Fatalf("a third connection: %v, want it closed (EOF)", err)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("the backend accepted %d connections, want 2", n)
	}
	first.Close()
	// The slot is freed once the splice of the first has ended.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := dialGreeted(t, listen)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
