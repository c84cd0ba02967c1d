package integration

import (
	"bufio"
	"context"
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

	"golang.org/x/net/http2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// rawBackend is a real HTTP backend that counts the bytes it receives
// and records the requests it serves (method, path, body). /ws switches
// to an echo tunnel on a WebSocket upgrade.
type rawBackend struct {
	addr  string
	bytes atomic.Int64
	mu    sync.Mutex
	seen  []string
	hdr   []http.Header
}

// countingConn counts what a backend connection reads.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n}, nil
}

func startRawBackend(t *testing.T) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" && r.Header.Get("Upgrade") == "websocket" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			io.Copy(conn, brw) // echo
			return
		}
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen = append(b.seen, r.Method+" "+r.URL.Path+" "+string(body))
		b.hdr = append(b.hdr, r.Header.Clone())
		b.mu.Unlock()
		fmt.Fprintf(w, "be %s", r.URL.Path)
	})}
	go srv.Serve(countingListener{ln, &b.bytes})
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *rawBackend) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

func (b *rawBackend) lastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.hdr) == 0 {
		return nil
	}
	return b.hdr[len(b.hdr)-1]
}

func (b *rawBackend) reset() {
	b.mu.Lock()
	b.seen, b.hdr = nil, nil
	b.mu.Unlock()
	b.bytes.Store(0)
}

// rawExchange sends raw on a new connection and reads until the proxy
// closes it (failing if it does not within 5 s).
func rawExchange(t *testing.T, dial func() (net.Conn, error), raw string) []string {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the proxy kept the connection open (%v); read %q", err, got)
	}
	return responses(string(got))
}

// responses lists "status body" of each response in raw, with " close"
// when it announces Connection: close.
func responses(raw string) []string {
	var out []string
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(res.Body)
		s := fmt.Sprintf("%d %s", res.StatusCode, body)
		if res.Close {
			s += " close"
		}
		out = append(out, s)
	}
}

const (
	smuggleCLTE = "POST /smuggle HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	smuggleFold = "POST /fold HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
	goodPipe    = "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
)

