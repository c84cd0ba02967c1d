package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestDirectUpstreamThroughProxy drives the sentinel transport's direct
// HTTP/1.1 round trip (modules/adaptive/direct.go) through the real
// proxy, to a raw backend that counts its connections:
//   - sequential GETs reuse one upstream connection;
//   - gzip is transparent as with net/http: a client that asked for no
//     encoding gets the decompressed body, one that asked for gzip the
//     backend's bytes;
//   - a backend that closes its idle connections costs the client no
//     error;
//   - a backend that dies in the middle of a body cuts the client's
//     response (as before: Caddy aborts it), and the next request works;
//   - a request with a body still goes through net/http and arrives
//     whole.
func TestDirectUpstreamThroughProxy(t *testing.T) {
	var conns atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "decompressed by the proxy")
	zw.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					switch req.URL.Path {
					case "/gzip":
						if req.Header.Get("Accept-Encoding") != "gzip" {
							io.WriteString(c, "HTTP/1.1 406 Not Acceptable\r\nContent-Length: 0\r\n\r\n")
							continue
						}
						fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", gz.Len(), gz.Bytes())
					case "/close-idle":
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						return // closes the connection, idle
					case "/die":
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
						return
					case "/echo":
						fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body)+len(req.Method)+1, req.Method+" "+string(body))
					default:
						io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
					}
				}
			}()
		}
	}()
	proxy := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "main" { address "%s"; }
}
routes {
    route "all" { upstream "be"; }
}
upstreams {
    upstream "be" { target "%s"; }
}
`, proxy, ln.Addr().String()))
	c := client()
	base := "http://" + proxy

	t.Run("keep-alive", func(t *testing.T) {
		before := conns.Load()
		for i := range 30 {
			if st, body, _ := get(t, c, "GET", base+"/", nil); st != 200 || body != "hello" {
				t.Fatalf("request %d: %d %q", i, st, body)
			}
		}
		if n := conns.Load() - before; n > 1 {
			t.Errorf("%d upstream connections for 30 sequential requests, want at most 1", n)
		}
	})

	t.Run("gzip", func(t *testing.T) {
		st, body, h := get(t, c, "GET", base+"/gzip", map[string]string{"Accept-Encoding": "identity"})
		// A client that names an encoding gets what the backend sends
		// for it: net/http adds gzip only when the client sent none.
		if st != 406 {
			t.Errorf("identity: status %d %q %v", st, body, h)
		}
		req, _ := http.NewRequest("GET", base+"/gzip", nil)
		tr := &http.Transport{DisableCompression: true}
		defer tr.CloseIdleConnections()
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "decompressed by the proxy" || res.Header.Get("Content-Encoding") != "" {
			t.Errorf("no Accept-Encoding: %d %q %v", res.StatusCode, b, res.Header)
		}
		st, body, h = get(t, c, "GET", base+"/gzip", map[string]string{"Accept-Encoding": "gzip"})
		if st != 200 || body != gz.String() || h.Get("Content-Encoding") != "gzip" {
			t.Errorf("gzip asked: %d %q %v", st, body, h)
		}
	})

	t.Run("backend closes idle connections", func(t *testing.T) {
		for i := range 10 {
			if st, body, _ := get(t, c, "GET", base+"/close-idle", nil); st != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, st, body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("backend dies mid-body", func(t *testing.T) {
		res, err := c.Get(base + "/die")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Errorf("no error for a cut body (%d bytes)", len(b))
		}
		if st, body, _ := get(t, c, "GET", base+"/", nil); st != 200 || body != "hello" {
			t.Errorf("next request: %d %q", st, body)
		}
	})

	t.Run("body via net/http", func(t *testing.T) {
		res, err := c.Post(base+"/echo", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "POST payload" {
			t.Errorf("body %q", b)
		}
	})
}
