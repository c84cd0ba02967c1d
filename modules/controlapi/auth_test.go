package controlapi

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wantScopes returns the scope each endpoint needs.
func wantScopes() map[string]scope {
	return map[string]scope{
		"GET /api/v1/upstreams":                               scopeRead,
		"POST /api/v1/upstreams":                              scopeAdmin,
		"GET /api/v1/upstreams/{id}":                          scopeRead,
		"DELETE /api/v1/upstreams/{id}":                       scopeAdmin,
		"PUT /api/v1/upstreams/{id}/targets":                  scopeAdmin,
		"POST /api/v1/upstreams/{id}/targets":                 scopeAdmin,
		"PATCH /api/v1/upstreams/{id}/targets/{address}":      scopeOperate,
		"DELETE /api/v1/upstreams/{id}/targets/{address}":     scopeAdmin,
		"POST /api/v1/upstreams/{id}/drain":                   scopeOperate,
		"POST /api/v1/upstreams/{id}/targets/{address}/drain": scopeOperate,
		"GET /api/v1/routes":                                  scopeRead,
		"PUT /api/v1/routes/{id}/enabled":                     scopeOperate,
		"GET /api/v1/agents":                                  scopeRead,
		"GET /api/v1/agents/{id}/status":                      scopeRead,
		"POST /api/v1/config/reload":                          scopeAdmin,
		"GET /api/v1/config/validate":                         scopeAdmin,
		"POST /api/v1/config/validate":                        scopeAdmin,
		"GET /api/v1/config/source":                           scopeAdmin,
		"PUT /api/v1/config/source":                           scopeAdmin,
		"GET /api/v1/whoami":                                  scopeRead,
		"GET /api/v1/logs/access":                             scopeOperate,
		"GET /api/v1/logs/audit":                              scopeAdmin,
		"GET /api/v1/metrics/summary":                         scopeRead,
		"GET /api/v1/state":                                   scopeRead,
		"GET /api/v1/openapi.json":                            scopeRead,
	}
}

func TestRouteTableScopes(t *testing.T) {
	e := newEnv(t)
	if len(e.srv.endpoints) != len(wantScopes()) {
		t.Errorf("%d routes, %d expected", len(e.srv.endpoints), len(wantScopes()))
	}
	for _, rt := range e.srv.endpoints {
		key := rt.method + " " + rt.pattern
		want, ok := wantScopes()[key]
		if !ok {
			t.Errorf("unexpected route %s", key)
			continue
		}
		if rt.scope != want {
			t.Errorf("%s needs %s, want %s", key, rt.scope, want)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t)
	auths := map[string]string{
		"no header":       "",
		"wrong token":     "Bearer not-a-token",
		"prefix of token": "Bearer " + adminToken[:10],
		"token plus more": "Bearer " + adminToken + "x",
		"basic scheme":    "Basic " + adminToken,
		"no scheme":       adminToken,
		"empty bearer":    "Bearer ",
	}
	for _, rt := range e.srv.endpoints {
		for name, auth := range auths {
			w := e.do(req{method: rt.method, path: concrete(rt.pattern), body: validBody(rt.method, rt.pattern), header: map[string]string{"Authorization": auth}})
			if w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s, %s: status %d", rt.method, rt.pattern, name, w.Code)
				continue
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q", got)
			}
			checkError(t, w, 401, "", "")
		}
	}
	// The registry did not change.
	if len(e.reg.Upstreams()) != 3 || !e.reg.RouteFlag("api").Enabled() {
		t.Error("an unauthenticated call changed the registry")
	}
}

func TestTwoAuthorizationHeaders(t *testing.T) {
	e := newEnv(t)
	r := newTestRequest("GET", "/api/v1/upstreams", "")
	r.Header.Add("Authorization", "Bearer "+adminToken)
	r.Header.Add("Authorization", "Bearer "+readToken)
	w := serve(e, r)
	checkError(t, w, 401, "more than one", "")
}

func TestBearerSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "GET", path: "/api/v1/routes", header: map[string]string{"Authorization": "bearer  " + readToken}})
	if w.Code != 200 {
		t.Errorf("status %d", w.Code)
	}
}

