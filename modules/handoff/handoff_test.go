package handoff

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// shared is one socket seen by several configs: Close only closes the
// view (as Caddy's shared listeners do).
type shared struct {
	net.Listener
	closed chan struct{}
}

func (s *shared) Accept() (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := s.Listener.Accept(); ch <- res{c, err} }()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-s.closed:
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, net.ErrClosed
	}
}

func (s *shared) Close() error { close(s.closed); return nil }

func dial(t *testing.T, addr, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if req != "" {
		io.WriteString(c, req)
	}
	return c
}

func TestHandoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	old := Handoff{}.WrapListener(&shared{Listener: ln, closed: make(chan struct{})})

	// Before a newer config: the old one accepts.
	c1 := dial(t, ln.Addr().String(), "GET /one HTTP/1.1\r\n\r\n")
	defer c1.Close()
	a1, err := old.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// Its server reads the request, then drops the connection without an
	// answer (Go's server during shutdown) after a newer config started.
	buf := make([]byte, 64)
	n, _ := a1.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "GET /one") {
		t.Fatalf("read %q", buf[:n])
	}
	newer := Handoff{}.WrapListener(&shared{Listener: ln, closed: make(chan struct{})})
	old.Close()
	a1.Close()
	// The newer config gets it, with the request replayed.
	a1b, err := newer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(a1b).ReadString('\n')
	if line != "GET /one HTTP/1.1\r\n" {
		t.Fatalf("replayed %q", line)
	}
	io.WriteString(a1b, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	reply, _ := bufio.NewReader(c1).ReadString('\n')
	if !strings.HasPrefix(reply, "HTTP/1.1 200") {
		t.Fatalf("client got %q", reply)
	}
	// An answered connection is closed, not replayed.
	a1b.Close()
	c1.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c1.Read(buf); err == nil {
		t.Error("answered connection still open")
	}

	// Accept on a closed listener fails.
	if _, err := old.Accept(); err == nil {
		t.Error("closed listener accepted")
	}
	if err := old.Close(); err != nil {
		t.Error("second Close:", err)
	}
	newer.Close()
}

// TestHandoffRoutesNewConnections: once a newer config listens, the older
// one's socket hands it the connections it accepts.
func TestHandoffRoutesNewConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l1 := Handoff{}.WrapListener(&shared{Listener: ln, closed: make(chan struct{})}).(*listener)
	l2 := Handoff{}.WrapListener(&shared{Listener: ln, closed: make(chan struct{})}).(*listener)
	defer l2.Close()
	// A connection accepted by l1's pump is routed to l2.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan net.Conn, 1)
	go func() {
		a, err := l2.Accept()
		if err == nil {
			got <- a
		}
	}()
	select {
	case a := <-got:
		a.Close()
	case <-time.After(3 * time.Second):
		t.Fatal("the newest listener got no connection")
	}
	l1.Close()
}

func TestHandoffCaddyfile(t *testing.T) {
	if err := new(Handoff).UnmarshalCaddyfile(caddyfile.NewTestDispenser("sentinel_handoff")); err != nil {
		t.Fatal(err)
	}
	if err := new(Handoff).UnmarshalCaddyfile(caddyfile.NewTestDispenser("sentinel_handoff x")); err == nil {
		t.Error("argument accepted")
	}
}

func TestReplayLimit(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &conn{Conn: a, l: &listener{group: &group{}}, recording: true}
	go b.Write(make([]byte, maxReplay+10))
	buf := make([]byte, maxReplay+10)
	total := 0
	for total < maxReplay+10 {
		n, err := c.Read(buf[total:])
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if c.recording || c.rec != nil {
		t.Error("recording past the limit")
	}
}

// TestHandoffEdges: a saturated newer listener leaves connections to the
// older one; connections queued on a closing listener move on or are
// closed; a real accept error reaches the server.
func TestHandoffEdges(t *testing.T) {
	g := &group{}
	older := &listener{group: g, accepted: make(chan net.Conn, 1), handed: make(chan net.Conn, 1), errs: make(chan error, 1), done: make(chan struct{})}
	newer := &listener{group: g, accepted: make(chan net.Conn, 1), handed: make(chan net.Conn, 1), errs: make(chan error, 1), done: make(chan struct{})}
	g.newest.Store(newer)
	a1, b1 := net.Pipe()
	defer b1.Close()
	newer.handed <- a1 // saturated
	a2, b2 := net.Pipe()
	defer b2.Close()
	older.route(a2)
	if got := <-older.accepted; got != a2 {
		t.Error("saturated newer listener: connection not kept")
	}
	// Closing a listener whose queue holds a connection: handed on.
	<-newer.handed
	a3, b3 := net.Pipe()
	defer b3.Close()
	older.handed <- a3
	older.Listener = &shared{Listener: nopListener{}, closed: make(chan struct{})}
	older.Close()
	if got := <-newer.handed; got != a3 {
		t.Error("queued connection not handed on")
	}
	// A real (non-timeout) accept error is returned by Accept.
	broken := Handoff{}.WrapListener(errListener{})
	if _, err := broken.Accept(); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("accept error: %v", err)
	}
	broken.Close()
}

type nopListener struct{ net.Listener }

func (nopListener) Close() error   { return nil }
func (nopListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

type errListener struct{}

func (errListener) Accept() (net.Conn, error) { return nil, errors.New("broken socket") }
func (errListener) Close() error              { return nil }
func (errListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }

// TestAnsweredSkipsLock: once the server answered, reads and writes do
// not take the connection's lock (one per read and write of every
// proxied connection otherwise), and nothing more is recorded.
func TestAnsweredSkipsLock(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &conn{Conn: a, l: &listener{group: &group{}}, recording: true}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\n")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock() // a Read or Write that takes the lock now blocks
	defer c.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		if _, err := c.Write([]byte("more")); err != nil {
			done <- err
			return
		}
		go b.Write([]byte("GET / HTTP/1.1\r\n"))
		_, err := c.Read(make([]byte, 64))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read or write after the answer took the lock")
	}
	if c.recording || c.rec != nil {
		t.Error("recording after the answer")
	}
}
