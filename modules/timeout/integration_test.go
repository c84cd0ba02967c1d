package timeout

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2994

func newTester(t *testing.T) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

// newBackend starts a backend whose /slow endpoint answers after 3s (or
// when the proxy gives up) and whose other endpoints answer at once.
func newBackend(t *testing.T) *httptest.Server {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(3 * time.Second):
			}
		}
		_, _ = io.WriteString(w, "backend "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	return backend
}

func assertQuick(t *testing.T, start time.Time) {
	t.Helper()
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("took %s; the 200ms timeout did not cut the request short", elapsed)
	}
}

func TestCaddyJSONInFrontOfReverseProxy(t *testing.T) {
	backend := newBackend(t)
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {
			"http": {
				"http_port": 19130,
				"https_port": 19131,
				"servers": {
					"timeout": {
						"listen": ["127.0.0.1:19130"],
						"automatic_https": {"disable": true},
						"routes": [{
							"handle": [
								{"handler": "sentinel_timeout", "timeout": "200ms"},
								{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
							]
						}]
					}
				}
			}
		}
	}`, adminPort, backend.Listener.Addr()), "json")

	start := time.Now()
	tester.AssertGetResponse("http://localhost:19130/slow", http.StatusGatewayTimeout, "")
	assertQuick(t, start)

	tester.AssertGetResponse("http://localhost:19130/fast", http.StatusOK, "backend /fast")
}

func TestCaddyfile(t *testing.T) {
	backend := newBackend(t)
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`
	{
		admin localhost:%d
		persist_config off
		auto_https off
		http_port 19132
		https_port 19133
	}
	http://:19132 {
		bind 127.0.0.1
		sentinel_timeout 200ms
		reverse_proxy %s
	}`, adminPort, backend.Listener.Addr()), "caddyfile")

	start := time.Now()
	tester.AssertGetResponse("http://localhost:19132/slow", http.StatusGatewayTimeout, "")
	assertQuick(t, start)
	tester.AssertGetResponse("http://localhost:19132/fast", http.StatusOK, "backend /fast")
}
