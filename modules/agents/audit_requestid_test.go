package agents

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
)

// TestAuditDecisionRequestID: an audited decision carries the request's
// id, the one the access log writes as trace_id ({http.request.uuid}),
// so that the admin UI matches access log lines with agent decisions.
// (It was read as a string from Caddy's "uuid" variable, which holds
// another type: the id was always missing.)
func TestAuditDecisionRequestID(t *testing.T) {
	ag := &scripted{headers: func(*protocol.RequestHeaders) *protocol.Response { return block(403, "no", nil) }}
	app := testApp(t, uds("waf", serveAgent(t, ag)))
	h := testHandler(t, app, &Filter{Agent: "waf"})
	au, read := audittest.Start(t)
	h.audit = au

	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r := caddyhttp.PrepareRequest(httptest.NewRequest("GET", "http://example.com/x", nil), repl, w, &caddyhttp.Server{})
	if err := h.ServeHTTP(w, r, &upstream{}); err != nil {
		t.Fatal(err)
	}
	// What the access log's log_append of trace_id evaluates afterwards.
	logged, _ := repl.GetString("http.request.uuid")
	ev := read(1)
	if len(ev) != 1 || ev[0].RequestID == "" || ev[0].RequestID != logged {
		t.Fatalf("request id %q, the access log's %q: %+v", ev[0].RequestID, logged, ev)
	}
}
