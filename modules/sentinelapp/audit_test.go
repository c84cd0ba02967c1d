package sentinelapp_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/audit"
)

// TestAuditTrailEndToEnd: a KDL config with audit-log writes, through
// the real proxy, a config_load event at start, a control_plane event
// per API change and a config_reload_failed event (with the findings at
// file:line:col) when a reload is refused.
func TestAuditTrailEndToEnd(t *testing.T) {
	dir := t.TempDir()
	listen, api := testutil.FreeAddr(t), testutil.FreeAddr(t)
	logFile := filepath.Join(dir, "audit.log")
	kdlFile := filepath.Join(dir, "sentinel.kdl")
	kdl := fmt.Sprintf(`system { caddy-admin "localhost:%d"; }
listeners { listener "main" { address %q; }; }
routes { route "app-r" { upstream "app-u"; }; }
upstreams { upstream "app-u" { target "127.0.0.1:1"; }; }
admin-api { address %q; auth { token "tok"; }; allowed-target-networks "127.0.0.0/8"; }
observability { logging { audit-log { file %q; spool-dir %q; }; }; }
`, adminPort, listen, api, logFile, filepath.Join(dir, "spool"))
	os.WriteFile(kdlFile, []byte(kdl), 0o644)
	out, err := adaptFile(kdlFile)
	if err != nil {
		t.Fatal(err)
	}
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(string(out), "json")
	// Stop the config before the temporary folder is removed: its audit
	// spool writes there until the app stops.
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Error(err)
		}
	})

	base := "http://" + api + "/api/v1"
	// A fresh target each run: the registry keeps API-made targets for the
	// process (a second run with -count would find this one).
	target := testutil.FreeAddr(t)
	if code, body := call(t, "POST", base+"/upstreams/app-u/targets", "tok", `{"address":"`+target+`"}`); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	os.WriteFile(kdlFile, []byte(kdl+"routes { route \"x\" { upstream \"missing\"; }; }\n"), 0o644)
	if code, body := call(t, "POST", base+"/config/reload", "tok", ""); code != 422 {
		t.Fatalf("broken reload: %d %s", code, body)
	}
	want := []string{audit.KindConfigLoad, audit.KindControlPlane, audit.KindConfigReloadFailed, audit.KindControlPlane}
	var ev []audit.Event
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev = ev[:0]
		b, _ := os.ReadFile(logFile)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e audit.Event
			if json.Unmarshal([]byte(l), &e) == nil {
				ev = append(ev, e)
			}
		}
		if len(ev) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if ev[0].Details["config_file"] != kdlFile || ev[1].Actor != "tok" && ev[1].Actor == "" {
		t.Errorf("events %+v", ev[:2])
	}
	errs, _ := ev[2].Details["errors"].([]any)
	if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs[0]), "sentinel.kdl:") {
		t.Errorf("reload failure: %+v", ev[2])
	}
	if ev[3].Action != "refused" || ev[3].Status != 422 {
		t.Errorf("refused reload call: %+v", ev[3])
	}
}
