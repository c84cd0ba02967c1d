package adaptive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// newTransportWith provisions a sentinel transport with the settings set
// by configure.
func newTransportWith(t *testing.T, configure func(*Transport)) *Transport {
	t.Helper()
	tr := &Transport{}
	configure(tr)
	ctx, cancel := caddy.NewContext(testCtx)
	t.Cleanup(cancel)
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Cleanup() })
	return tr
}

// rawBackend is a TCP backend whose connections serve is given, with
// the connection's number (0 for the first). It counts the connections.
type rawBackend struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  []net.Conn
}

func newRawBackend(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(b.conns.Add(1)) - 1
			b.mu.Lock()
			b.open = append(b.open, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.open {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *rawBackend) url() string { return "http://" + b.ln.Addr().String() }

// readHead reads a request head; false at the end of the connection.
func readHead(br *bufio.Reader) (string, bool) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return head.String(), false
		}
		head.WriteString(line)
		if line == "\r\n" {
			return head.String(), true
		}
	}
}

// keepAlive answers every request of the connection with body.
func keepAlive(body string) func(int, net.Conn, *bufio.Reader) {
	return func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readHead(br); !ok {
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	}
}

func get(t *testing.T, tr *Transport, url string) (*http.Response, string) {
	t.Helper()
	res, err := tr.RoundTrip(mustReq(t, url))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// TestDirectKeepAlive: sequential requests reuse one backend connection,
// with Content-Length and chunked bodies, and the connection is in the
// pool once the body is read.
func TestDirectKeepAlive(t *testing.T) {
	var conns atomic.Int32
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			io.WriteString(w, "part1 ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			return
		}
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	backend.Start()
	defer backend.Close()
	tr := newTransport(t)
	if tr.direct == nil {
		t.Fatal("direct round trip not built for a plain HTTP/1.1 transport")
	}
	for i := range 20 {
		path := fmt.Sprintf("/%d", i)
		if i%2 == 1 {
			path = "/chunked"
		}
		res, body := get(t, tr, backend.URL+path)
		want := "hello " + path
		if path == "/chunked" {
			want = "part1 part2"
			if len(res.TransferEncoding) == 0 {
				t.Errorf("chunked response without Transfer-Encoding")
			}
		}
		if res.StatusCode != 200 || body != want {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
		if n := tr.direct.idleCount(); n != 1 {
			t.Fatalf("request %d: %d idle connections after the body, want 1", i, n)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d backend connections for 20 sequential requests, want 1", n)
	}
}

// TestDirectBackendClosedIdle: a backend that closes an idle connection
// between requests costs no error: the closed connection is noticed when
// taken from the pool, and another one is dialed.
func TestDirectBackendClosedIdle(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, ok := readHead(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// Then close the connection, idle.
	})
	tr := newTransport(t)
	for i := range 5 {
		if _, body := get(t, tr, b.url()); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
		time.Sleep(20 * time.Millisecond) // the backend's close arrives
	}
	if n := b.conns.Load(); n != 5 {
		t.Errorf("%d connections, want 5", n)
	}
}

// TestDirectRetryReused: a reused connection that the backend closes
// when the request arrives (before any byte of a response) is retried
// once on a new connection, without a client-visible error.
func TestDirectRetryReused(t *testing.T) {
	b := newRawBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if _, ok := readHead(br); !ok {
				return
			}
			if n == 0 && i == 1 {
				return // the second request on the first connection
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := newTransport(t)
	for i := range 3 {
		if _, body := get(t, tr, b.url()); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := b.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one retry)", n)
	}
}

// TestDirectNoRetryFresh: a new connection that fails before the
// response is not retried: the error reaches the proxy.
func TestDirectNoRetryFresh(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) { readHead(br) })
	tr := newTransport(t)
	if _, err := tr.RoundTrip(mustReq(t, b.url())); err == nil {
		t.Fatal("no error for a connection closed without a response")
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry of a fresh connection)", n)
	}
}

