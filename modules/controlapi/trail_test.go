package controlapi

import (
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
)

// TestAuditTrail: with Hooks.Trail, a mutation and a refused call are
// audit events (kind control_plane) with the token's name, the subject,
// the state before, and never a token.
func TestAuditTrail(t *testing.T) {
	trail, read := audittest.Start(t)
	e := newEnv(t, func(_ *Config, h *Hooks) { h.Trail = trail })
	if w := e.do(req{method: "DELETE", path: "/api/v1/upstreams/extra", token: adminToken}); w.Code != 200 && w.Code != 204 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	e.do(req{method: "DELETE", path: "/api/v1/upstreams/solo", token: readToken})
	ev := read(2)
	if len(ev) != 2 {
		t.Fatalf("%d events", len(ev))
	}
	ch, ref := ev[0], ev[1]
	if ch.Kind != audit.KindControlPlane || ch.Action != "change" || ch.Actor != "root" || ch.Method != "DELETE" || ch.Path != "/api/v1/upstreams/extra" ||
		ch.Details["upstream"] != "extra" || ch.Details["before"] == nil || ch.Client != "192.0.2.1" {
		t.Errorf("change: %+v", ch)
	}
	if ref.Action != "refused" || ref.Actor != "viewer" || ref.Status != 403 {
		t.Errorf("refused: %+v", ref)
	}
	for _, e := range ev {
		s := strings.Join([]string{e.Actor, e.Reason, e.Path}, " ")
		for _, tok := range []string{adminToken, readToken} {
			if strings.Contains(s, tok) {
				t.Fatal("a token in the audit trail")
			}
		}
	}
}
