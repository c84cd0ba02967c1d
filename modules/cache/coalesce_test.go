package cache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// coalesceBody is the body size of the coalescing tests' responses:
// larger than what the kernel buffers for a client that reads slowly
// (its receive buffer is made small), so that writing it to that client
// blocks.
const coalesceBody = 4 << 20

// coalesceOrigin is a loopback origin for the coalescing tests: serve
// answers each request (n counts from 1); hits counts them.
type coalesceOrigin struct {
	addr string
	hits atomic.Int64
	// got is closed when the first request arrives.
	got     chan struct{}
	gotOnce sync.Once
}

func startCoalesceOrigin(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, n int64)) *coalesceOrigin {
	t.Helper()
	o := &coalesceOrigin{got: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.hits.Add(1)
		o.gotOnce.Do(func() { close(o.got) })
		serve(w, r, n)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return o
}

// coalesceProxy loads a cached route to the origin with room for
// entries of maxEntry bytes (and the default lock_timeout, 10s).
func coalesceProxy(t *testing.T, originAddr string, maxEntry int64) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 30 * time.Second})
	tc.InitServer(fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d", "config": {"persist": false}},
	"apps": {"http": {"servers": {"s": {
		"listen": [%q],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [
			{"handler": "sentinel_cache", "storage": {"name": %q, "max_size": 67108864}, "status_header": "sentinel", "max_entry_bytes": %d},
			{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
		]}]
	}}}}
}`, adminPort, addr, t.Name(), maxEntry, originAddr), "json")
	return addr
}

// slowClient sends a GET for path over a raw TCP socket with a small
// receive buffer and reads the answer one byte every 100 ms (a
// slowloris reader, a client on a bad mobile link). It returns what it
// has read so far.
func slowClient(t *testing.T, addr, path string) func() []byte {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []byte
	go func() {
		b := make([]byte, 1)
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Read(b); err != nil {
				return
			}
			mu.Lock()
			got = append(got, b[0])
			mu.Unlock()
		}
	}()
	return func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(got)
	}
}

// timedGet is a GET with its duration; the body is read whole.
type timedResult struct {
	result
	took time.Duration
	err  error
}

func timedGets(n int, url string) []timedResult {
	out := make([]timedResult, n)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res, err := client.Get(url)
			if err != nil {
				out[i] = timedResult{took: time.Since(start), err: err}
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			out[i] = timedResult{result: result{res.StatusCode, string(b), res.Header}, took: time.Since(start), err: err}
		}()
	}
	wg.Wait()
	return out
}

// bodyOf is the origin's body for request n: size bytes, the first line
// naming n.
func bodyOf(n int64, size int) []byte {
	b := bytes.Repeat([]byte("x"), size)
	copy(b, fmt.Sprintf("n=%d\n", n))
	return b
}

// TestSlowLeaderClientDoesNotHoldWaiters: concurrent misses of a key
// wait for the one request that went upstream (the leader). The entry
// must be available to them once the upstream response is read, not
// once the leader's client has received it: a client reading one byte
// every 100 ms made every other client of the URL wait lock_timeout
// (10 s), and then go upstream all at once.
func TestSlowLeaderClientDoesNotHoldWaiters(t *testing.T) {
	testutil.Exclusive(t)
	o := startCoalesceOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		body := bodyOf(n, coalesceBody)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:64<<10])
		http.NewResponseController(w).Flush()
		time.Sleep(500 * time.Millisecond) // the waiters arrive meanwhile
		_, _ = w.Write(body[64<<10:])
	})
	addr := coalesceProxy(t, o.addr, 2*coalesceBody)
	leader := slowClient(t, addr, "/doc")
	<-o.got
	time.Sleep(100 * time.Millisecond)

	want := string(bodyOf(1, coalesceBody))
	for i, r := range timedGets(5, "http://"+addr+"/doc") {
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		if r.took > 3*time.Second {
			t.Errorf("waiter %d waited %s for a slow client of the leader (lock_timeout 10s)", i, r.took)
		}
		if r.status != 200 || r.body != want {
			t.Errorf("waiter %d: status %d, body of %d bytes starting %q", i, r.status, len(r.body), r.body[:min(len(r.body), 8)])
		}
		if cs := r.cacheStatus(); !strings.Contains(cs, "; hit; ") {
			t.Errorf("waiter %d: Cache-Status %q, want a hit (coalesced)", i, cs)
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("the origin got %d requests, want 1", n)
	}
	// The leader's own client is served at its own pace.
	deadline := time.Now().Add(5 * time.Second)
	for len(leader()) < len("HTTP/1.1 200") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := leader(); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
		t.Errorf("the slow client got %q, want the start of a 200", got)
	}
}

// TestOversizeBodySlowLeaderDoesNotHoldWaiters: a body of unknown
// length that turns out larger than max_entry_bytes is not stored; the
// waiters go upstream themselves as soon as that is known, even though
// the leader's client is slow, and the leader's client gets what was
// held back.
func TestOversizeBodySlowLeaderDoesNotHoldWaiters(t *testing.T) {
	testutil.Exclusive(t)
	o := startCoalesceOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		body := bodyOf(n, coalesceBody)
		w.Header().Set("Cache-Control", "max-age=60") // chunked: no Content-Length
		_, _ = w.Write(body[:64<<10])
		http.NewResponseController(w).Flush()
		if n == 1 {
			time.Sleep(500 * time.Millisecond) // the waiters arrive meanwhile
		}
		_, _ = w.Write(body[64<<10:])
	})
	addr := coalesceProxy(t, o.addr, 1<<20)
	leader := slowClient(t, addr, "/big")
	<-o.got
	time.Sleep(100 * time.Millisecond)

	for i, r := range timedGets(5, "http://"+addr+"/big") {
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		if r.took > 3*time.Second {
			t.Errorf("waiter %d waited %s for the slow client of an oversize response", i, r.took)
		}
		if r.status != 200 || len(r.body) != coalesceBody {
			t.Errorf("waiter %d: status %d, %d bytes", i, r.status, len(r.body))
		}
		if cs := r.cacheStatus(); strings.Contains(cs, "hit") || strings.Contains(cs, "stored") {
			t.Errorf("waiter %d: Cache-Status %q for an oversize response", i, cs)
		}
	}
	if n := o.hits.Load(); n != 6 {
		t.Errorf("the origin got %d requests, want 6 (the leader and each waiter)", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(leader()) < len("HTTP/1.1 200") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := leader(); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
		t.Errorf("the slow client got %q, want the start of a 200", got)
	}
}

// TestUpstreamErrorMidBodyNotStored: when the upstream connection breaks
// in the middle of the leader's body, the waiters are released at once
// and are not served the truncated body: they go upstream themselves.
func TestUpstreamErrorMidBodyNotStored(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			testutil.Exclusive(t)
			o := startCoalesceOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				body := bodyOf(n, 256<<10)
				w.Header().Set("Cache-Control", "max-age=60")
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				if n > 1 {
					_, _ = w.Write(body)
					return
				}
				_, _ = w.Write(body[:64<<10])
				http.NewResponseController(w).Flush()
				time.Sleep(500 * time.Millisecond) // the waiters arrive meanwhile
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close() // mid-body
				}
			})
			addr := coalesceProxy(t, o.addr, 1<<20)
			leaderDone := make(chan int, 1)
			go func() {
				res, err := http.Get("http://" + addr + "/doc")
				if err != nil {
					leaderDone <- 0
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				leaderDone <- len(b)
			}()
			<-o.got
			time.Sleep(100 * time.Millisecond)
			for i, r := range timedGets(3, "http://"+addr+"/doc") {
				if r.err != nil {
					t.Fatalf("waiter %d: %v", i, r.err)
				}
				if r.took > 3*time.Second {
					t.Errorf("waiter %d waited %s after the leader's upstream failed", i, r.took)
				}
				if len(r.body) != 256<<10 || strings.HasPrefix(r.body, "n=1\n") {
					t.Errorf("waiter %d: %d bytes starting %q: the leader's truncated response", i, len(r.body), r.body[:min(len(r.body), 4)])
				}
			}
			if n := <-leaderDone; n >= 256<<10 {
				t.Errorf("the leader's client got %d bytes of a broken response", n)
			}
			// What is stored now is whole.
			r := timedGets(1, "http://"+addr+"/doc")[0]
			if r.err != nil || len(r.body) != 256<<10 || !strings.Contains(r.cacheStatus(), "hit") {
				t.Errorf("after: %v, %d bytes, Cache-Status %q", r.err, len(r.body), r.cacheStatus())
			}
		})
	}
}

// TestStorableStreamNotHeld: a storable event stream (or a response
// that asks to be forwarded incrementally, RFC 10036) is not held back
// from the leader's client until it ends, and does not hold the others
// either: they go upstream themselves.
func TestStorableStreamNotHeld(t *testing.T) {
	for name, hdr := range map[string][2]string{
		"event-stream": {"Content-Type", "text/event-stream; charset=utf-8"},
		"incremental":  {"Incremental", "?1"},
	} {
		t.Run(name, func(t *testing.T) { testStorableStreamNotHeld(t, hdr[0], hdr[1]) })
	}
}

func testStorableStreamNotHeld(t *testing.T, name, value string) {
	stop := make(chan struct{})
	o := startCoalesceOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set(name, value)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "data: hello\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	t.Cleanup(func() { close(stop) })
	addr := coalesceProxy(t, o.addr, 1<<20)
	first := func() (*http.Response, time.Duration) {
		start := time.Now()
		c := &http.Client{Timeout: 5 * time.Second}
		res, err := c.Get("http://" + addr + "/events")
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(res.Body).ReadString('\n')
		if err != nil || line != "data: hello\n" {
			t.Fatalf("first event: %q, %v", line, err)
		}
		return res, time.Since(start)
	}
	a, _ := first()
	defer a.Body.Close()
	b, took := first()
	defer b.Body.Close()
	if took > 2*time.Second {
		t.Fatalf("a second client of a stream waited %s for the first one", took)
	}
}