// TestDirectConnectionClose: a response with Connection: close, or one
// whose body ends with the stream, does not return its connection to the
// pool.
func TestDirectConnectionClose(t *testing.T) {
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\n\r\nok", // delimited by the end of the stream
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	} {
		b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
			if _, ok := readHead(br); ok {
				io.WriteString(c, resp)
			}
		})
		tr := newTransport(t)
		for range 2 {
			if _, body := get(t, tr, b.url()); body != "ok" {
				t.Fatalf("%q: body %q", resp, body)
			}
			if n := tr.direct.idleCount(); n != 0 {
				t.Fatalf("%q: %d idle connections, want 0", resp, n)
			}
		}
		if n := b.conns.Load(); n != 2 {
			t.Errorf("%q: %d connections, want 2", resp, n)
		}
	}
}

// TestDirectNoBody: HEAD, 204 and 304 responses have no body; their
// connection is free (and reused) as soon as the head is read, even when
// the HEAD response announces a length.
func TestDirectNoBody(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			head, ok := readHead(br)
			if !ok {
				return
			}
			switch {
			case strings.HasPrefix(head, "HEAD "):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
			case strings.Contains(head, "/204"):
				io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			default:
				io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
			}
		}
	})
	tr := newTransport(t)
	for _, c := range []struct{ method, path string }{{"HEAD", "/"}, {"GET", "/204"}, {"GET", "/304"}, {"HEAD", "/"}} {
		req, _ := http.NewRequest(c.method, b.url()+c.path, nil)
		res, err := tr.RoundTrip(proxied(req))
		if err != nil {
			t.Fatal(err)
		}
		if n := tr.direct.idleCount(); n != 1 {
			t.Errorf("%s %s: %d idle connections before the body is read, want 1", c.method, c.path, n)
		}
		if body, _ := io.ReadAll(res.Body); len(body) != 0 {
			t.Errorf("%s %s: body %q", c.method, c.path, body)
		}
		res.Body.Close()
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestDirectCancelMidBody: a client that cancels while the body streams
// gets the cancellation; the connection is closed (the backend sees its
// end), not reused.
func TestDirectCancelMidBody(t *testing.T) {
	closed := make(chan struct{})
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, ok := readHead(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
		io.Copy(io.Discard, br) // until the proxy closes
		close(closed)
	})
	tr := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url(), nil)
	res, err := tr.RoundTrip(proxied(req))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(res.Body)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	res.Body.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after the cancel")
	}
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("%d idle connections after a canceled body", n)
	}
}

// TestDirectCancelBeforeHead: a client that cancels while waiting for the
// response head gets the cancellation (Caddy logs it as 499).
func TestDirectCancelBeforeHead(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.Copy(io.Discard, br)
	})
	tr := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url(), nil)
	_, err := tr.RoundTrip(proxied(req))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// TestDirectEarlyClose: a body closed before its end closes the
// connection instead of reading (or reusing) the rest.
func TestDirectEarlyClose(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readHead(br); !ok {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
		}
	})
	tr := newTransport(t)
	res, err := tr.RoundTrip(mustReq(t, b.url()))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Read(make([]byte, 3))
	res.Body.Close()
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("%d idle connections after an early close", n)
	}
	if _, body := get(t, tr, b.url()); body != "0123456789" {
		t.Errorf("next request: %q", body)
	}
	if n := b.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestDirectHeaderTimeout: response_header_timeout applies: the attempt
// fails with a timeout (Caddy's 504).
func TestDirectHeaderTimeout(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.Copy(io.Discard, br)
	})
	tr := newTransportWith(t, func(tr *Transport) {
		tr.ResponseHeaderTimeout = caddy.Duration(100 * time.Millisecond)
	})
	if tr.direct == nil {
		t.Fatal("no direct round trip")
	}
	start := time.Now()
	_, err := tr.RoundTrip(mustReq(t, b.url()))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("error %v, want net/http's header timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout after %v", d)
	}
}

// TestDirectHeaderTimeoutNotBody: the header timeout does not limit the
// body.
func TestDirectHeaderTimeoutNotBody(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(300 * time.Millisecond)
		io.WriteString(c, "cd")
	})
	tr := newTransportWith(t, func(tr *Transport) {
		tr.ResponseHeaderTimeout = caddy.Duration(100 * time.Millisecond)
	})
	if _, body := get(t, tr, b.url()); body != "abcd" {
		t.Errorf("body %q", body)
	}
}