// TestMalformedFraming is issue 13.5: a request with an obs-folded
// Transfer-Encoding, or with both Content-Length and Transfer-Encoding, is
// answered 400 and its connection closed, and nothing of it (or after
// it) reaches the backend; well-framed pipelined requests, TLS (with the
// client certificate visible), HTTP/2, h2c and WebSocket still work
// through the sentinel_framing listener wrapper.
func TestMalformedFraming(t *testing.T) {
	be := startRawBackend(t)
	plain, secure, h2c := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "localhost", "127.0.0.1")
	clientCert, clientKey := writeCert(t, dir, "client.test")
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "plain" { address "%s"; }
    listener "secure" {
        address "%s"
        protocol "https"
        tls { cert-file %q; key-file %q; ca-file %q; }
    }
    listener "h2c" { address "%s"; protocol "h2"; }
}
routes {
    route "all" {
        upstream "be"
        policies {
            request-headers { set { "X-Client-Subject" "{http.request.tls.client.subject}"; } }
        }
    }
}
upstreams {
    upstream "be" { target "%s"; }
}
`, plain, secure, cert, key, clientCert, h2c, be.addr))

	dialPlain := func() (net.Conn, error) { return net.Dial("tcp", plain) }
	dialTLS := func() (net.Conn, error) {
		return tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", NextProtos: []string{"http/1.1"}}) //nolint:gosec // test certificate
	}
	for _, tr := range []struct {
		name string
		dial func() (net.Conn, error)
	}{{"cleartext", dialPlain}, {"tls", dialTLS}} {
		t.Run(tr.name+"/obs-fold", func(t *testing.T) {
			be.reset()
			if got := rawExchange(t, tr.dial, smuggleFold); strings.Join(got, "|") != "400 400 Bad Request close" {
				t.Fatalf("responses %q, want 400 and close", got)
			}
			if n := be.bytes.Load(); n != 0 {
				t.Fatalf("the backend received %d bytes", n)
			}
		})
		t.Run(tr.name+"/content-length and transfer-encoding", func(t *testing.T) {
			be.reset()
			got := rawExchange(t, tr.dial, smuggleCLTE+"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
			if strings.Join(got, "|") != "400 400 Bad Request close" {
				t.Fatalf("responses %q, want 400 and close", got)
			}
			if n := be.bytes.Load(); n != 0 {
				t.Fatalf("the backend received %d bytes", n)
			}
			got = rawExchange(t, tr.dial, "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n"+smuggleCLTE+"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
			if strings.Join(got, "|") != "200 be /first|400 400 Bad Request close" {
				t.Fatalf("responses %q, want 200 then 400 and close", got)
			}
			if got := be.requests(); strings.Join(got, "|") != "GET /first " {
				t.Fatalf("the backend served %q", got)
			}
		})
		t.Run(tr.name+"/pipelined", func(t *testing.T) {
			be.reset()
			got := rawExchange(t, tr.dial, goodPipe)
			if strings.Join(got, "|") != "200 be /a|200 be /b|200 be /c|200 be /d close" {
				t.Fatalf("responses %q", got)
			}
			if got := be.requests(); strings.Join(got, "|") != "GET /a |POST /b hello|POST /c abcde|GET /d " {
				t.Fatalf("the backend served %q", got)
			}
			wantProto := map[string]string{"cleartext": "http", "tls": "https"}[tr.name]
			if got := be.lastHeader().Get("X-Forwarded-Proto"); got != wantProto {
				t.Fatalf("X-Forwarded-Proto %q, want %q (r.TLS)", got, wantProto)
			}
		})
	}

	t.Run("tls/client certificate", func(t *testing.T) {
		// The client's certificate reaches the handlers (r.TLS is the
		// TLS state the wrapper reports).
		be.reset()
		pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
		if err != nil {
			t.Fatal(err)
		}
		dial := func() (net.Conn, error) {
			return tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}) //nolint:gosec // test certificate
		}
		if got := rawExchange(t, dial, "GET /mtls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); strings.Join(got, "|") != "200 be /mtls close" {
			t.Fatalf("responses %q", got)
		}
		if got := be.lastHeader().Get("X-Client-Subject"); got != "CN=client.test" {
			t.Fatalf("X-Client-Subject %q, want CN=client.test", got)
		}
	})

	t.Run("tls/http2", func(t *testing.T) {
		// With a client CA, Caddy requires the Host to be the SNI name.
		c := h2Client()
		c.Transport.(*http2.Transport).TLSClientConfig.ServerName = "localhost"
		req, _ := http.NewRequest("GET", "https://"+secure+"/h2", nil)
		req.Host = "localhost"
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.ProtoMajor != 2 || res.StatusCode != 200 || string(body) != "be /h2" {
			t.Fatalf("%s %d %q", res.Proto, res.StatusCode, body)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		}}
		res, err := c.Get("http://" + h2c + "/h2c")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.ProtoMajor != 2 || res.StatusCode != 200 || string(body) != "be /h2c" {
			t.Fatalf("%s %d %q", res.Proto, res.StatusCode, body)
		}
		// HTTP/1.1 on the same listener is still checked.
		if got := rawExchange(t, func() (net.Conn, error) { return net.Dial("tcp", h2c) }, smuggleCLTE); strings.Join(got, "|") != "400 400 Bad Request close" {
			t.Fatalf("responses %q", got)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		c, err := net.Dial("tcp", plain)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", res, err)
		}
		// Tunnel data that would be refused as HTTP passes unchanged.
		const data = "GET / HTTP/1.1\r\nX: a\r\n folded\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
		io.WriteString(c, data)
		got := make([]byte, len(data))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != data {
			t.Fatalf("echo %q, %v", got, err)
		}
	})

	t.Run("declined upgrade stays checked", func(t *testing.T) {
		be.reset()
		got := rawExchange(t, dialPlain, "GET /nows HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"+smuggleCLTE)
		if strings.Join(got, "|") != "200 be /nows|400 400 Bad Request close" {
			t.Fatalf("responses %q", got)
		}
		if got := be.requests(); strings.Join(got, "|") != "GET /nows " {
			t.Fatalf("the backend served %q", got)
		}
	})
}