func TestScopes(t *testing.T) {
	tokens := map[scope]string{scopeRead: readToken, scopeOperate: operateToken, scopeAdmin: adminToken}
	// The config editor is on, over a real file (written with the text it
	// has: its SHA-256, the If-Match, stays the same).
	file := filepath.Join(t.TempDir(), "sentinel.kdl")
	if err := os.WriteFile(file, []byte("system { }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hooks := func(c *Config, h *Hooks) {
		okHooks(h)
		c.ConfigEditor = true
		h.Source = func() (string, []byte, error) {
			b, err := os.ReadFile(file)
			return file, b, err
		}
	}
	for _, rt := range newEnv(t).srv.endpoints {
		for have, token := range tokens {
			e := newEnv(t, hooks)
			r := req{method: rt.method, path: concrete(rt.pattern), token: token, body: validBody(rt.method, rt.pattern)}
			if rt.method == http.MethodPut && rt.pattern == "/api/v1/config/source" {
				r.header = map[string]string{"If-Match": `"` + digestHex([]byte("system { }\n")) + `"`}
			}
			w := e.do(r)
			if have < rt.scope {
				checkError(t, w, http.StatusForbidden, "needs the "+rt.scope.String()+" scope", "")
				if len(e.reg.Upstreams()) != 3 || !e.reg.RouteFlag("api").Enabled() {
					t.Errorf("%s %s with %s changed the registry", rt.method, rt.pattern, have)
				}
			} else if w.Code >= 300 {
				t.Errorf("%s %s with %s: status %d %s", rt.method, rt.pattern, have, w.Code, w.Body)
			}
		}
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/api/v1", "/api/v1/", "/api/v1/upstreams/", "/api/v1/upstreams/backend/nope", "/api/v2/upstreams", "/api/v1/upstreams//targets"} {
		checkError(t, e.do(req{method: "GET", path: p, token: readToken}), 404, "no such endpoint", "")
	}
	tests := []struct{ method, path, allow string }{
		{"DELETE", "/api/v1/upstreams", "GET, POST"},
		{"PATCH", "/api/v1/upstreams/backend", "DELETE, GET"},
		{"GET", "/api/v1/upstreams/backend/targets", "POST, PUT"},
		{"GET", "/api/v1/upstreams/backend/targets/10.0.0.1:8080", "DELETE, PATCH"},
		{"GET", "/api/v1/upstreams/backend/drain", "POST"},
		{"POST", "/api/v1/routes", "GET"},
		{"GET", "/api/v1/routes/api/enabled", "PUT"},
		{"POST", "/api/v1/openapi.json", "GET"},
		{"GET", "/api/v1/config/reload", "POST"},
		{"PUT", "/api/v1/config/validate", "GET, POST"},
		{"POST", "/api/v1/config/source", "GET, PUT"},
		{"HEAD", "/api/v1/agents", "GET"},
	}
	for _, tt := range tests {
		w := e.do(req{method: tt.method, path: tt.path, token: adminToken})
		if w.Code != 405 || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q, want 405 %q", tt.method, tt.path, w.Code, w.Header().Get("Allow"), tt.allow)
		}
	}
}

func TestEscapedPaths(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Hooks) { c.AllowedTargetNetworks = []string{"fe80::/10"} })
	if _, err := e.reg.CreateUpstream("v6", nil); err != nil {
		t.Fatal(err)
	}
	w := e.do(req{method: "POST", path: "/api/v1/upstreams/v6/targets", token: adminToken, body: `{"address":"[fe80::1%eth0]:8080"}`})
	if w.Code != 201 {
		t.Fatal(w.Code, w.Body)
	}
	w = e.do(req{method: "PATCH", path: "/api/v1/upstreams/v6/targets/%5Bfe80%3A%3A1%25eth0%5D%3A8080", token: adminToken, body: `{"weight":3}`})
	if w.Code != 200 {
		t.Fatal(w.Code, w.Body)
	}
	if u, _ := e.reg.Get("v6"); u.Targets[0].Weight != 3 {
		t.Errorf("%+v", u)
	}
	// A literal segment may be escaped too.
	if w := e.do(req{method: "GET", path: "/api/v1/%75pstreams/v6", token: readToken}); w.Code != 200 {
		t.Errorf("%d", w.Code)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: adminToken, body: `{"enabled":false}`, header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	checkError(t, w, 403, "cross-origin", "")
	w = e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: adminToken, body: `{"enabled":false}`, header: map[string]string{"Origin": "https://evil.example"}})
	checkError(t, w, 403, "cross-origin", "")
	if !e.reg.RouteFlag("api").Enabled() {
		t.Error("a cross-origin request disabled the route")
	}
}

func TestMatchTokenConstantWork(t *testing.T) {
	e := newEnv(t)
	if m := e.srv.matchToken(operateToken); m == nil || m.name != "oncall" || m.scope != scopeOperate {
		t.Errorf("%+v", m)
	}
	if m := e.srv.matchToken(""); m != nil {
		t.Errorf("empty token matched %+v", m)
	}
}

func TestScopeNames(t *testing.T) {
	for _, s := range []scope{scopeNone, scopeRead, scopeOperate, scopeAdmin} {
		if p, ok := parseScope(s.String()); ok != (s != scopeNone) || ok && p != s {
			t.Errorf("%v", s)
		}
	}
	es := newTokenEntries([]Token{{Token: "a", Scopes: []string{"read", "admin", "operate"}}, {Token: "b", Scopes: []string{"read"}}, {Name: "n", Token: "c"}})
	if es[0].scope != scopeAdmin || es[1].scope != scopeRead || es[2].scope != scopeAdmin || es[0].name != "token-1" || es[2].name != "n" {
		t.Errorf("%+v", es)
	}
}
