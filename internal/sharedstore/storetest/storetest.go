// Package storetest starts real Redis and memcached servers for tests, on
// free loopback ports, and stops them when the test ends (also when it
// fails or times out). A test whose server binary is missing skips
// (fails under CI, see testutil.Missing).
package storetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// Server is a running (or stopped) store server.
type Server struct {
	// Addr is its loopback host:port.
	Addr string

	tb   testing.TB
	name string
	proc *testutil.Process
}

// Redis starts a redis-server without persistence.
func Redis(tb testing.TB) *Server {
	tb.Helper()
	addr := testutil.FreeAddr(tb)
	_, port, _ := net.SplitHostPort(addr)
	return start(tb, "redis-server", addr, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", tb.TempDir())
}

// Memcached starts a memcached server.
func Memcached(tb testing.TB) *Server {
	tb.Helper()
	addr := testutil.FreeAddr(tb)
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-p", port, "-l", "127.0.0.1", "-U", "0", "-m", "16"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root otherwise
	}
	return start(tb, "memcached", addr, args...)
}

func start(tb testing.TB, name, addr string, args ...string) *Server {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testutil.Missing(tb, "%s is not installed (Debian package %s)", name, map[string]string{"redis-server": "redis-server", "memcached": "memcached"}[name])
	}
	s := &Server{Addr: addr, tb: tb, name: name, proc: testutil.NewProcess(tb, name, nil, append([]string{name}, args...)...)}
	s.Start()
	return s
}

// Start starts the server (again, after Stop) on its address and waits
// until it accepts connections.
func (s *Server) Start() {
	s.tb.Helper()
	s.proc.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.proc.Kill()
			s.tb.Fatalf("%s on %s did not start: %v\n%s", s.name, s.Addr, err, s.proc.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (s *Server) Stop() { s.proc.Kill() }

// URL is the server's URL with the scheme the clients expect.
func (s *Server) URL() string {
	if s.name == "memcached" {
		return "memcache://" + s.Addr
	}
	return "redis://" + s.Addr
}

// String names the server in messages.
func (s *Server) String() string { return fmt.Sprintf("%s on %s", s.name, s.Addr) }
