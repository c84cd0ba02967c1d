package l4

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// tlsBackend is a real TLS server for names answering name+"\n" to every
// connection; it returns its address and a pool trusting its certificate.
func tlsBackend(t *testing.T, answer string, names ...string) (string, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := testutil.CertPEM(names...)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
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
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "%s %s", answer, line)
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return ln.Addr().String(), pool
}

// tcpBackend answers answer+"\n" then echoes what it reads.
func tcpBackend(t *testing.T, answer string) string {
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
				fmt.Fprintf(c, "%s\n", answer)
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// run loads cfg (the sentinel_l4 app's JSON) into a real Caddy.
func run(t *testing.T, app any) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"admin": map[string]any{"disabled": true}, "apps": map[string]any{"sentinel_l4": app}})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

func TestTLSPassthroughBySNI(t *testing.T) {
	addrA, poolA := tlsBackend(t, "A", "a.example.com")
	addrB, poolB := tlsBackend(t, "B", "*.wild.example.com")
	listen := testutil.FreeAddr(t)
	run(t, map[string]any{"servers": map[string]any{"tls": map[string]any{
		"listen":          []string{listen},
		"tls_passthrough": true,
		"routes": []any{
			map[string]any{"server_names": []string{"a.example.com"}, "upstreams": []any{map[string]any{"dial": addrA}}},
			map[string]any{"server_names": []string{"*.wild.example.com"}, "upstreams": []any{map[string]any{"dial": addrB}}},
			map[string]any{"server_names": []string{"nobackend.example.com"}},
		},
	}}})
	ask := func(name string, pool *x509.CertPool) (string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", listen, &tls.Config{ServerName: name, RootCAs: pool})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "hello %s\n", name)
		b, err := io.ReadAll(c)
		return string(b), err
	}
	// The backends' own certificates verify: the TLS session is end to end.
	for _, tc := range []struct {
		name string
		pool *x509.CertPool
		want string
	}{
		{"a.example.com", poolA, "A hello a.example.com\n"},
		{"A.Example.COM", poolA, "A hello A.Example.COM\n"},
		{"x.wild.example.com", poolB, "B hello x.wild.example.com\n"},
		{"y.x.wild.example.com", poolB, ""}, // the certificate is for one label; the route still matches
	} {
		got, err := ask(tc.name, tc.pool)
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s: got %q, %v; want a certificate error from backend B", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// No route, a route without upstreams, the wildcard's bare suffix:
	// the connection is closed.
	for _, name := range []string{"other.example.com", "nobackend.example.com", "wild.example.com"} {
		if got, err := ask(name, poolA); err == nil {
			t.Errorf("%s: got %q, want the connection closed", name, got)
		}
	}
	// Not TLS: closed without reaching a backend.
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("plain HTTP got %q, want nothing", b)
	}
	c.Close()
}

func TestHandshakeTimeout(t *testing.T) {
	addrA, _ := tlsBackend(t, "A", "a.example.com")
	listen := testutil.FreeAddr(t)
	run(t, map[string]any{"servers": map[string]any{"tls": map[string]any{
		"listen": []string{listen}, "tls_passthrough": true, "handshake_timeout": "200ms",
		"routes": []any{map[string]any{"upstreams": []any{map[string]any{"dial": addrA}}}},
	}}})
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: %v, want EOF", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v, want about 200ms", d)
	}
}

func TestTCPWeightedSplice(t *testing.T) {
	a, b := tcpBackend(t, "a"), tcpBackend(t, "b")
	listen := testutil.FreeAddr(t)
	run(t, map[string]any{"servers": map[string]any{"tcp": map[string]any{
		"listen": []string{listen},
		"routes": []any{map[string]any{"upstreams": []any{
			map[string]any{"dial": a, "weight": 3},
			map[string]any{"dial": b, "weight": 1},
			map[string]any{"dial": "127.0.0.1:1", "weight": 0},
			map[string]any{"reject": true, "weight": 4},
		}}},
	}}})
	counts := map[string]int{}
	for i := 0; i < 16; i++ {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		who, err := r.ReadString('\n')
		if err == io.EOF {
			counts["rejected"]++
			c.Close()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "ping %d\n", i)
		echo, err := r.ReadString('\n')
		if err != nil || echo != fmt.Sprintf("ping %d\n", i) {
			t.Fatalf("echo %q, %v", echo, err)
		}
		// Half-close: the backend sees EOF and closes; we read EOF.
		_ = c.(*net.TCPConn).CloseWrite()
		if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
			t.Fatalf("after half-close: %q, %v", rest, err)
		}
		c.Close()
		counts[strings.TrimSpace(who)]++
	}
	if counts["a"] != 6 || counts["b"] != 2 || counts["rejected"] != 8 {
		t.Fatalf("split %v, want a:6 b:2 rejected:8", counts)
	}
}

func TestProvisionErrors(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{`{"servers":{"s":{}}}`, `server "s": no listen address`},
		{`{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"server_names":["*foo"]}]}}}`, `routes[0]: server name "*foo"`},
		{`{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"upstreams":[{"dial":"nohostport"}]}]}}}`, `routes[0].upstreams[0]: dial "nohostport"`},
		{`{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"upstreams":[{"dial":"a:1","weight":-1}]}]}}}`, `negative weight -1`},
		{`{"servers":{"s":{"listen":["udp/127.0.0.1:0"]}}}`, `only TCP is supported`},
	} {
		cfg := `{"admin":{"disabled":true},"apps":{"sentinel_l4":` + tc.cfg + `}}`
		err := caddy.Load([]byte(cfg), true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.cfg, err, tc.want)
		}
		_ = caddy.Stop()
	}
}

func TestNameMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "A.EXAMPLE.COM", true},
		{"a.example.com", "b.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "aexample.com", false},
		{"a.example.com", "", false},
	} {
		if got := nameMatches(tc.pattern, tc.name); got != tc.want {
			t.Errorf("nameMatches(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}
