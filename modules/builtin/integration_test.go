package builtin

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2992

func newTester(t *testing.T) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

func assertJSONHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
}

func TestCaddyJSON(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {
			"http": {
				"http_port": 19110,
				"https_port": 19111,
				"servers": {
					"builtin": {
						"listen": ["127.0.0.1:19110"],
						"automatic_https": {"disable": true},
						"routes": [
							{
								"match": [{"path": ["/health"]}],
								"handle": [
									{"handler": "sentinel_builtin", "kind": "health", "route": "health"},
									{"handler": "static_response", "body": "next handler reached"}
								]
							},
							{
								"match": [{"path": ["/status"]}],
								"handle": [{"handler": "sentinel_builtin", "kind": "status", "route": "status"}],
								"terminal": true
							},
							{
								"handle": [{"handler": "sentinel_builtin", "kind": "not_found"}]
							}
						]
					}
				}
			}
		}
	}`, adminPort), "json")

	resp, _ := tester.AssertGetResponse("http://localhost:19110/health", http.StatusOK, `{"status":"healthy"}`)
	assertJSONHeaders(t, resp)

	req, err := http.NewRequest(http.MethodHead, "http://localhost:19110/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = tester.AssertResponse(req, http.StatusOK, "")
	assertJSONHeaders(t, resp)

	resp, err = tester.Client.Get("http://localhost:19110/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status: got %d, want 200", resp.StatusCode)
	}
	wantStatus := regexp.MustCompile(`^\{"status":"ok","service":"sentinel","version":"` +
		regexp.QuoteMeta(version()) + `","caddy_version":"[^"]+","uptime_seconds":[0-9]+\}$`)
	if !wantStatus.Match(body) {
		t.Errorf("status body %q does not match %s", body, wantStatus)
	}
	assertJSONHeaders(t, resp)

	resp, _ = tester.AssertGetResponse("http://localhost:19110/nope", http.StatusNotFound, `{"error":"not found","status":404}`)
	assertJSONHeaders(t, resp)
}

func TestCaddyfile(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`
	{
		admin localhost:%d
		persist_config off
		auto_https off
		http_port 19112
		https_port 19113
	}
	http://:19112 {
		bind 127.0.0.1
		handle /static {
			respond "static" 200
		}
		handle {
			sentinel_builtin /healthz health
			sentinel_builtin {
				kind not_found
				route fallback
			}
		}
	}`, adminPort), "caddyfile")

	tester.AssertGetResponse("http://localhost:19112/healthz", http.StatusOK, `{"status":"healthy"}`)
	tester.AssertGetResponse("http://localhost:19112/static", http.StatusOK, "static")
	tester.AssertGetResponse("http://localhost:19112/elsewhere", http.StatusNotFound, `{"error":"not found","status":404}`)
}
