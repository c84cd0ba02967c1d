package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestAuditEventsInAdminUILog: through the real proxy, a request the
// route's rate limit rejects makes a rate_limit audit event that the
// admin UI's audit view (GET /api/v1/logs/audit) shows next to the
// control-plane entries, in their shape (msg, who, status, route_id: the
// route whose rate limit rejected it).
func TestAuditEventsInAdminUILog(t *testing.T) {
	b := startBackend(t, "b")
	addr, api := testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir := t.TempDir()
	unloadOnCleanup(t) // the audit app writes into dir until stopped
	loadKDL(t, fmt.Sprintf(`
system { }
listeners { listener "http" { address %q; } }
upstreams { upstream "b" { target %q; } }
observability {
    logging {
        audit-log {
            spool-dir %q
            file %q
        }
    }
}
admin-api {
    address %q
    auth { token "ui-admin-secret" name="root"; }
}
routes {
    route "limited" {
        matches { path-prefix "/limited"; }
        upstream "b"
        policies { rate-limit { requests-per-second 1; burst 1; key "global"; } }
    }
}
`, addr, b.addr, filepath.Join(dir, "spool"), filepath.Join(dir, "audit.log"), api))
	path := fmt.Sprintf("/limited/ui-%d", time.Now().UnixNano())
	rejected := false
	for range 5 {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		rejected = rejected || res.StatusCode == http.StatusTooManyRequests
	}
	if !rejected {
		t.Fatal("no request rejected by the rate limit")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+api+"/api/v1/logs/audit", nil)
	req.Header.Set("Authorization", "Bearer ui-admin-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Lines []struct {
			Text string `json:"text"`
		} `json:"lines"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", res.StatusCode, err)
	}
	for _, l := range out.Lines {
		if !strings.Contains(l.Text, path) {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(l.Text), &e); err != nil {
			t.Fatal(err)
		}
		if e["msg"] != "rate_limit reject" || e["status"] != 429.0 || e["kind"] != "rate_limit" || e["who"] == "" || e["ts"] == nil ||
			e["route_id"] != "limited" {
			t.Fatalf("entry %s", l.Text)
		}
		return
	}
	t.Fatalf("no audit entry for %s in %d lines", path, len(out.Lines))
}
