package headerrename

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2995

func newTester(t *testing.T) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

// newBackend starts a backend that reports the request's X-Old and X-New
// fields in its body and sets the response field X-Backend-Id. /stream
// sends a first chunk, then waits for release; /upgrade switches to an
// echo protocol.
func newBackend(t *testing.T, release <-chan struct{}) *httptest.Server {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("X-Backend-Id", "streamer")
			_, _ = io.WriteString(w, "first;")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			_, _ = io.WriteString(w, "second")
		case "/upgrade":
			if r.Header.Get("Upgrade") != "echo" {
				http.Error(w, "upgrade expected", http.StatusBadRequest)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("backend hijack: %v", err)
				return
			}
			defer conn.Close()
			_, _ = io.WriteString(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Backend-Id: echoer\r\n\r\n")
			_ = brw.Flush()
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = io.WriteString(conn, "echo: "+line)
		default:
			w.Header().Set("X-Backend-Id", "b1")
			w.Header().Set("X-Keep", "k")
			_, _ = fmt.Fprintf(w, "old=%q new=%q", r.Header.Values("X-Old"), r.Header.Values("X-New"))
		}
	}))
	t.Cleanup(backend.Close)
	return backend
}

func TestCaddyJSONWithReverseProxy(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	backend := newBackend(t, release)

	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {
			"http": {
				"http_port": 19140,
				"https_port": 19141,
				"servers": {
					"headerrename": {
						"listen": ["127.0.0.1:19140"],
						"automatic_https": {"disable": true},
						"routes": [{
							"handle": [
								{
									"handler": "header_rename",
									"request": {"X-Old": "X-New"},
									"response": {"X-Backend-Id": "X-Served-By"}
								},
								{"handler": "reverse_proxy", "flush_interval": -1, "upstreams": [{"dial": "%s"}]}
							]
						}]
					}
				}
			}
		}
	}`, adminPort, backend.Listener.Addr()), "json")

	req, err := http.NewRequest(http.MethodGet, "http://localhost:19140/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("X-Old", "1")
	req.Header.Add("X-Old", "2")
	req.Header.Set("X-New", "client-set")
	resp, _ := tester.AssertResponse(req, http.StatusOK, `old=[] new=["1" "2"]`)
	if got := resp.Header.Get("X-Served-By"); got != "b1" {
		t.Errorf("X-Served-By = %q, want b1", got)
	}
	if _, ok := resp.Header["X-Backend-Id"]; ok {
		t.Error("X-Backend-Id was not renamed")
	}
	if got := resp.Header.Get("X-Keep"); got != "k" {
		t.Errorf("X-Keep = %q", got)
	}

	// no X-Old: the client's X-New passes unchanged
	req, _ = http.NewRequest(http.MethodGet, "http://localhost:19140/", nil)
	req.Header.Set("X-New", "client-set")
	tester.AssertResponse(req, http.StatusOK, `old=[] new=["client-set"]`)

	t.Run("streaming", func(t *testing.T) {
		resp, err := tester.Client.Get("http://localhost:19140/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := resp.Header.Get("X-Served-By"); got != "streamer" {
			t.Errorf("X-Served-By = %q", got)
		}
		first := make([]byte, len("first;"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
			t.Fatalf("first chunk %q, %v: the response was not flushed", first, err)
		}
		release <- struct{}{}
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "second" {
			t.Errorf("rest %q, %v", rest, err)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:19140", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(conn, "GET /upgrade HTTP/1.1\r\nHost: localhost:19140\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		if got := resp.Header.Get("X-Served-By"); got != "echoer" {
			t.Errorf("X-Served-By = %q on the 101 response", got)
		}
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "echo: ping\n" {
			t.Errorf("echo %q, %v", line, err)
		}
	})
}

func TestCaddyfile(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`
	{
		admin localhost:%d
		persist_config off
		auto_https off
		http_port 19142
		https_port 19143
	}
	http://:19142 {
		bind 127.0.0.1
		header_rename {
			request X-Client X-Forwarded-Client
			response X-Internal X-Public
		}
		header X-Internal secret
		respond "client={header.X-Forwarded-Client} old={header.X-Client}" 200
	}`, adminPort), "caddyfile")

	req, err := http.NewRequest(http.MethodGet, "http://localhost:19142/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Client", "c1")
	resp, _ := tester.AssertResponse(req, http.StatusOK, "client=c1 old=")
	if got := resp.Header.Get("X-Public"); got != "secret" {
		t.Errorf("X-Public = %q", got)
	}
	if got := strings.Join(resp.Header.Values("X-Internal"), ","); got != "" {
		t.Errorf("X-Internal = %q, want it renamed", got)
	}
}
