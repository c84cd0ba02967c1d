package framing

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// goServer serves Go's HTTP/1.1 server on a wrapped loopback listener
// and records the requests its handler sees.
type goServer struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startGoServer(t *testing.T, wrapLn func(net.Listener) net.Listener) *goServer {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	fr := &Framing{}
	if err := fr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := &goServer{addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			entry := r.Method + " " + r.URL.Path + " " + string(body)
			// As Caddy does: the TLS state is asked of the connection
			// when the request is served (Go's own r.TLS is taken before
			// the handshake when the connection is not a *tls.Conn).
			if cs, ok := r.Context().Value(connKey{}).(connectionStater); ok {
				entry += fmt.Sprintf("[tls %d verified chains]", len(cs.ConnectionState().VerifiedChains))
			}
			gs.mu.Lock()
			gs.seen = append(gs.seen, entry)
			gs.mu.Unlock()
			io.WriteString(w, "ok "+r.URL.Path)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	if wrapLn != nil {
		ln = wrapLn(ln)
	}
	go srv.Serve(fr.WrapListener(ln))
	t.Cleanup(func() { srv.Close() })
	return gs
}

// connKey is the context key of the request's connection.
type connKey struct{}

func (gs *goServer) requests() []string {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]string(nil), gs.seen...)
}

// exchange writes raw to a new connection and reads until the server
// closes it.
func exchange(t *testing.T, dial func() (net.Conn, error), raw string) string {
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
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading: %v (got %q; the server did not close)", err, b)
	}
	return string(b)
}

// statuses returns the status lines of the responses in raw.
func statuses(t *testing.T, raw string) []string {
	t.Helper()
	var out []string
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		io.Copy(io.Discard, res.Body)
		s := res.Status
		if res.Close {
			s += " close"
		}
		out = append(out, s)
	}
}

func TestGoServerAnswers400AndCloses(t *testing.T) {
	gs := startGoServer(t, nil)
	dial := func() (net.Conn, error) { return net.Dial("tcp", gs.addr) }

	raw := exchange(t, dial, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"+
		"POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
		"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
	if got := statuses(t, raw); strings.Join(got, ",") != "200 OK,400 Bad Request close" {
		t.Fatalf("statuses %q; want 200 then 400 with close", got)
	}
	if got := gs.requests(); len(got) != 1 || got[0] != "GET /first " {
		t.Fatalf("handler saw %q, want only GET /first", got)
	}

	raw = exchange(t, dial, "POST /fold HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n")
	if got := statuses(t, raw); strings.Join(got, ",") != "400 Bad Request close" {
		t.Fatalf("statuses %q; want 400 with close", got)
	}
	if got := gs.requests(); len(got) != 1 {
		t.Fatalf("handler saw %q", got)
	}

	// A good pipelined sequence is served in order on one connection.
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"+
		"GET /d HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"ok /a", "ok /b", "ok /c", "ok /d"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(b) != want {
			t.Fatalf("got %d %q, want %q", res.StatusCode, b, want)
		}
	}
	if got := gs.requests()[1:]; strings.Join(got, "|") != "GET /a |POST /b hello|POST /c abc|GET /d " {
		t.Fatalf("handler saw %q", got)
	}
}

// TestGoServerOverTLS: behind a TLS listener the wrapper reports the TLS
// state, and refuses the same way.
func TestGoServerOverTLS(t *testing.T) {
	cert := testCert(t)
	clientCert := testCert(t)
	cas := x509.NewCertPool()
	cas.AddCert(clientCert.Leaf)
	gs := startGoServer(t, func(ln net.Listener) net.Listener {
		return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: cas})
	})
	dial := func() (net.Conn, error) {
		return tls.Dial("tcp", gs.addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{clientCert}}) //nolint:gosec // test certificate
	}
	raw := exchange(t, dial, "GET /tls HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if got := statuses(t, raw); strings.Join(got, ",") != "200 OK close" {
		t.Fatalf("statuses %q", got)
	}
	// The handler sees the TLS state with the client's verified chain.
	if got := gs.requests(); len(got) != 1 || got[0] != "GET /tls [tls 1 verified chains]" {
		t.Fatalf("handler saw %q", got)
	}
	raw = exchange(t, dial, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if got := statuses(t, raw); strings.Join(got, ",") != "400 Bad Request close" {
		t.Fatalf("statuses %q", got)
	}
}

func TestAcceptKeepsTLSState(t *testing.T) {
	fr := &Framing{}
	cert := testCert(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, tc := range []struct {
		name  string
		ln    net.Listener
		dial  func() (net.Conn, error)
		isTLS bool
	}{
		{"cleartext", raw, func() (net.Conn, error) { return net.Dial("tcp", raw.Addr().String()) }, false},
		{"tls", tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}), func() (net.Conn, error) {
			return tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // test certificate
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := fr.WrapListener(tc.ln)
			go func() {
				cc, err := tc.dial()
				if err != nil {
					t.Error(err)
					return
				}
				defer cc.Close()
				io.WriteString(cc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
				io.Copy(io.Discard, cc)
			}()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			stater, ok := sc.(connectionStater)
			if ok != tc.isTLS {
				t.Fatalf("%T implements ConnectionState: %v, want %v", sc, ok, tc.isTLS)
			}
			b := make([]byte, 64)
			n, err := io.ReadAtLeast(sc, b, 24)
			if err != nil || string(b[:n]) != "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
				t.Fatalf("read %q, %v", b[:n], err)
			}
			if ok {
				if p := stater.ConnectionState().NegotiatedProtocol; p != "h2" {
					t.Fatalf("ALPN %q", p)
				}
				if sc.(tlsConn).mode != modePass {
					t.Fatal("h2 connection still checked")
				}
			}
		})
	}
}

// testCert is a self-signed certificate for localhost.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := testutil.CertPEM("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"sentinel_framing", 0, false},
		{"sentinel_framing 2048", 2048, false},
		{"sentinel_framing x", 0, true},
		{"sentinel_framing 1 2", 1, true},
	} {
		var fr Framing
		err := fr.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if (err != nil) != tc.wantErr || fr.MaxHeaderBytes != tc.want {
			t.Errorf("%q: %+v, %v", tc.in, fr.MaxHeaderBytes, err)
		}
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := (&Framing{MaxHeaderBytes: -1}).Provision(ctx); err == nil {
		t.Fatal("negative max_header_bytes accepted")
	}
}
