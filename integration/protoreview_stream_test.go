package integration

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestRouteTimeoutCutsStreamsVisibly streams a response (server-sent
// events, no Content-Length) through a route whose timeout passes in the
// middle of it, over HTTP/1.1 and HTTP/2: the response has started (200,
// events delivered as they come), so the timeout cannot become a 504; it
// must then end the response as broken (no final chunk over HTTP/1.1, a
// stream reset over HTTP/2), never as a complete response that a client
// or cache would take for the whole body. A stream that ends before the
// timeout is complete.
func TestRouteTimeoutCutsStreamsVisibly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 30
		if r.URL.Path == "/short" {
			n = 2
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1")
	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "tls" {
        address %q
        protocol "https"
        tls { cert-file %q; key-file %q; }
    }
}
routes {
    route "sse" {
        matches { path-prefix "/"; }
        upstream "sse"
        policies { timeout-secs 1; }
    }
}
upstreams { upstream "sse" { target %q; }; }
`, listen, cert, key, ln.Addr().String()))

	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test certificate
	}}
	for _, c := range []struct {
		name   string
		client *http.Client
		proto  int
	}{{"HTTP/1.1", h1, 1}, {"HTTP/2", h2Client(), 2}} {
		t.Run(c.name, func(t *testing.T) {
			res, err := c.client.Get("https://" + listen + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK || res.ProtoMajor != c.proto {
				t.Fatalf("%s %d", res.Proto, res.StatusCode)
			}
			start := time.Now()
			body, err := io.ReadAll(res.Body)
			el := time.Since(start)
			if !strings.HasPrefix(string(body), "data: 0\n\n") || el < 700*time.Millisecond || el > 4*time.Second {
				t.Fatalf("stream of %d bytes ended after %v (%v)", len(body), el, err)
			}
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("the stream cut by the route timeout ended as a complete response (%d bytes, %v)", len(body), err)
			}

			res, err = c.client.Get("https://" + listen + "/short")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if body, err := io.ReadAll(res.Body); err != nil || string(body) != "data: 0\n\ndata: 1\n\n" {
				t.Fatalf("short stream: %q, %v", body, err)
			}
		})
	}
}
