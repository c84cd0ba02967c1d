package sentinelapp_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/sentinelapp"
)

// TestValidateTextInChild: POST /api/v1/config/validate provisions the
// text in a child process (sentinel validate), not in the running proxy:
// the text's admin-api address is never bound by the proxy while it is
// validated (in process, the running config made the app claim it), no
// pooled spool or log writer of the text is opened in the proxy, the
// temporary file is removed, and errors still name the config file with
// line and column.
func TestValidateTextInChild(t *testing.T) {
	t.Setenv(sentinelapp.ValidatorEnv, testutil.Build(t, "./cmd/sentinel"))
	dir := t.TempDir()
	listen, api, probe := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	kdlFile := filepath.Join(dir, "sentinel.kdl")
	kdl := fmt.Sprintf(`system { caddy-admin "localhost:%d"; }
listeners { listener "main" { address %q; }; }
routes { route "r" { upstream "u"; }; }
upstreams { upstream "u" { target "127.0.0.1:1"; }; }
admin-api { address %q; auth { token "tok"; }; }
`, adminPort, listen, api)
	os.WriteFile(kdlFile, []byte(kdl), 0o644)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	out, err := adaptFile(kdlFile)
	if err != nil {
		t.Fatal(err)
	}
	tc.InitServer(string(out), "json")
	t.Cleanup(func() { tc.InitServer(fmt.Sprintf(`{"admin":{"listen":"localhost:%d"}}`, adminPort), "json") })
	base := "http://" + api + "/api/v1"

	// A valid text whose admin API is on probe: watched while it is
	// validated.
	text := strings.Replace(kdl, fmt.Sprintf("address %q; auth", api), fmt.Sprintf("address %q; auth", probe), 1)
	var bound atomic.Bool
	quit, probed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probed)
		for {
			if c, err := net.DialTimeout("tcp", probe, 50*time.Millisecond); err == nil {
				c.Close()
				bound.Store(true)
			}
			select {
			case <-quit:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	body, _ := json.Marshal(map[string]string{"content": text})
	code, res := call(t, "POST", base+"/config/validate", "tok", string(body))
	time.Sleep(20 * time.Millisecond) // a listener that might close late
	close(quit)
	<-probed
	if code != 200 || !strings.Contains(res, `"valid":true`) {
		t.Errorf("valid text: %d %s", code, res)
	}
	if bound.Load() {
		t.Error("the proxy accepted connections on the validated text's admin-api address")
	}

	// A text whose admin API is on an address taken (here, by the test):
	// in process, validating it claimed the address (and failed, "address
	// already in use"); the child binds nothing, so it is valid. (The
	// reload of such a text fails at provisioning, the running config
	// intact.)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	text = strings.Replace(kdl, fmt.Sprintf("address %q; auth", api), fmt.Sprintf("address %q; auth", busy.Addr()), 1)
	body, _ = json.Marshal(map[string]string{"content": text})
	if code, res = call(t, "POST", base+"/config/validate", "tok", string(body)); code != 200 || !strings.Contains(res, `"valid":true`) {
		t.Errorf("text with a taken admin-api address: %d %s (the proxy tried to bind it)", code, res)
	}

	// An invalid text: the error names the config file, line and column.
	bad := strings.Replace(kdl, `listener "main" { address`, `listener "main" { adress`, 1)
	body, _ = json.Marshal(map[string]string{"content": bad})
	code, res = call(t, "POST", base+"/config/validate", "tok", string(body))
	if code != 422 || !strings.Contains(res, kdlFile+`:2:31: unknown setting \"adress\"`) {
		t.Errorf("invalid text: %d %s", code, res)
	}
	// A provisioning error (not the adapter's): its message.
	bad = strings.Replace(kdl, `target "127.0.0.1:1"`, `target "127.0.0.1:99999"`, 1)
	body, _ = json.Marshal(map[string]string{"content": bad})
	if code, res = call(t, "POST", base+"/config/validate", "tok", string(body)); code != 422 || strings.Contains(res, ".sentinel-validate-") {
		t.Errorf("unprovisionable text: %d %s", code, res)
	}
	// Includes resolve relative to the config file, and their errors
	// name them.
	os.WriteFile(filepath.Join(dir, "extra.kdl"), []byte("bogus { }\n"), 0o644)
	body, _ = json.Marshal(map[string]string{"content": kdl + "include \"extra.kdl\"\n"})
	if code, res = call(t, "POST", base+"/config/validate", "tok", string(body)); code != 422 || !strings.Contains(res, filepath.Join(dir, "extra.kdl")+":1:1: ") {
		t.Errorf("text with an include: %d %s", code, res)
	}
	os.Remove(filepath.Join(dir, "extra.kdl"))
	// An executable that does not answer as sentinel validate does.
	t.Setenv(sentinelapp.ValidatorEnv, "/bin/false")
	if code, res = call(t, "POST", base+"/config/validate", "tok", string(body)); code != 422 || !strings.Contains(res, "did not answer as") {
		t.Errorf("validator that is not Sentinel: %d %s", code, res)
	}
	// The temporary files are gone.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "sentinel.kdl" {
			t.Errorf("left in the config folder: %s", e.Name())
		}
	}
}
