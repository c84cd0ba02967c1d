package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
)

// TestControlPlaneRoutesReloadValidate covers route switches (503 and
// fall-through), the registry builtins, and reload/validate of the
// config file through the API.
func TestControlPlaneRoutesReloadValidate(t *testing.T) {
	// Validation runs in a child process: this test binary cannot be it.
	t.Setenv(sentinelapp.ValidatorEnv, testutil.Build(t, "./cmd/sentinel"))
	a, b := startBackend(t, "a"), startBackend(t, "b")
	listen, apiAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "sentinel.kdl")
	write := func(extraRoute string) {
		kdl := fmt.Sprintf(`
system { caddy-admin "localhost:%d"; }
listeners { listener "main" { address "%s"; }; }
routes {
    route "api" {
        priority "high"
        matches { path-prefix "/api"; }
        upstream "a"
    }
    route "beta" {
        priority "high"
        matches { path-prefix "/beta"; }
        upstream "b"
        when-disabled "next-route"
    }
    route "fallback" {
        priority "low"
        matches { path-prefix "/"; }
        upstream "a"
    }
    route "upstreams" {
        priority "critical"
        matches { path "/admin/upstreams"; }
        builtin-handler "upstreams"
    }
    %s
}
upstreams {
    upstream "a" { target "%s"; }
    upstream "b" { target "%s"; }
}
admin-api {
    address "%s"
    auth { token "tok"; }
    allowed-target-networks "127.0.0.0/8"
}
`, adminPort, listen, extraRoute, a.addr, b.addr, apiAddr)
		if err := os.WriteFile(file, []byte(kdl), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	loadFile(t, file)
	api := apiClient{t: t, base: "http://" + apiAddr, token: "tok"}
	c := client()
	base := "http://" + listen

	// Disable "api": 503 with a JSON body, at once.
	if code, body := api.do("PUT", "/api/v1/routes/api/enabled", map[string]any{"enabled": false}); code != 200 {
		t.Fatalf("disable: %d %v", code, body)
	}
	status, body, _ := get(t, c, "GET", base+"/api/x", nil)
	if status != 503 || jsonBody(t, body)["route"] != "api" {
		t.Errorf("disabled route: %d %s", status, body)
	}
	// Disable "beta" (next-route): the fallback answers.
	api.do("PUT", "/api/v1/routes/beta/enabled", map[string]any{"enabled": false})
	if status, body, _ := get(t, c, "GET", base+"/beta/x", nil); status != 200 || body != "a /beta/x" {
		t.Errorf("fall-through: %d %q", status, body)
	}
	api.do("PUT", "/api/v1/routes/api/enabled", map[string]any{"enabled": true})
	api.do("PUT", "/api/v1/routes/beta/enabled", map[string]any{"enabled": true})
	if status, body, _ := get(t, c, "GET", base+"/beta/x", nil); status != 200 || body != "b /beta/x" {
		t.Errorf("re-enabled: %d %q", status, body)
	}

	// The upstreams builtin reads the registry.
	status, body, _ = get(t, c, "GET", base+"/admin/upstreams", nil)
	if status != 200 || !strings.Contains(body, a.addr) || !strings.Contains(body, `"healthy_targets":1`) {
		t.Errorf("upstreams builtin: %d %s", status, body)
	}

	// No target left: 503 with a clear JSON body, no hang.
	api.do("PUT", "/api/v1/upstreams/a/targets", map[string]any{"targets": []any{}})
	status, body, _ = get(t, c, "GET", base+"/api/y", nil)
	if status != 503 || !strings.Contains(body, "no upstream target is available") {
		t.Errorf("empty upstream: %d %s", status, body)
	}
	api.do("PUT", "/api/v1/upstreams/a/targets", map[string]any{"targets": []any{map[string]any{"address": a.addr}}})

	// A /config change that fails to load changes nothing that runs: the
	// new config drops upstream "a" but has a bad handler.
	bad := fmt.Sprintf(`{"admin":{"listen":"localhost:%d"},"apps":{"sentinel":{"upstreams":[{"id":"b","targets":[{"address":%q}]}]},"http":{"servers":{"x":{"listen":[%q],"routes":[{"handle":[{"handler":"no_such_handler"}]}]}}}}}`, adminPort, b.addr, testutil.FreeAddr(t))
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://localhost:%d/load", adminPort), strings.NewReader(bad))
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode == 200 {
		t.Fatalf("bad config accepted: %v %v", err, res)
	}
	if status, body, _ := get(t, c, "GET", base+"/api/after-bad-load", nil); status != 200 || body != "a /api/after-bad-load" {
		t.Errorf("a failed load changed the registry: %d %q", status, body)
	}

	// Validate a broken file: errors with file:line:col; nothing applied.
	os.WriteFile(file, []byte("system { }\nlisteners { listener \"main\" { adress \"x\"; }; }\n"), 0o644)
	code, res := api.do("GET", "/api/v1/config/validate", nil)
	if code != 422 || !strings.Contains(fmt.Sprint(res["errors"]), file+":2:31: unknown setting \"adress\"") {
		t.Errorf("validate: %d %v", code, res)
	}
	code, res = api.do("POST", "/api/v1/config/reload", nil)
	if code != 422 {
		t.Errorf("reload of a broken file: %d %v", code, res)
	}
	if status, _, _ := get(t, c, "GET", base+"/api/z", nil); status != 200 {
		t.Errorf("a failed reload broke the running config: %d", status)
	}

	// Reload a good file with a new route: applied, answered by the API
	// that the reload replaces.
	write(`route "new" { priority "critical"; matches { path "/new"; }; builtin-handler "health"; }`)
	code, res = api.do("POST", "/api/v1/config/reload", nil)
	if code != 200 {
		t.Fatalf("reload: %d %v", code, res)
	}
	if status, body, _ := get(t, c, "GET", base+"/new", nil); status != 200 || !strings.Contains(body, "healthy") {
		t.Errorf("route added by the reload: %d %s", status, body)
	}
	code, _ = api.do("GET", "/api/v1/config/validate", nil)
	if code != 200 {
		t.Errorf("validate of the good file: %d", code)
	}
	// The API keeps answering after its own reload.
	if code, _ := api.do("GET", "/api/v1/routes", nil); code != 200 {
		t.Errorf("API after reload: %d", code)
	}
	// The reload kept the API's target change (registry reconciliation).
	_, up := api.do("GET", "/api/v1/upstreams/a", nil)
	if targetField(up, a.addr, "origin") == nil {
		t.Errorf("upstream a after reload: %v", up)
	}
}
