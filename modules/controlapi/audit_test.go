package controlapi

import (
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/sentinel-proxy/sentinel/registry"
)

func TestAuditSuccess(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.2%3A8080", token: adminToken, body: `{"weight":6}`})
	if w.Code != 200 {
		t.Fatal(w.Code, w.Body)
	}
	entries := e.logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	en := entries[0]
	if en.Level != zapcore.InfoLevel {
		t.Errorf("level %v", en.Level)
	}
	m := en.ContextMap()
	for k, want := range map[string]any{"who": "root", "auth": "token", "scope": "admin", "method": "PATCH", "path": "/api/v1/upstreams/backend/targets/10.0.0.2:8080", "remote_addr": "192.0.2.1:1234", "status": int64(200), "upstream": "backend"} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	before, ok1 := m["before"].(registry.Upstream)
	after, ok2 := m["after"].(registry.Upstream)
	if !ok1 || !ok2 || before.Targets[1].Weight != 1 || after.Targets[1].Weight != 6 || after.Version == before.Version {
		t.Errorf("before %#v after %#v", m["before"], m["after"])
	}
	js := entryJSON(t, en)
	if !strings.Contains(js, `"before":{"id":"backend"`) || !strings.Contains(js, `"weight":6`) {
		t.Errorf("JSON entry %s", js)
	}
}

func TestAuditEveryMutation(t *testing.T) {
	e := newEnv(t, func(_ *Config, h *Hooks) { okHooks(h) })
	for _, rt := range e.srv.endpoints {
		n := len(e.logs.All())
		e.do(req{method: rt.method, path: concrete(rt.pattern), token: readToken, body: validBody(rt.method, rt.pattern)})
		e.do(req{method: rt.method, path: concrete(rt.pattern), token: adminToken, body: validBody(rt.method, rt.pattern)})
		got := len(e.logs.All()) - n
		want := 0
		switch {
		case mutation(rt.method):
			want = 2
		case rt.scope > scopeRead:
			want = 1 // the read token's refusal
		}
		if got != want {
			t.Errorf("%s %s: %d audit entries, want %d", rt.method, rt.pattern, got, want)
		}
	}
	for _, en := range e.logs.All() {
		js := entryJSON(t, en)
		for _, tok := range []string{adminToken, readToken, operateToken} {
			if strings.Contains(js, tok) {
				t.Fatalf("token in the audit log: %s", js)
			}
		}
	}
}

func TestAuditRefusals(t *testing.T) {
	e := newEnv(t)
	calls := []req{
		{method: "DELETE", path: "/api/v1/upstreams/extra", header: map[string]string{"Authorization": "Bearer " + adminToken + "-wrong"}},
		{method: "DELETE", path: "/api/v1/upstreams/extra", token: readToken},
		{method: "DELETE", path: "/api/v1/upstreams/extra", token: adminToken, header: map[string]string{"If-Match": `"77"`}},
		{method: "PUT", path: "/api/v1/routes/web/enabled", token: operateToken, body: `{"enabled":false,"x":1}`},
		{method: "POST", path: "/api/v1/nothing", token: adminToken},
	}
	for _, c := range calls {
		e.do(c)
	}
	entries := e.logs.All()
	if len(entries) != len(calls) {
		t.Fatalf("%d entries for %d calls", len(entries), len(calls))
	}
	want := []struct {
		who    string
		status int64
		field  string
	}{
		{"", 401, ""},
		{"viewer", 403, ""},
		{"root", 412, "upstream"},
		{"oncall", 400, "route"},
		{"root", 404, ""},
	}
	for i, en := range entries {
		m := en.ContextMap()
		if en.Level != zapcore.WarnLevel || m["who"] != want[i].who || m["status"] != want[i].status || m["error"] == nil {
			t.Errorf("entry %d: %v %v", i, en.Level, m)
		}
		if want[i].field != "" && m[want[i].field] == nil {
			t.Errorf("entry %d lacks %s: %v", i, want[i].field, m)
		}
		if strings.Contains(entryJSON(t, en), adminToken) {
			t.Errorf("entry %d holds the token", i)
		}
	}
	if u, ok := entries[2].ContextMap()["before"].(registry.Upstream); !ok || u.ID != "extra" {
		t.Errorf("the refused change lacks the before state: %v", entries[2].ContextMap())
	}
}

func TestAuditRouteAndDelete(t *testing.T) {
	e := newEnv(t)
	e.do(req{method: "PUT", path: "/api/v1/routes/web/enabled", token: operateToken, body: `{"enabled":false}`})
	e.do(req{method: "DELETE", path: "/api/v1/upstreams/extra", token: adminToken})
	entries := e.logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	m := entries[0].ContextMap()
	if m["route"] != "web" || m["before"] != (registry.Route{ID: "web", Enabled: true}) || m["after"] != (registry.Route{ID: "web", Enabled: false}) {
		t.Errorf("route entry %v", m)
	}
	m = entries[1].ContextMap()
	if _, ok := m["before"].(registry.Upstream); !ok || m["after"] != nil || m["status"] != int64(204) {
		t.Errorf("delete entry %v", m)
	}
}

func TestNilAuditLogger(t *testing.T) {
	s, err := New(Config{Tokens: []Token{{Token: adminToken}}}, registry.New(), nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	w := serve(&testEnv{srv: s}, newTestRequest("POST", "/api/v1/upstreams", `{"id":"a"}`))
	if w.Code != 201 {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}
