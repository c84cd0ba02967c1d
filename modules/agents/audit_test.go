package agents

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
)

// TestAuditDecisions: block, redirect and challenge decisions are
// audited with the agent, route, namespace, client and request; a
// decision with rule ids or tags is a WAF event carrying them; allowed
// requests are not audited; skipped kinds are not written.
func TestAuditDecisions(t *testing.T) {
	ag := &scripted{headers: func(ev *protocol.RequestHeaders) *protocol.Response {
		switch ev.Headers["x-want"][0] {
		case "block":
			return block(451, "nope", nil)
		case "waf":
			r := block(403, "", nil)
			r.Audit = protocol.Audit{RuleIDs: []string{"942100"}, Tags: []string{"sqli"}, ReasonCodes: []string{"SQLI"}}
			return r
		case "redirect":
			return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Redirect, URL: "https://login.example/", Status: 307}}
		case "challenge":
			return &protocol.Response{Decision: protocol.Decision{Kind: protocol.Challenge, ChallengeType: "captcha"}}
		}
		return &protocol.Response{}
	}}
	path := serveAgent(t, ag)
	app := testApp(t, uds("waf", path))
	h := testHandler(t, app, &Filter{Agent: "waf"})
	h.Route = "team-a:api"
	au, read := audittest.Start(t)
	h.audit = au
	for _, want := range []string{"allow", "block", "waf", "redirect", "challenge"} {
		r := httptest.NewRequest("GET", "http://example.com/p?q=1", nil)
		r.RemoteAddr = "192.0.2.7:5555"
		r.Header.Set("X-Want", want)
		serve(t, h, nil, r)
	}
	ev := read(4)
	if len(ev) != 4 {
		t.Fatalf("%d events, want 4 (allow is not audited): %+v", len(ev), ev)
	}
	want := []struct{ kind, action string }{{"agent_decision", "block"}, {"waf", "block"}, {"agent_decision", "redirect"}, {"agent_decision", "challenge"}}
	for i, e := range ev {
		if e.Kind != want[i].kind || e.Action != want[i].action || e.Actor != "waf" || e.Route != "team-a:api" || e.Namespace != "team-a" ||
			e.Client != "192.0.2.7" || e.Method != "GET" || e.Host != "example.com" || e.Path != "/p" || e.ID == "" || e.SchemaVersion != audit.SchemaVersion {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if ev[0].Status != 451 || ev[1].Status != 403 || strings.Join(ev[1].RuleIDs, ",") != "942100" || strings.Join(ev[1].Tags, ",") != "sqli" ||
		ev[1].Details["reason_codes"] == nil || ev[2].Details["location"] != "https://login.example/" || ev[3].Details["challenge"] != "captcha" {
		t.Errorf("decision fields: %+v", ev)
	}

	au2, read2 := audittest.Start(t, audit.KindWAF)
	h.audit = au2
	for _, want := range []string{"waf", "block"} {
		r := httptest.NewRequest("GET", "http://example.com/", nil)
		r.Header.Set("X-Want", want)
		serve(t, h, nil, r)
	}
	if ev := read2(1); len(ev) != 1 || ev[0].Kind != "agent_decision" {
		t.Fatalf("with waf skipped: %+v", ev)
	}
}
