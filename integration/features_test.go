package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestRoutingAndFilters runs a KDL config using the route conditions,
// priorities, header policies, filters and retries through the real proxy.
func TestRoutingAndFilters(t *testing.T) {
	api, web, flaky := startBackend(t, "api"), startBackend(t, "web"), startBackend(t, "flaky")
	// A backend that answers slowly, for the timeout policy.
	slowAddr := testutil.FreeAddr(t)
	slow := &http.Server{Addr: slowAddr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(200)
	})}
	go slow.ListenAndServe()
	t.Cleanup(func() { slow.Close() })
	// A backend that always fails with 503, tried before "flaky" by round robin.
	failing := &http.Server{Addr: testutil.FreeAddr(t), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "failing")
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go failing.ListenAndServe()
	t.Cleanup(func() { failing.Close() })

	listen := testutil.FreeAddr(t)
	kdl := fmt.Sprintf(`
system { }
listeners {
    listener "main" {
        address "%[1]s"
        default-route "fallback"
    }
}
routes {
    route "api" {
        priority "high"
        matches {
            path-prefix "/api"
            method "GET" "POST" "OPTIONS"
        }
        upstream "api"
        filters "cors" "strip"
        policies {
            request-headers {
                set { "X-Route" "api"; }
                remove "X-Secret"
                rename { "X-Old" "X-New"; }
            }
            response-headers {
                set { "X-Served-By" "sentinel"; }
                rename { "X-Backend" "X-Origin"; }
            }
        }
    }
    route "admin-host" {
        priority "high"
        matches {
            host "*.admin.test"
            header "X-Admin" "yes"
            query-param "debug"
        }
        upstream "web"
    }
    route "moved" {
        matches { path-prefix "/old"; }
        filters "to-new"
    }
    route "slow" {
        matches { path "/slow"; }
        upstream "slow"
        policies { timeout-secs 1; }
    }
    route "retry" {
        matches { path-prefix "/retry"; }
        upstream "flaky"
        retry-policy {
            max-attempts 2
            retryable-status-codes 503
        }
    }
    route "fallback" {
        priority "low"
        builtin-handler "not-found"
    }
}
filters {
    filter "cors" {
        type "cors"
        allowed-origins "https://app.test"
        exposed-headers "X-Served-By"
    }
    filter "strip" {
        type "url-rewrite"
        replace-prefix-match "/v2"
        hostname "api.internal"
    }
    filter "to-new" {
        type "redirect"
        status-code 308
        replace-prefix-match "/new"
    }
}
upstreams {
    upstream "api" { target "%[2]s"; }
    upstream "web" { target "%[3]s"; }
    upstream "slow" { target "%[4]s"; }
    upstream "flaky" {
        target "%[5]s"
        target "%[6]s"
    }
}
`, listen, api.addr, web.addr, slowAddr, failing.Addr, flaky.addr)
	loadKDL(t, kdl)
	c := client()
	base := "http://" + listen

	t.Run("segment-aware prefix, rewrite, headers", func(t *testing.T) {
		status, body, hdr := get(t, c, "GET", base+"/api/users?id=7", map[string]string{"X-Secret": "s", "X-Old": "o", "Origin": "https://app.test"})
		if status != 200 || body != "api /v2/users?id=7" {
			t.Fatalf("api: %d %q", status, body)
		}
		got := api.lastHeader()
		if got.Get("X-Route") != "api" || got.Get("X-Secret") != "" || got.Get("X-New") != "o" || got.Get("X-Old") != "" {
			t.Errorf("request headers at the backend: %v", got)
		}
		if hdr.Get("X-Served-By") != "sentinel" || hdr.Get("X-Origin") != "api" || hdr.Get("X-Backend") != "" {
			t.Errorf("response headers: %v", hdr)
		}
		if hdr.Get("Access-Control-Allow-Origin") != "https://app.test" || hdr.Get("Access-Control-Expose-Headers") != "X-Served-By" {
			t.Errorf("cors headers: %v", hdr)
		}
		// /apix is not under /api: default route (404 JSON).
		status, body, _ = get(t, c, "GET", base+"/apix", nil)
		if status != 404 || jsonBody(t, body)["error"] == nil {
			t.Errorf("/apix: %d %q", status, body)
		}
		// DELETE is not one of the route's methods.
		status, _, _ = get(t, c, "DELETE", base+"/api/users", nil)
		if status != 404 {
			t.Errorf("DELETE /api: %d", status)
		}
	})
	t.Run("cors preflight", func(t *testing.T) {
		status, _, hdr := get(t, c, "OPTIONS", base+"/api/users", map[string]string{"Origin": "https://app.test", "Access-Control-Request-Method": "POST"})
		if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://app.test" {
			t.Errorf("preflight: %d %v", status, hdr)
		}
	})
	t.Run("host wildcard AND header AND query", func(t *testing.T) {
		hdr := map[string]string{"Host": "eu.admin.test", "X-Admin": "yes"}
		status, body, _ := get(t, c, "GET", base+"/x?debug", hdr)
		if status != 200 || !strings.HasPrefix(body, "web ") {
			t.Errorf("all conditions: %d %q", status, body)
		}
		status, _, _ = get(t, c, "GET", base+"/x", hdr)
		if status != 404 {
			t.Errorf("without the query parameter: %d", status)
		}
		hdr["Host"] = "admin.test"
		status, _, _ = get(t, c, "GET", base+"/x?debug", hdr)
		if status != 404 {
			t.Errorf("wildcard needs a label: %d", status)
		}
	})
	t.Run("redirect with prefix replacement", func(t *testing.T) {
		status, _, hdr := get(t, c, "GET", base+"/old/page?q=1", nil)
		if status != 308 || hdr.Get("Location") != "http://"+listen+"/new/page?q=1" {
			t.Errorf("redirect: %d %q", status, hdr.Get("Location"))
		}
	})
	t.Run("timeout policy answers 504", func(t *testing.T) {
		start := time.Now()
		status, _, _ := get(t, c, "GET", base+"/slow", nil)
		if status != http.StatusGatewayTimeout || time.Since(start) > 2500*time.Millisecond {
			t.Errorf("slow: %d after %v", status, time.Since(start))
		}
	})
	t.Run("retry on a listed status", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			status, body, _ := get(t, c, "GET", base+"/retry", nil)
			if status != 200 || !strings.HasPrefix(body, "flaky ") {
				t.Fatalf("attempt %d: %d %q (the 503 must be retried on the other target)", i, status, body)
			}
		}
		// POST is not idempotent: not replayed, the 503 comes through
		// whenever the failing target is picked first.
		saw503 := false
		for i := 0; i < 4; i++ {
			req, _ := http.NewRequest("POST", base+"/retry", strings.NewReader("x"))
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			saw503 = saw503 || res.StatusCode == 503
		}
		if !saw503 {
			t.Error("POST was retried on 503")
		}
	})
}
