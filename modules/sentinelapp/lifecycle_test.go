package sentinelapp_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/kdladapter"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
	"github.com/sentinel-proxy/sentinel/registry"
)

// The KDL adapter maps onto this package's types, so tests that adapt
// KDL are outside the package (the adapter imports it).

// adminPort is this package's in-process Caddy admin port (the same as
// the internal tests': they run one after the other in one process).
const adminPort = 2997

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// adaptFile adapts a KDL file like the command line does.
func adaptFile(path string) ([]byte, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, _, err := kdladapter.Adapt(path, body, os.LookupEnv, kdladapter.OSFiles{})
	return out, err
}

// TestAppLifecycle runs the app in a real Caddy: reconcile, state file
// restore and save, the API listener kept across a reload, the reload and
// validate hooks on a KDL file, and a clean stop.
func TestAppLifecycle(t *testing.T) {
	// Validation runs in a child process: this test binary cannot be it.
	t.Setenv(sentinelapp.ValidatorEnv, testutil.Build(t, "./cmd/sentinel"))
	dir := t.TempDir()
	listen, api := testutil.FreeAddr(t), testutil.FreeAddr(t)
	state := filepath.Join(dir, "state.json")
	// A state file from "a previous run": an API-added target.
	prev := registry.New()
	prev.Reconcile([]registry.UpstreamSpec{{ID: "app-u", Targets: []registry.TargetSpec{{Address: "127.0.0.1:1"}}}}, nil)
	prev.AddTarget("app-u", registry.Target{Address: "127.0.0.1:2", Weight: 9}, 0)
	data, _ := prev.Snapshot()
	os.WriteFile(state, data, 0o600)

	kdlFile := filepath.Join(dir, "sentinel.kdl")
	kdl := fmt.Sprintf(`system { caddy-admin "localhost:%d"; }
listeners { listener "main" { address %q; }; }
routes { route "app-r" { upstream "app-u"; }; }
upstreams { upstream "app-u" { target "127.0.0.1:1"; health-check { type "tcp"; interval-secs 60; }; }; }
admin-api { address %q; auth { token "tok"; }; state-file %q; allowed-target-networks "127.0.0.0/8"; }
`, adminPort, listen, api, state)
	os.WriteFile(kdlFile, []byte(kdl), 0o644)

	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	cfg := map[string]any{}
	// Adapt with the file name so that reload knows the file.
	out, err := adaptFile(kdlFile)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(out, &cfg)
	raw, _ := json.Marshal(cfg)
	tc.InitServer(string(raw), "json")

	base := "http://" + api + "/api/v1"
	code, body := call(t, "GET", base+"/upstreams/app-u", "tok", "")
	if code != 200 || !strings.Contains(body, `"127.0.0.1:2"`) || !strings.Contains(body, `"weight":9`) {
		t.Fatalf("restored state: %d %s", code, body)
	}
	// A change is saved to the state file.
	if code, body := call(t, "POST", base+"/upstreams/app-u/targets", "tok", `{"address":"127.0.0.1:3"}`); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	// Caddy's admin endpoint, moved by caddy-admin, is the proxy's own:
	// no target may point at it, even inside allowed-target-networks.
	admin := fmt.Sprintf(`{"address":"127.0.0.1:%d"}`, adminPort)
	if code, body := call(t, "POST", base+"/upstreams/app-u/targets", "tok", admin); code != 403 || !strings.Contains(body, "own listeners") {
		t.Errorf("target at Caddy's admin endpoint: %d %s", code, body)
	}
	saved, _ := os.ReadFile(state)
	if !strings.Contains(string(saved), "127.0.0.1:3") {
		t.Errorf("state file not updated: %s", saved)
	}
	// Validate and reload through the hooks; the API answers its own reload.
	if code, body := call(t, "GET", base+"/config/validate", "tok", ""); code != 200 {
		t.Errorf("validate: %d %s", code, body)
	}
	if code, body := call(t, "POST", base+"/config/reload", "tok", ""); code != 200 || !strings.Contains(body, kdlFile) {
		t.Errorf("reload: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/upstreams/app-u", "tok", ""); code != 200 || !strings.Contains(body, "127.0.0.1:3") {
		t.Errorf("after reload: %d %s", code, body)
	}
	// A broken file: reload refused with the file's position.
	os.WriteFile(kdlFile, []byte("system { }\nbogus { }\n"), 0o644)
	if code, body := call(t, "POST", base+"/config/reload", "tok", ""); code != 422 || !strings.Contains(body, kdlFile+":2:1") {
		t.Errorf("broken reload: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/config/validate", "tok", ""); code != 422 || !strings.Contains(body, "unknown setting") {
		t.Errorf("broken validate: %d %s", code, body)
	}
	// Loading a config without the app stops the API.
	tc.InitServer(fmt.Sprintf(`{"admin":{"listen":"localhost:%d"}}`, adminPort), "json")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := http.Get(base + "/routes"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("API still listening after the app left the config")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