// TestDirectBackendDiesMidBody: a body cut short is an unexpected EOF,
// and the connection is not reused.
func TestDirectBackendDiesMidBody(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
	})
	tr := newTransport(t)
	res, err := tr.RoundTrip(mustReq(t, b.url()))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(body) != "short" {
		t.Errorf("body %q, error %v; want the part and an unexpected EOF", body, err)
	}
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("%d idle connections", n)
	}
}

// TestDirectBadFraming: a response the parser refuses fails the attempt
// and closes the connection; bytes sent beyond a response keep its
// connection out of the pool (they would be read as the next request's
// response).
func TestDirectBadFraming(t *testing.T) {
	b := newRawBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		switch n {
		case 0:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")
		default:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforge")
			time.Sleep(100 * time.Millisecond)
		}
	})
	tr := newTransport(t)
	if _, err := tr.RoundTrip(mustReq(t, b.url())); err == nil {
		t.Fatal("no error for two Content-Length values")
	}
	if _, body := get(t, tr, b.url()); body != "ok" {
		t.Fatalf("body %q", body)
	}
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("%d idle connections after a response followed by more bytes", n)
	}
}

// TestDirectUnsolicited: an idle connection on which the backend sent
// bytes is not used: the next request gets its own response on a new
// connection.
func TestDirectUnsolicited(t *testing.T) {
	b := newRawBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if n == 0 {
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforge")
		}
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		readHead(br)
	})
	tr := newTransport(t)
	get(t, tr, b.url())
	time.Sleep(100 * time.Millisecond)
	if _, body := get(t, tr, b.url()); body != "ok" {
		t.Fatalf("body %q: an unsolicited response was taken", body)
	}
	if n := b.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestDirect1xx: informational responses reach the proxy's
// Got1xxResponse hook (Caddy forwards them), then the final response.
func TestDirect1xx(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := newTransport(t)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req := mustReq(t, b.url())
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok" || len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" {
		t.Errorf("status %d body %q hints %q", res.StatusCode, body, hints)
	}
}

// TestDirectHeaderLimit: max_header_size limits the response head.
func TestDirectHeaderLimit(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 8000)+"\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := newTransportWith(t, func(tr *Transport) { tr.MaxResponseHeaderSize = 1024 })
	if _, err := tr.RoundTrip(mustReq(t, b.url())); err == nil || !strings.Contains(err.Error(), "1024") {
		t.Errorf("error %v, want the header limit", err)
	}
}

// captureHeads records the request heads a backend receives, answering
// gzip-compressed bodies when asked for gzip.
func captureHeads(t *testing.T) (*rawBackend, *[]string, *sync.Mutex) {
	var mu sync.Mutex
	heads := new([]string)
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			head, ok := readHead(br)
			if !ok {
				return
			}
			mu.Lock()
			*heads = append(*heads, head)
			mu.Unlock()
			if strings.Contains(head, "Accept-Encoding: gzip") {
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				io.WriteString(zw, "compressed body")
				zw.Close()
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", z.Len(), z.Bytes())
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
		}
	})
	return b, heads, &mu
}

