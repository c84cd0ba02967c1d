package sentinelapp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// ownerConfig is a config whose route is guarded (sentinel_route "own")
// and answers the `upstreams` builtin; app is its sentinel app (none when
// nil).
func ownerConfig(t *testing.T, listen string, app map[string]any) string {
	t.Helper()
	apps := map[string]any{
		"http": map[string]any{"servers": map[string]any{"main": map[string]any{
			"listen":          []string{listen},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{
				map[string]any{"handler": "sentinel_route", "route": "own"},
				map[string]any{"handler": "sentinel_builtin", "kind": "upstreams"},
			}}},
		}}},
	}
	if app != nil {
		apps["sentinel"] = app
	}
	b, err := json.Marshal(map[string]any{"admin": map[string]any{"listen": fmt.Sprintf("localhost:%d", adminPort)}, "apps": apps})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestModulesReachTheRegistryThroughTheApp: the route guard and the
// builtin read the registry the sentinel app holds; a config without a
// sentinel app (Caddy creates an empty one when the modules load it)
// reaches the same registry and leaves it as it is: the upstream declared
// by the previous config and the route switched off through the registry
// stay.
func TestModulesReachTheRegistryThroughTheApp(t *testing.T) {
	listen := testutil.FreeAddr(t)
	url := "http://" + listen + "/"
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 20 * time.Second})
	tc.InitServer(ownerConfig(t, listen, map[string]any{
		"upstreams": []any{map[string]any{"id": "own-up", "targets": []any{map[string]any{"address": "127.0.0.1:1"}}}},
		"routes":    []string{"own"},
	}), "json")
	if code, body := get(t, url); code != 200 || !strings.Contains(body, `"id":"own-up"`) {
		t.Fatalf("with the app: %d %s", code, body)
	}
	if err := new(App).Registry().SetRouteEnabled("own", false); err != nil {
		t.Fatal(err)
	}
	defer processRegistry.SetRouteEnabled("own", true)
	if code, _ := get(t, url); code != 503 {
		t.Fatalf("the route switched off in the app's registry answers %d", code)
	}

	tc.InitServer(ownerConfig(t, listen, nil), "json")
	if _, ok := processRegistry.Get("own-up"); !ok {
		t.Error("a config without a sentinel app reconciled the registry")
	}
	if f := processRegistry.RouteFlag("own"); f == nil || f.Enabled() {
		t.Error("a config without a sentinel app reset the route switch")
	}
	if err := processRegistry.SetRouteEnabled("own", true); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url); code != 200 || !strings.Contains(body, `"id":"own-up"`) {
		t.Errorf("without the app: %d %s", code, body)
	}
}
