package controlapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/registry"
)

const teamAToken = "team-a-4f1c9e7b2d5a8c3e6f0b1d4a7c2e5f8b"

// nsEnv is newEnv with the upstreams and routes of two namespaces and a
// token scoped to team-a with the admin scope.
func nsEnv(t *testing.T) *testEnv {
	e := newEnv(t, func(c *Config, h *Hooks) {
		okHooks(h)
		c.Tokens = append(c.Tokens, Token{Name: "team-a", Token: teamAToken, Namespace: "team-a"})
	})
	e.reg.Reconcile([]registry.UpstreamSpec{
		{ID: "backend", Targets: []registry.TargetSpec{{Address: "10.0.0.1:8080"}}},
		{ID: "team-a:api", Targets: []registry.TargetSpec{{Address: "10.0.3.1:80"}}},
		{ID: "team-b:api", Targets: []registry.TargetSpec{{Address: "10.0.4.1:80"}}},
	}, []string{"web", "team-a:web", "team-b:web", "team-ab:web"})
	return e
}

func TestNamespaceTokenLists(t *testing.T) {
	e := nsEnv(t)
	ups := decodeJSON[[]struct{ ID string }](t, e.do(req{method: "GET", path: "/api/v1/upstreams", token: teamAToken}))
	if len(ups) != 1 || ups[0].ID != "team-a:api" {
		t.Errorf("upstreams %v", ups)
	}
	routes := decodeJSON[[]registry.Route](t, e.do(req{method: "GET", path: "/api/v1/routes", token: teamAToken}))
	if len(routes) != 1 || routes[0].ID != "team-a:web" {
		t.Errorf("routes %v", routes)
	}
	all := decodeJSON[[]registry.Route](t, e.do(req{method: "GET", path: "/api/v1/routes", token: adminToken}))
	if len(all) != 4 {
		t.Errorf("unscoped routes %v", all)
	}
}

func TestNamespaceTokenRefusals(t *testing.T) {
	e := nsEnv(t)
	for _, ep := range e.srv.endpoints {
		path := concrete(ep.pattern)
		if strings.Contains(ep.pattern, "{id}") {
			// Another namespace's id, a global one, a prefix look-alike
			// and an escaped colon.
			for _, id := range []string{"team-b:api", "backend", "team-ab:web", "team-b%3Aapi"} {
				p := strings.Replace(ep.pattern, "{id}", id, 1)
				p = strings.Replace(p, "{address}", "10.0.4.1:80", 1)
				w := e.do(req{method: ep.method, path: p, token: teamAToken, body: validBody(ep.method, ep.pattern)})
				checkError(t, w, http.StatusForbidden, "is scoped to", "")
			}
			continue
		}
		if ep.namespaced {
			continue
		}
		w := e.do(req{method: ep.method, path: path, token: teamAToken, body: validBody(ep.method, ep.pattern)})
		checkError(t, w, http.StatusForbidden, "not available to a token scoped to a namespace", "")
	}
	// Its own ids work, within its scope.
	if w := e.do(req{method: "POST", path: "/api/v1/upstreams/team-a:api/drain", token: teamAToken}); w.Code != 200 {
		t.Errorf("own drain: %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/routes/team-a:web/enabled", token: teamAToken, body: `{"enabled":false}`}); w.Code != 200 {
		t.Errorf("own route: %d %s", w.Code, w.Body)
	}
}

func TestNamespaceAudit(t *testing.T) {
	e := nsEnv(t)
	e.do(req{method: "POST", path: "/api/v1/upstreams/team-b:api/drain", token: teamAToken})
	e.do(req{method: "POST", path: "/api/v1/upstreams/team-a:api/drain", token: adminToken})
	entries := e.logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	m := entries[0].ContextMap()
	for k, want := range map[string]any{"who": "team-a", "token_namespace": "team-a", "upstream": "team-b:api", "namespace": "team-b", "status": int64(403)} {
		if m[k] != want {
			t.Errorf("refusal: %s = %#v, want %#v", k, m[k], want)
		}
	}
	m = entries[1].ContextMap()
	if m["namespace"] != "team-a" || m["token_namespace"] != nil {
		t.Errorf("admin entry: namespace %v token_namespace %v", m["namespace"], m["token_namespace"])
	}
}

func TestNamespaceTokenConfig(t *testing.T) {
	c := Config{Tokens: []Token{{Token: "abc", Namespace: "bad:ns"}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `namespace "bad:ns"`) {
		t.Errorf("got %v", err)
	}
}

// TestNamespaceTokenCreates: a scoped token creates upstreams in its
// namespace only: an unqualified id is qualified with it, another
// namespace's (or a look-alike prefix's) is refused, and the audit entry
// names the id made.
func TestNamespaceTokenCreates(t *testing.T) {
	e := nsEnv(t)
	w := e.do(req{method: "POST", path: "/api/v1/upstreams", token: teamAToken, body: `{"id":"new","targets":[{"address":"10.0.3.2:80"}]}`})
	if w.Code != http.StatusCreated || w.Header().Get("Location") != "/api/v1/upstreams/team-a:new" {
		t.Fatalf("unqualified: %d %s %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if u, ok := e.reg.Get("team-a:new"); !ok || u.Origin != registry.OriginAPI {
		t.Fatalf("team-a:new not in the registry: %+v", u)
	}
	if _, ok := e.reg.Get("new"); ok {
		t.Error("a global upstream was made")
	}
	if w := e.do(req{method: "POST", path: "/api/v1/upstreams", token: teamAToken, body: `{"id":"team-a:billing:db"}`}); w.Code != http.StatusCreated {
		t.Errorf("qualified in its namespace: %d %s", w.Code, w.Body)
	}
	for _, id := range []string{"team-b:x", "team-ab:x", "team-b:svc:x"} {
		w := e.do(req{method: "POST", path: "/api/v1/upstreams", token: teamAToken, body: `{"id":"` + id + `"}`})
		checkError(t, w, http.StatusForbidden, `cannot create "`+id+`"`, "")
		if _, ok := e.reg.Get(id); ok {
			t.Errorf("%s was made", id)
		}
	}
	// Too long once qualified.
	long := strings.Repeat("x", registry.MaxIDLength-2)
	checkError(t, e.do(req{method: "POST", path: "/api/v1/upstreams", token: teamAToken, body: `{"id":"` + long + `"}`}), http.StatusBadRequest, "characters", "id")
	// Existing ids conflict as usual, inside the namespace.
	checkError(t, e.do(req{method: "POST", path: "/api/v1/upstreams", token: teamAToken, body: `{"id":"api"}`}), http.StatusConflict, `"team-a:api" already exists`, "")
	// An unscoped token may create any namespace's.
	if w := e.do(req{method: "POST", path: "/api/v1/upstreams", token: adminToken, body: `{"id":"team-b:made"}`}); w.Code != http.StatusCreated {
		t.Errorf("admin: %d %s", w.Code, w.Body)
	}
	// The created upstream is then the token's to change and delete.
	if w := e.do(req{method: "DELETE", path: "/api/v1/upstreams/team-a:new", token: teamAToken}); w.Code/100 != 2 {
		t.Errorf("delete own: %d %s", w.Code, w.Body)
	}
	var subjects []string
	for _, en := range e.logs.All() {
		m := en.ContextMap()
		subjects = append(subjects, fmt.Sprint(m["upstream"], "/", m["status"]))
	}
	for _, want := range []string{"team-a:new/201", "team-b:x/403", "team-ab:x/403"} {
		if !slices.Contains(subjects, want) {
			t.Errorf("audit lacks %s: %v", want, subjects)
		}
	}
}
