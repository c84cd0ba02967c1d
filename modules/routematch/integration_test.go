package routematch

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// adminPort is this package's own Caddy admin port, so that packages can
// run their in-process Caddy tests in parallel.
const adminPort = 2991

func newTester(t *testing.T) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

func TestCaddyJSON(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "backend %s", r.URL.Path)
	}))
	defer backend.Close()

	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:%d", "config": {"persist": false}},
		"apps": {
			"http": {
				"http_port": 19100,
				"https_port": 19101,
				"servers": {
					"routematch": {
						"listen": ["127.0.0.1:19100"],
						"automatic_https": {"disable": true},
						"routes": [
							{
								"match": [{"sentinel": {"path_prefix": ["/api"], "method": ["GET"], "host": ["*.example.com"]}}],
								"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}],
								"terminal": true
							},
							{
								"match": [{"sentinel": {"path": ["/exact"], "header": [{"name": "X-Token", "value": "s3cret"}]}}],
								"handle": [{"handler": "static_response", "body": "exact"}],
								"terminal": true
							},
							{
								"match": [{"sentinel": {"path_regex": ["\\.json$"], "query": [{"name": "debug"}]}}],
								"handle": [{"handler": "static_response", "body": "regex"}],
								"terminal": true
							},
							{
								"handle": [{"handler": "static_response", "status_code": 404, "body": "fallback"}]
							}
						]
					}
				}
			}
		}
	}`, adminPort, backend.Listener.Addr()), "json")

	tester.AssertGetResponse("http://api.example.com:19100/api/users", http.StatusOK, "backend /api/users")
	// the matcher judges the cleaned path: /api/../admin is /admin
	tester.AssertGetResponse("http://api.example.com:19100/api/../admin", http.StatusNotFound, "fallback")
	tester.AssertGetResponse("http://api.example.com:19100/apiary", http.StatusNotFound, "fallback")
	tester.AssertGetResponse("http://example.com:19100/api/users", http.StatusNotFound, "fallback")
	tester.AssertDeleteResponse("http://api.example.com:19100/api/users", http.StatusNotFound, "fallback")

	req := newRequest(t, "http://localhost:19100/exact", map[string]string{"X-Token": "s3cret"})
	tester.AssertResponse(req, http.StatusOK, "exact")
	req = newRequest(t, "http://localhost:19100/exact", map[string]string{"X-Token": "wrong"})
	tester.AssertResponse(req, http.StatusNotFound, "fallback")
	req = newRequest(t, "http://localhost:19100/exact/", map[string]string{"X-Token": "s3cret"})
	tester.AssertResponse(req, http.StatusNotFound, "fallback")

	tester.AssertGetResponse("http://localhost:19100/data/x.json?debug", http.StatusOK, "regex")
	tester.AssertGetResponse("http://localhost:19100/data/x.json", http.StatusNotFound, "fallback")
	tester.AssertGetResponse("http://localhost:19100/data/x.jsonp?debug", http.StatusNotFound, "fallback")
}

func TestCaddyfile(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(fmt.Sprintf(`
	{
		admin localhost:%d
		persist_config off
		auto_https off
		http_port 19102
		https_port 19103
	}
	http://:19102 {
		bind 127.0.0.1
		@api sentinel {
			path_prefix /api
			method GET HEAD
			header X-Client
		}
		@images sentinel {
			path_regex \.(png|jpg)$
			host img.example.com
		}
		handle @api {
			respond "api" 200
		}
		handle @images {
			respond "image" 200
		}
		handle {
			respond "fallback" 404
		}
	}`, adminPort), "caddyfile")

	req := newRequest(t, "http://localhost:19102/api/v1", map[string]string{"X-Client": "1"})
	tester.AssertResponse(req, http.StatusOK, "api")
	tester.AssertGetResponse("http://localhost:19102/api/v1", http.StatusNotFound, "fallback")
	tester.AssertGetResponse("http://img.example.com:19102/a/b.png", http.StatusOK, "image")
	tester.AssertGetResponse("http://IMG.example.com.:19102/a/b.jpg", http.StatusOK, "image")
	tester.AssertGetResponse("http://other.example.com:19102/a/b.png", http.StatusNotFound, "fallback")
}

func newRequest(t *testing.T, url string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}