// TestDirectSameAsNetHTTP: the direct round trip writes the same bytes as
// net/http's transport (with its Accept-Encoding: gzip, the default
// User-Agent rules) and gives the same responses, gzip decompressed
// transparently when it asked for gzip itself, passed through when the
// client asked for it.
func TestDirectSameAsNetHTTP(t *testing.T) {
	off := false
	direct := newTransport(t)
	std := newTransportWith(t, func(tr *Transport) { tr.DirectHTTP1 = &off })
	if direct.direct == nil || std.direct != nil {
		t.Fatal("direct_http1 not honoured")
	}
	cases := []struct {
		name   string
		method string
		header http.Header
	}{
		{"plain GET", "GET", nil},
		{"client gzip", "GET", http.Header{"Accept-Encoding": {"gzip"}}},
		{"range", "GET", http.Header{"Range": {"bytes=0-1"}}},
		{"empty user agent", "GET", http.Header{"User-Agent": {""}, "X-Multi": {"a", "b"}}},
		{"user agent", "OPTIONS", http.Header{"User-Agent": {"curl/8"}, "Cookie": {"a=b"}}},
		{"head", "HEAD", nil},
	}
	b, heads, mu := captureHeads(t)
	for _, c := range cases {
		var got [2]struct {
			head, body, enc string
			length          int64
			uncompressed    bool
		}
		for i, tr := range []*Transport{direct, std} {
			mu.Lock()
			*heads = nil
			mu.Unlock()
			req, _ := http.NewRequest(c.method, b.url()+"/p?q=1", nil)
			for k, v := range c.header {
				req.Header[k] = v
			}
			res, err := tr.RoundTrip(proxied(req))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got[i].head = strings.Join(*heads, "")
			mu.Unlock()
			got[i].body, got[i].enc, got[i].length, got[i].uncompressed = string(body), res.Header.Get("Content-Encoding"), res.ContentLength, res.Uncompressed
		}
		if got[0] != got[1] {
			t.Errorf("%s: direct %+v\nnet/http %+v", c.name, got[0], got[1])
		}
	}
}

// TestDirectInvalidHeader: net/http's header checks apply.
func TestDirectInvalidHeader(t *testing.T) {
	b := newRawBackend(t, keepAlive("ok"))
	tr := newTransport(t)
	req := mustReq(t, b.url())
	req.Header.Set("X-Bad", "a\nb")
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header") {
		t.Errorf("error %v", err)
	}
	if n := b.conns.Load(); n != 0 {
		t.Errorf("%d connections for an invalid request", n)
	}
}

// TestDirectIdleLimits: idle connections beyond max_idle_conns_per_host
// are closed, idle_timeout closes the rest, and the transport's cleanup
// closes all.
func TestDirectIdleLimits(t *testing.T) {
	release := make(chan struct{})
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readHead(br); !ok {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
			<-release
			io.WriteString(c, "ok")
		}
	})
	tr := newTransportWith(t, func(tr *Transport) {
		tr.KeepAlive = &reverseproxy.KeepAlive{MaxIdleConnsPerHost: 2, IdleConnTimeout: caddy.Duration(300 * time.Millisecond)}
	})
	var bodies []io.ReadCloser
	for range 3 {
		res, err := tr.RoundTrip(mustReq(t, b.url()))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, res.Body)
	}
	close(release)
	for _, body := range bodies {
		io.ReadAll(body)
		body.Close()
	}
	if n := tr.direct.idleCount(); n != 2 {
		t.Errorf("%d idle connections, want 2 (max_idle_conns_per_host)", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for tr.direct.idleCount() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("%d idle connections after idle_timeout", n)
	}

	get(t, tr, b.url())
	if tr.direct.idleCount() != 1 {
		t.Fatal("no idle connection")
	}
	d := tr.direct
	tr.Cleanup()
	if n := d.idleCount(); n != 0 {
		t.Errorf("%d idle connections after cleanup", n)
	}
}

