package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// h3Backend is a plain HTTP backend for the HTTP/3 tests:
//
//   - /echo answers "METHOD PROTO BODY";
//   - /stream writes n chunks, waiting for gate between them;
//   - /barrier answers only once `want` requests are in flight together.
type h3Backend struct {
	addr    string
	gate    chan struct{}
	want    int32
	arrived atomic.Int32
	all     chan struct{}
	once    sync.Once
}

func startH3Backend(t *testing.T, concurrent int32) *h3Backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &h3Backend{addr: l.Addr().String(), gate: make(chan struct{}, 8), want: concurrent, all: make(chan struct{})}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *h3Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo":
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Backend", "h3-test")
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Proto, body)
	case "/stream":
		for i := 0; i < 3; i++ {
			if i > 0 {
				select {
				case <-b.gate:
				case <-time.After(5 * time.Second):
					fmt.Fprint(w, "gate-timeout")
					return
				}
			}
			fmt.Fprintf(w, "chunk%d;", i)
			http.NewResponseController(w).Flush()
		}
	case "/barrier":
		if b.arrived.Add(1) == b.want {
			b.once.Do(func() { close(b.all) })
		}
		select {
		case <-b.all:
			fmt.Fprint(w, "together")
		case <-time.After(5 * time.Second):
			http.Error(w, "requests were not concurrent", http.StatusGatewayTimeout)
		}
	default:
		http.NotFound(w, r)
	}
}

// h3Client is a real quic-go HTTP/3 client trusting any certificate.
func h3Client(t testing.TB) *http.Client {
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // test certificates
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// h3KDL is an HTTP/3 listener (with h1 and h2 on TCP) proxying to the
// backend, with a route policy that sets a response header.
func h3KDL(listen, cert, key, backend string) string {
	return fmt.Sprintf(`
system { }
listeners {
    listener "h3" {
        address %q
        protocol "h3"
        tls { cert-file %q; key-file %q; }
    }
}
routes {
    route "app" {
        matches { path-prefix "/"; }
        upstream "app"
        policies {
            response-headers { set { "X-Route" "app"; }; }
        }
    }
}
upstreams {
    upstream "app" { target %q; }
}
`, listen, cert, key, backend)
}

// TestHTTP3 talks HTTP/3 (quic-go client) to an h3 listener with a locally
// issued certificate, and checks that HTTP/1.1 and HTTP/2 on the same
// listener keep working and advertise HTTP/3 with Alt-Svc.
func TestHTTP3(t *testing.T) {
	const concurrent = 8
	b := startH3Backend(t, concurrent)
	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1")
	listen := testutil.FreeAddr(t)
	loadKDL(t, h3KDL(listen, cert, key, b.addr))
	base := "https://" + listen
	_, port, _ := net.SplitHostPort(listen)
	h3 := h3Client(t)

	t.Run("GET", func(t *testing.T) {
		res, err := h3.Get(base + "/echo")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Proto != "HTTP/3.0" || string(body) != "GET HTTP/1.1 " {
			t.Fatalf("%d %s %q", res.StatusCode, res.Proto, body)
		}
		if res.Header.Get("X-Route") != "app" || res.Header.Get("X-Backend") != "h3-test" {
			t.Errorf("headers %v", res.Header)
		}
	})

	t.Run("POST with a body", func(t *testing.T) {
		payload := strings.Repeat("0123456789", 100000) // 1 MB
		res, err := h3.Post(base+"/echo", "text/plain", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Proto != "HTTP/3.0" || string(body) != "POST HTTP/1.1 "+payload {
			t.Fatalf("%d %s %d bytes", res.StatusCode, res.Proto, len(body))
		}
	})

	t.Run("streaming response", func(t *testing.T) {
		res, err := h3.Get(base + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		// Each chunk must arrive before the backend is allowed to write
		// the next one.
		buf := make([]byte, len("chunk0;"))
		for i := 0; i < 3; i++ {
			if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != fmt.Sprintf("chunk%d;", i) {
				t.Fatalf("chunk %d: %q %v", i, buf, err)
			}
			b.gate <- struct{}{}
		}
		if rest, _ := io.ReadAll(res.Body); len(rest) != 0 {
			t.Errorf("trailing %q", rest)
		}
		<-b.gate
	})

	t.Run("concurrent streams on one connection", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, concurrent)
		for i := 0; i < concurrent; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := h3.Get(base + "/barrier")
				if err != nil {
					errs <- err
					return
				}
				defer res.Body.Close()
				body, _ := io.ReadAll(res.Body)
				if res.StatusCode != 200 || string(body) != "together" {
					errs <- fmt.Errorf("%d %q", res.StatusCode, body)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Alt-Svc on HTTP/1.1 and HTTP/2", func(t *testing.T) {
		h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test certificates
		}}
		for name, c := range map[string]*http.Client{"HTTP/1.1": h1, "HTTP/2.0": h2Client()} {
			res, err := c.Get(base + "/echo")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.Proto != name || res.StatusCode != 200 || string(body) != "GET HTTP/1.1 " {
				t.Errorf("%s: %d %s %q", name, res.StatusCode, res.Proto, body)
			}
			if alt := res.Header.Get("Alt-Svc"); !strings.Contains(alt, fmt.Sprintf(`h3=":%s"`, port)) {
				t.Errorf("%s: Alt-Svc %q", name, alt)
			}
		}
	})
}

// TestHTTP3Upstream proxies to an HTTP/3 upstream (quic-go server) with
// http-version max-version 3 (experimental in Caddy).
func TestHTTP3Upstream(t *testing.T) {
	cert, key := writeCert(t, t.TempDir(), "localhost", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{pair}}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.Proto, body)
		}),
	}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close(); pc.Close() })

	listen := testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "main" { address %q; protocol "http"; }; }
routes { route "all" { matches { path-prefix "/"; }; upstream "h3"; }; }
upstreams {
    upstream "h3" {
        target %q
        tls { ca-cert %q; }
        http-version { min-version 3; max-version 3; }
    }
}
`, listen, pc.LocalAddr().String(), cert))
	res, err := client().Post("http://"+listen+"/x", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "POST HTTP/3.0 hello" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
}
