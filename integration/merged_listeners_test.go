package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestConfigMergedListeners: two listeners that differ only in their
// address become one Caddy server listening on both (each route
// provisioned once, not once per listener), and both addresses serve the
// routes and the default answer as before.
func TestConfigMergedListeners(t *testing.T) {
	b := startBackend(t, "merged")
	web, alt := testutil.FreeAddr(t), testutil.FreeAddr(t)
	loadKDL(t, fmt.Sprintf(`
system { }
listeners {
    listener "web" { address "%s"; }
    listener "alt" { address "%s"; }
}
routes {
    route "api" {
        matches { path-prefix "/api"; }
        upstream "b"
    }
}
upstreams { upstream "b" { target "%s"; }; }
`, web, alt, b.addr))

	c := client()
	status, body, _ := get(t, c, "GET", fmt.Sprintf("http://localhost:%d/config/apps/http/servers", adminPort), nil)
	var servers map[string]struct {
		Listen []string `json:"listen"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &servers) != nil {
		t.Fatalf("servers: %d %s", status, body)
	}
	if len(servers) != 1 || !slices.Equal(servers["web"].Listen, []string{web, alt}) {
		t.Fatalf("servers = %s, want one server \"web\" on both addresses", body)
	}
	for _, addr := range []string{web, alt} {
		if status, body, _ := get(t, c, "GET", "http://"+addr+"/api/x", nil); status != 200 || body != "merged /api/x" {
			t.Errorf("%s/api/x: %d %q", addr, status, body)
		}
		if status, _, _ := get(t, c, "GET", "http://"+addr+"/nowhere", nil); status != 404 {
			t.Errorf("%s/nowhere: %d, want 404", addr, status)
		}
	}
}
