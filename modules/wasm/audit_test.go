package wasm

import (
	"net/http/httptest"
	"testing"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
)

// TestAuditBlock: a plugin's block is an audit event (wasm_block) with
// the plugin, route, namespace, client and status.
func TestAuditBlock(t *testing.T) {
	h, err := provisionHandler(t, mustJSON(t, map[string]any{"route": "team-b:r1", "plugins": []any{map[string]any{"id": "facts", "path": buildPlugin(t, "facts"), "timeout": "5s"}}}))
	if err != nil {
		t.Fatal(err)
	}
	trail, read := audittest.Start(t)
	h.Plugins[0].audit = trail
	req := httptest.NewRequest("GET", "/x?a=1", nil)
	req.RemoteAddr = "192.0.2.7:4321"
	if rec := serveStage(t, h.chain, req); rec.Code != 299 {
		t.Fatalf("status %d", rec.Code)
	}
	ev := read(1)
	e := ev[0]
	if len(ev) != 1 || e.Kind != audit.KindWASMBlock || e.Action != "block" || e.Actor != "facts" || e.Route != "team-b:r1" || e.Namespace != "team-b" ||
		e.Client != "192.0.2.7" || e.Status != 299 || e.Path != "/x" {
		t.Fatalf("events %+v", ev)
	}
}
