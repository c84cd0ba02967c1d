package cors

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2993

func newTester(t *testing.T) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

func request(t *testing.T, method, url string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

func assertHeader(t *testing.T, resp *http.Response, field, want string) {
	t.Helper()
	if got := strings.Join(resp.Header.Values(field), "|"); got != want {
		t.Errorf("%s = %q, want %q", field, got, want)
	}
}

func TestCaddyJSON(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/self-cors":
			w.Header().Set("Access-Control-Allow-Origin", "*")
		case "/stream":
			_, _ = io.WriteString(w, "first;")
			http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		w.Header().Set("X-Total", "42")
		_, _ = io.WriteString(w, "backend")
	}))
	defer backend.Close()
	defer close(release)

	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {
			"http": {
				"http_port": 19120,
				"https_port": 19121,
				"servers": {
					"cors": {
						"listen": ["127.0.0.1:19120"],
						"automatic_https": {"disable": true},
						"routes": [{
							"handle": [
								{
									"handler": "sentinel_cors",
									"allowed_origins": ["https://app.example.com", "https://*.example.org"],
									"allow_credentials": true,
									"exposed_headers": ["X-Total"],
									"max_age": "1h"
								},
								{"handler": "reverse_proxy", "flush_interval": -1, "upstreams": [{"dial": "%s"}]}
							]
						}]
					}
				}
			}
		}
	}`, adminPort, backend.Listener.Addr()), "json")

	const base = "http://localhost:19120"

	// no Origin: untouched
	resp, _ := tester.AssertResponse(request(t, "GET", base+"/self-cors", nil), http.StatusOK, "backend")
	assertHeader(t, resp, "Access-Control-Allow-Origin", "*")
	assertHeader(t, resp, "Vary", "")

	// actual request from an allowed origin: the upstream's header is replaced
	resp, _ = tester.AssertResponse(request(t, "GET", base+"/self-cors",
		map[string]string{"Origin": "https://app.example.com"}), http.StatusOK, "backend")
	assertHeader(t, resp, "Access-Control-Allow-Origin", "https://app.example.com")
	assertHeader(t, resp, "Access-Control-Allow-Credentials", "true")
	assertHeader(t, resp, "Access-Control-Expose-Headers", "X-Total")
	assertHeader(t, resp, "Vary", "Origin")

	// actual request from a disallowed origin: passed on, no CORS headers
	resp, _ = tester.AssertResponse(request(t, "GET", base+"/data",
		map[string]string{"Origin": "https://evil.example.net"}), http.StatusOK, "backend")
	assertHeader(t, resp, "Access-Control-Allow-Origin", "")
	assertHeader(t, resp, "Access-Control-Allow-Credentials", "")

	// preflights are answered without reaching the upstream
	before := hits.Load()
	resp, _ = tester.AssertResponse(request(t, "OPTIONS", base+"/data", map[string]string{
		"Origin":                         "https://a.example.org",
		"Access-Control-Request-Method":  "PUT",
		"Access-Control-Request-Headers": "content-type",
	}), http.StatusNoContent, "")
	assertHeader(t, resp, "Access-Control-Allow-Origin", "https://a.example.org")
	assertHeader(t, resp, "Access-Control-Allow-Credentials", "true")
	assertHeader(t, resp, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	assertHeader(t, resp, "Access-Control-Allow-Headers", "content-type")
	assertHeader(t, resp, "Access-Control-Max-Age", "3600")
	assertHeader(t, resp, "Vary", preflightVary)

	tester.AssertResponse(request(t, "OPTIONS", base+"/data", map[string]string{
		"Origin":                        "https://example.org",
		"Access-Control-Request-Method": "PUT",
	}), http.StatusForbidden, "")
	if got := hits.Load(); got != before {
		t.Errorf("preflights reached the upstream %d times", got-before)
	}

	// streaming responses are flushed through the handler
	resp = tester.AssertResponseCode(request(t, "GET", base+"/stream",
		map[string]string{"Origin": "https://app.example.com"}), http.StatusOK)
	defer resp.Body.Close()
	assertHeader(t, resp, "Access-Control-Allow-Origin", "https://app.example.com")
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("first streamed chunk: %q, %v", first, err)
	}
	release <- struct{}{}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "backend" {
		t.Errorf("rest of stream: %q, %v", rest, err)
	}
}

func TestCaddyfile(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`
	{
		admin localhost:%d
		persist_config off
		auto_https off
		http_port 19122
		https_port 19123
	}
	http://:19122 {
		bind 127.0.0.1
		sentinel_cors {
			allowed_origins *
			allowed_methods GET
			max_age 10m
		}
		respond "hello" 200
	}`, adminPort), "caddyfile")

	resp, _ := tester.AssertResponse(request(t, "GET", "http://localhost:19122/",
		map[string]string{"Origin": "https://anywhere.example"}), http.StatusOK, "hello")
	assertHeader(t, resp, "Access-Control-Allow-Origin", "*")

	resp, _ = tester.AssertResponse(request(t, "OPTIONS", "http://localhost:19122/", map[string]string{
		"Origin":                        "https://anywhere.example",
		"Access-Control-Request-Method": "GET",
	}), http.StatusNoContent, "")
	assertHeader(t, resp, "Access-Control-Allow-Methods", "GET")
	assertHeader(t, resp, "Access-Control-Max-Age", "600")

	tester.AssertResponse(request(t, "OPTIONS", "http://localhost:19122/", map[string]string{
		"Origin":                        "https://anywhere.example",
		"Access-Control-Request-Method": "DELETE",
	}), http.StatusForbidden, "")
}