// TestDirectEligible: only bodyless GET, HEAD and OPTIONS requests over
// plain HTTP to TCP addresses, without upgrade, expectation, connection
// options or other trace hooks, take the direct round trip; the others
// still work through net/http.
func TestDirectEligible(t *testing.T) {
	tr := newTransport(t)
	d := tr.direct
	mk := func(method, url string, body io.Reader, mod func(*http.Request) *http.Request) *http.Request {
		req, _ := http.NewRequest(method, url, body)
		if mod != nil {
			req = mod(req)
		}
		return req
	}
	hdr := func(k, v string) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request { r.Header.Set(k, v); return r }
	}
	withDial := func(network, addr string) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request {
			return r.WithContext(context.WithValue(r.Context(), caddy.CtxKey("reverse_proxy.dial_info"),
				reverseproxy.DialInfo{Network: network, Address: addr}))
		}
	}
	cases := []struct {
		name string
		req  *http.Request
		want bool
		key  directKey
	}{
		{"get", mk("GET", "http://h:81/", nil, nil), true, directKey{"tcp", "h:81"}},
		{"default port", mk("HEAD", "http://h/", nil, nil), true, directKey{"tcp", "h:80"}},
		{"ipv6", mk("OPTIONS", "http://[::1]/", nil, nil), true, directKey{"tcp", "[::1]:80"}},
		{"dial info", mk("GET", "http://h/", nil, withDial("tcp4", "10.0.0.1:8080")), true, directKey{"tcp4", "10.0.0.1:8080"}},
		{"unix", mk("GET", "http://h/", nil, withDial("unix", "/s")), false, directKey{}},
		{"post", mk("POST", "http://h/", nil, nil), false, directKey{}},
		{"body", mk("GET", "http://h/", strings.NewReader("x"), nil), false, directKey{}},
		{"https", mk("GET", "https://h/", nil, nil), false, directKey{}},
		{"upgrade", mk("GET", "http://h/", nil, hdr("Upgrade", "websocket")), false, directKey{}},
		{"expect", mk("GET", "http://h/", nil, hdr("Expect", "100-continue")), false, directKey{}},
		{"connection", mk("GET", "http://h/", nil, hdr("Connection", "close")), false, directKey{}},
		{"close", mk("GET", "http://h/", nil, func(r *http.Request) *http.Request { r.Close = true; return r }), false, directKey{}},
		{"trace", mk("GET", "http://h/", nil, func(r *http.Request) *http.Request {
			return r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {}}))
		}), false, directKey{}},
		{"1xx trace", mk("GET", "http://h/", nil, func(r *http.Request) *http.Request {
			return r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { return nil }}))
		}), true, directKey{"tcp", "h:80"}},
	}
	for _, c := range cases {
		key, ok := d.eligible(c.req)
		if ok != c.want || key != c.key {
			t.Errorf("%s: eligible %v %v, want %v %v", c.name, ok, key, c.want, c.key)
		}
	}

	// Settings that need net/http's transport.
	yes, no := true, false
	for name, configure := range map[string]func(*Transport){
		"off":             func(tr *Transport) { tr.DirectHTTP1 = &no },
		"tls":             func(tr *Transport) { tr.TLS = &reverseproxy.TLSConfig{} },
		"h2c":             func(tr *Transport) { tr.Versions = []string{"h2c", "2"} },
		"no keep-alive":   func(tr *Transport) { tr.KeepAlive = &reverseproxy.KeepAlive{Enabled: &no} },
		"proxy protocol":  func(tr *Transport) { tr.ProxyProtocol = "v2" },
		"read timeout":    func(tr *Transport) { tr.ReadTimeout = caddy.Duration(time.Second) },
		"max conns":       func(tr *Transport) { tr.MaxConnsPerHost = 4 },
		"forward proxy":   func(tr *Transport) { tr.ForwardProxyURL = "http://127.0.0.1:3128" },
		"keep-alive on":   func(tr *Transport) { tr.KeepAlive = &reverseproxy.KeepAlive{Enabled: &yes} },
		"explicit on":     func(tr *Transport) { tr.DirectHTTP1 = &yes },
		"versions 1.1":    func(tr *Transport) { tr.Versions = []string{"1.1"} },
		"versions only 2": func(tr *Transport) { tr.Versions = []string{"2"} },
	} {
		tr := newTransportWith(t, configure)
		want := strings.HasPrefix(name, "keep-alive on") || name == "explicit on" || name == "versions 1.1" || name == "read timeout"
		if (tr.direct != nil) != want {
			t.Errorf("%s: direct %v, want %v", name, tr.direct != nil, want)
		}
	}
}

// TestDirectOthersViaNetHTTP: a request with a body goes through
// net/http's transport (the direct pool stays empty) and works.
func TestDirectOthersViaNetHTTP(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, body)
	}))
	defer backend.Close()
	tr := newTransport(t)
	req, _ := http.NewRequest("POST", backend.URL, strings.NewReader("data"))
	res, err := tr.RoundTrip(proxied(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "POST data" {
		t.Errorf("body %q", body)
	}
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("the POST went through the direct pool")
	}
}

// TestDirectConcurrent: concurrent requests share the pool safely (run
// with -race).
func TestDirectConcurrent(t *testing.T) {
	b := newRawBackend(t, keepAlive("concurrent"))
	tr := newTransport(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				res, err := tr.RoundTrip(mustReq(t, b.url()))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(body) != "concurrent" {
					t.Errorf("body %q", body)
				}
			}
		})
	}
	wg.Wait()
	if n := b.conns.Load(); n > 8 {
		t.Errorf("%d connections for 8 concurrent clients", n)
	}
}

// TestDirectSwitchingUnasked: a 101 to a request that asked for no
// upgrade hands the connection over as net/http does (the body reads and
// writes it), and it is never pooled.
func TestDirectSwitchingUnasked(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nhi")
		line, _ := br.ReadString('\n')
		io.WriteString(c, "echo "+line)
	})
	tr := newTransport(t)
	res, err := tr.RoundTrip(mustReq(t, b.url()))
	if err != nil {
		t.Fatal(err)
	}
	rw, ok := res.Body.(io.ReadWriteCloser)
	if res.StatusCode != 101 || !ok {
		t.Fatalf("status %d, body %T", res.StatusCode, res.Body)
	}
	io.WriteString(rw, "ping\n")
	got, _ := io.ReadAll(rw)
	rw.Close()
	if string(got) != "hiecho ping\n" {
		t.Errorf("read %q", got)
	}
	if n := tr.direct.idleCount(); n != 0 {
		t.Errorf("%d idle connections", n)
	}
}

// TestDirectReadWriteTimeouts: with Caddy's read_timeout and
// write_timeout (its dialer wraps the connections, setting a deadline
// before each read and write), connections idle for longer than the read
// timeout are still reused, a body slower than it fails, and a client's
// cancel still interrupts a blocked read at once.
func TestDirectReadWriteTimeouts(t *testing.T) {
	b := newRawBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			head, ok := readHead(br)
			if !ok {
				return
			}
			switch {
			case strings.Contains(head, "/slow"):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
				time.Sleep(400 * time.Millisecond)
				io.WriteString(c, "cd")
			case strings.Contains(head, "/hang"):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	tr := newTransportWith(t, func(tr *Transport) {
		tr.ReadTimeout = caddy.Duration(200 * time.Millisecond)
		tr.WriteTimeout = caddy.Duration(200 * time.Millisecond)
	})
	if tr.direct == nil {
		t.Fatal("no direct round trip with read and write timeouts")
	}
	for i := range 3 {
		if _, body := get(t, tr, b.url()); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
		time.Sleep(300 * time.Millisecond) // longer than the read timeout
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (idle longer than the read timeout, still reused)", n)
	}

	res, err := tr.RoundTrip(mustReq(t, b.url()+"/slow"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("slow body: %v, want the read timeout", err)
	}

	tr2 := newTransportWith(t, func(tr *Transport) { tr.ReadTimeout = caddy.Duration(10 * time.Second) })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url()+"/hang", nil)
	res, err = tr2.RoundTrip(proxied(req))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("canceled body: %v after %v", err, time.Since(start))
	}
}

// TestDirectEnvironmentProxy: with HTTP_PROXY set (read once per
// process, so in a child), a request to a loopback or NO_PROXY address
// stays direct and one the proxy would carry goes through net/http's
// transport.
func TestDirectEnvironmentProxy(t *testing.T) {
	if os.Getenv("SENTINEL_DIRECT_PROXY_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestDirectEnvironmentProxy$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SENTINEL_DIRECT_PROXY_CHILD=1",
			"HTTP_PROXY=http://127.0.0.1:1", "http_proxy=", "NO_PROXY=direct.test", "no_proxy=")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	tr := newTransport(t)
	if tr.direct == nil {
		t.Fatal("HTTP_PROXY in the environment turned the direct round trip off")
	}
	for url, want := range map[string]bool{
		"http://127.0.0.1:8080/":  true,  // loopback: never proxied
		"http://localhost:8080/":  true,  // likewise
		"http://direct.test/":     true,  // NO_PROXY
		"http://10.77.0.9:8080/":  false, // through the proxy
		"http://backend.test:81/": false,
	} {
		req, _ := http.NewRequest("GET", url, nil)
		if _, ok := tr.direct.eligible(req); ok != want {
			t.Errorf("%s: eligible %v, want %v", url, ok, want)
		}
	}
}
