package controlapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/upstreamview"
	"github.com/sentinel-proxy/sentinel/registry"
)

func TestHappyPaths(t *testing.T) {
	tests := []struct {
		name   string
		req    req
		status int
		check  func(t *testing.T, e *testEnv, w string)
	}{
		{"list upstreams", req{method: "GET", path: "/api/v1/upstreams"}, 200, func(t *testing.T, e *testEnv, body string) {
			for _, s := range []string{`"id":"backend"`, `"id":"extra"`, `"origin":"api"`, `"address":"10.0.0.1:8080","weight":2,"state":"active","origin":"config","healthy":true,"in_flight":0,"requests":0,"failures":0`} {
				if !strings.Contains(body, s) {
					t.Errorf("list lacks %s: %s", s, body)
				}
			}
		}},
		{"get upstream", req{method: "GET", path: "/api/v1/upstreams/backend"}, 200, nil},
		{"create upstream", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"fresh","targets":[{"address":"10.9.0.1:80","weight":4},{"address":"[2001:db8::1]:81"},{"address":"svc.internal:443"}]}`}, 201, func(t *testing.T, e *testEnv, body string) {
			u, ok := e.reg.Get("fresh")
			if !ok || len(u.Targets) != 3 || u.Targets[0].Weight != 4 || u.Targets[1].Weight != 1 || u.Origin != registry.OriginAPI {
				t.Errorf("registry: %+v", u)
			}
		}},
		{"create upstream without targets", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"bare"}`}, 201, nil},
		{"delete api upstream", req{method: "DELETE", path: "/api/v1/upstreams/extra"}, 204, func(t *testing.T, e *testEnv, body string) {
			if _, ok := e.reg.Get("extra"); ok || body != "" {
				t.Errorf("extra still there, or body %q", body)
			}
		}},
		{"replace targets", req{method: "PUT", path: "/api/v1/upstreams/backend/targets", body: `{"targets":[{"address":"10.0.0.2:8080","weight":7},{"address":"10.0.0.3:8080"}]}`}, 200, func(t *testing.T, e *testEnv, body string) {
			u, _ := e.reg.Get("backend")
			if len(u.Targets) != 2 || u.Targets[0].Weight != 7 || u.Targets[0].Origin != registry.OriginConfig || u.Targets[1].Origin != registry.OriginAPI {
				t.Errorf("registry: %+v", u.Targets)
			}
		}},
		{"replace targets with none", req{method: "PUT", path: "/api/v1/upstreams/solo/targets", body: `{"targets":[]}`}, 200, nil},
		{"add target", req{method: "POST", path: "/api/v1/upstreams/backend/targets", body: `{"address":"10.0.0.9:8080","weight":3}`}, 201, func(t *testing.T, e *testEnv, body string) {
			u, _ := e.reg.Get("backend")
			if len(u.Targets) != 3 || u.Targets[2].Address != "10.0.0.9:8080" || u.Targets[2].Weight != 3 {
				t.Errorf("registry: %+v", u.Targets)
			}
		}},
		{"patch weight", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.2%3A8080", body: `{"weight":9}`}, 200, func(t *testing.T, e *testEnv, body string) {
			u, _ := e.reg.Get("backend")
			if u.Targets[1].Weight != 9 {
				t.Errorf("registry: %+v", u.Targets)
			}
		}},
		{"patch state", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.2:8080", body: `{"state":"draining"}`}, 200, func(t *testing.T, e *testEnv, body string) {
			if !strings.Contains(body, `"address":"10.0.0.2:8080","weight":1,"state":"drained"`) {
				t.Errorf("body %s", body)
			}
		}},
		{"remove target", req{method: "DELETE", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080"}, 200, func(t *testing.T, e *testEnv, body string) {
			u, _ := e.reg.Get("backend")
			if len(u.Targets) != 1 || u.Targets[0].Address != "10.0.0.2:8080" {
				t.Errorf("registry: %+v", u.Targets)
			}
		}},
		{"drain upstream", req{method: "POST", path: "/api/v1/upstreams/backend/drain"}, 200, func(t *testing.T, e *testEnv, body string) {
			u, _ := e.reg.Get("backend")
			for _, tg := range u.Targets {
				if tg.State != registry.StateDraining || !tg.DrainDeadline.IsZero() {
					t.Errorf("target %+v", tg)
				}
			}
		}},
		{"drain target with timeout", req{method: "POST", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080/drain", body: `{"timeout_secs":60}`}, 200, func(t *testing.T, e *testEnv, body string) {
			u, _ := e.reg.Get("backend")
			if d := time.Until(u.Targets[0].DrainDeadline); d < 50*time.Second || d > 61*time.Second || u.Targets[1].State != registry.StateActive {
				t.Errorf("targets %+v", u.Targets)
			}
			if !strings.Contains(body, `"drain_deadline":"`) {
				t.Errorf("body %s", body)
			}
		}},
		{"drain with empty object", req{method: "POST", path: "/api/v1/upstreams/solo/drain", body: `{}`}, 200, nil},
		{"list routes", req{method: "GET", path: "/api/v1/routes"}, 200, func(t *testing.T, e *testEnv, body string) {
			if strings.TrimSpace(body) != `[{"id":"api","enabled":true},{"id":"web","enabled":true}]` {
				t.Errorf("body %s", body)
			}
		}},
		{"disable route", req{method: "PUT", path: "/api/v1/routes/web/enabled", body: `{"enabled":false}`}, 200, func(t *testing.T, e *testEnv, body string) {
			if e.reg.RouteFlag("web").Enabled() || strings.TrimSpace(body) != `{"id":"web","enabled":false}` {
				t.Errorf("flag still on, or body %s", body)
			}
		}},
		{"list agents", req{method: "GET", path: "/api/v1/agents"}, 200, func(t *testing.T, e *testEnv, body string) {
			if strings.TrimSpace(body) != `[{"id":"a1","source":"","transport":"","connected":false,"connections":0,"breaker":"","in_flight":0,"queue":0,"draining":false,"failure_mode":"","events":null,"health":"ready"}]` {
				t.Errorf("body %s", body)
			}
		}},
		{"agent status", req{method: "GET", path: "/api/v1/agents/a1/status"}, 200, nil},
		{"reload", req{method: "POST", path: "/api/v1/config/reload"}, 200, func(t *testing.T, e *testEnv, body string) {
			if strings.TrimSpace(body) != `{"status":"reloaded","config_file":"sentinel.kdl","warnings":null}` {
				t.Errorf("body %s", body)
			}
		}},
		{"validate", req{method: "GET", path: "/api/v1/config/validate"}, 200, func(t *testing.T, e *testEnv, body string) {
			if strings.TrimSpace(body) != `{"valid":true}` {
				t.Errorf("body %s", body)
			}
		}},
		{"openapi", req{method: "GET", path: "/api/v1/openapi.json"}, 200, func(t *testing.T, e *testEnv, body string) {
			if !strings.HasPrefix(body, `{`) || !strings.Contains(body, `"openapi": "3.0.3"`) {
				t.Errorf("body %.100s", body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(_ *Config, h *Hooks) { okHooks(h) })
			tt.req.token = adminToken
			w := e.do(tt.req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body.String())
			}
			if w.Code != http.StatusNoContent {
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			if tt.check != nil {
				tt.check(t, e, w.Body.String())
			}
		})
	}
}

func TestUpstreamETagAndLocation(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "POST", path: "/api/v1/upstreams", token: adminToken, body: `{"id":"new.one_2","targets":[{"address":"10.9.0.1:80"}]}`})
	if w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	u, _ := e.reg.Get("new.one_2")
	if got, want := w.Header().Get("ETag"), fmt.Sprintf(`"%d"`, u.Version); got != want {
		t.Errorf("ETag %q, want %q", got, want)
	}
	if got := w.Header().Get("Location"); got != "/api/v1/upstreams/new.one_2" {
		t.Errorf("Location %q", got)
	}
	v := decodeJSON[upstreamview.Upstream](t, w)
	if v.ID != "new.one_2" || v.Version != u.Version || len(v.Targets) != 1 || v.Targets[0].State != registry.StateActive {
		t.Errorf("view %+v", v)
	}

	g := e.do(req{method: "GET", path: "/api/v1/upstreams/new.one_2", token: readToken})
	if g.Header().Get("ETag") != w.Header().Get("ETag") {
		t.Errorf("GET ETag %q, POST ETag %q", g.Header().Get("ETag"), w.Header().Get("ETag"))
	}
	p := e.do(req{method: "PATCH", path: "/api/v1/upstreams/new.one_2/targets/10.9.0.1:80", token: adminToken, body: `{"weight":2}`, header: map[string]string{"If-Match": g.Header().Get("ETag")}})
	if p.Code != 200 || p.Header().Get("ETag") == g.Header().Get("ETag") || p.Header().Get("ETag") == "" {
		t.Errorf("PATCH %d ETag %q (before %q)", p.Code, p.Header().Get("ETag"), g.Header().Get("ETag"))
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name          string
		req           req
		status        int
		msg, field    string
		wantUnchanged bool
	}{
		{"get unknown", req{method: "GET", path: "/api/v1/upstreams/nope"}, 404, `upstream "nope" not found`, "", false},
		{"create existing config upstream", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"backend"}`}, 409, `upstream "backend" already exists`, "", true},
		{"create existing api upstream", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"extra"}`}, 409, "already exists", "", true},
		{"create bad id", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"a b"}`}, 400, "use letters", "id", true},
		{"create empty id", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":""}`}, 400, "1 to 128", "id", true},
		{"create no id", req{method: "POST", path: "/api/v1/upstreams", body: `{"targets":[]}`}, 400, "id is required", "id", true},
		{"create bad address", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"x","targets":[{"address":"10.0.0.1:80"},{"address":"nope"}]}`}, 400, "must be host:port", "targets[1].address", true},
		{"create duplicate address", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"x","targets":[{"address":"10.0.0.1:80"},{"address":"10.0.0.1:80"}]}`}, 400, "repeats targets[0].address", "targets[1].address", true},
		{"create bad weight", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"x","targets":[{"address":"10.0.0.1:80","weight":0}]}`}, 400, "from 1 to 1048576", "targets[0].weight", true},
		{"create If-Match", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"x"}`, header: map[string]string{"If-Match": "*"}}, 412, "does not exist", "", true},
		{"create If-Match existing", req{method: "POST", path: "/api/v1/upstreams", body: `{"id":"solo"}`, header: map[string]string{"If-Match": "*"}}, 409, "already exists", "", true},
		{"delete config upstream", req{method: "DELETE", path: "/api/v1/upstreams/backend"}, 409, "remove it from the config file", "", true},
		{"delete unknown", req{method: "DELETE", path: "/api/v1/upstreams/nope"}, 404, "not found", "", true},
		{"put targets unknown upstream", req{method: "PUT", path: "/api/v1/upstreams/nope/targets", body: `{"targets":[]}`}, 404, "not found", "", true},
		{"put targets missing", req{method: "PUT", path: "/api/v1/upstreams/backend/targets", body: `{}`}, 400, "targets is required", "targets", true},
		{"put targets not array", req{method: "PUT", path: "/api/v1/upstreams/backend/targets", body: `{"targets":{}}`}, 400, "must be an array", "targets", true},
		{"put target not object", req{method: "PUT", path: "/api/v1/upstreams/backend/targets", body: `{"targets":["10.0.0.1:80"]}`}, 400, "must be a JSON object", "targets[0]", true},
		{"put target no address", req{method: "PUT", path: "/api/v1/upstreams/backend/targets", body: `{"targets":[{"weight":2}]}`}, 400, "targets[0].address is required", "targets[0].address", true},
		{"add existing target", req{method: "POST", path: "/api/v1/upstreams/backend/targets", body: `{"address":"10.0.0.1:8080"}`}, 409, "already has target", "address", true},
		{"add bad target", req{method: "POST", path: "/api/v1/upstreams/backend/targets", body: `{"address":"0.0.0.0:80"}`}, 400, "unspecified", "address", true},
		{"add target string weight", req{method: "POST", path: "/api/v1/upstreams/backend/targets", body: `{"address":"10.0.0.7:80","weight":"2"}`}, 400, "must be an integer", "weight", true},
		{"patch unknown target", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.7%3A80", body: `{"weight":2}`}, 404, "not found", "", true},
		{"patch empty", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080", body: `{}`}, 400, "give weight and/or state", "", true},
		{"patch drained", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080", body: `{"state":"drained"}`}, 400, `state must be "active" or "draining"`, "state", true},
		{"patch state type", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080", body: `{"state":1}`}, 400, "must be a string", "state", true},
		{"patch negative weight", req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080", body: `{"weight":-1}`}, 400, "from 1 to", "weight", true},
		{"remove unknown target", req{method: "DELETE", path: "/api/v1/upstreams/backend/targets/10.0.0.7%3A80"}, 404, "not found", "", true},
		{"drain unknown target", req{method: "POST", path: "/api/v1/upstreams/backend/targets/10.0.0.7%3A80/drain"}, 404, "not found", "", true},
		{"drain unknown upstream", req{method: "POST", path: "/api/v1/upstreams/nope/drain"}, 404, "not found", "", true},
		{"drain negative timeout", req{method: "POST", path: "/api/v1/upstreams/backend/drain", body: `{"timeout_secs":-5}`}, 400, "from 0 to 604800", "timeout_secs", true},
		{"drain float timeout", req{method: "POST", path: "/api/v1/upstreams/backend/drain", body: `{"timeout_secs":1.5}`}, 400, "must be an integer", "timeout_secs", true},
		{"drain huge timeout", req{method: "POST", path: "/api/v1/upstreams/backend/drain", body: `{"timeout_secs":99999999999999999999}`}, 400, "must be an integer", "timeout_secs", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.reg.Upstreams()
			tt.req.token = adminToken
			checkError(t, e.do(tt.req), tt.status, tt.msg, tt.field)
			if tt.wantUnchanged && fmt.Sprint(e.reg.Upstreams()) != fmt.Sprint(before) {
				t.Errorf("the registry changed:\n%v\n%v", before, e.reg.Upstreams())
			}
		})
	}
}

func TestPutTargetsKeepsDrainState(t *testing.T) {
	e := newEnv(t)
	if w := e.do(req{method: "POST", path: "/api/v1/upstreams/backend/targets/10.0.0.1:8080/drain", token: adminToken, body: `{"timeout_secs":120}`}); w.Code != 200 {
		t.Fatal(w.Code, w.Body)
	}
	w := e.do(req{method: "PUT", path: "/api/v1/upstreams/backend/targets", token: adminToken, body: `{"targets":[{"address":"10.0.0.1:8080","weight":4},{"address":"10.0.0.5:8080"}]}`})
	if w.Code != 200 {
		t.Fatal(w.Code, w.Body)
	}
	u, _ := e.reg.Get("backend")
	if len(u.Targets) != 2 || u.Targets[0].State != registry.StateDraining || u.Targets[0].DrainDeadline.IsZero() || u.Targets[0].Weight != 4 || u.Targets[1].State != registry.StateActive {
		t.Errorf("targets %+v", u.Targets)
	}
}

func TestDrainThenDrained(t *testing.T) {
	e := newEnv(t)
	st := e.reg.Stats("10.0.0.1:8080")
	st.Start()
	st.Start()
	w := e.do(req{method: "POST", path: "/api/v1/upstreams/backend/drain", token: operateToken})
	if w.Code != 200 {
		t.Fatal(w.Code, w.Body)
	}
	v := decodeJSON[upstreamview.Upstream](t, w)
	if v.Targets[0].State != registry.StateDraining || v.Targets[0].InFlight != 2 || v.Targets[1].State != registry.StateDrained {
		t.Fatalf("after drain: %+v", v.Targets)
	}
	if p := e.reg.Pool("backend"); len(p.Addresses) != 0 {
		t.Errorf("draining targets still in the pool: %v", p.Addresses)
	}
	st.Done(false)
	st.Done(true)
	v = decodeJSON[upstreamview.Upstream](t, e.do(req{method: "GET", path: "/api/v1/upstreams/backend", token: readToken}))
	if v.Targets[0].State != registry.StateDrained || v.Targets[0].InFlight != 0 || v.Targets[0].Requests != 2 || v.Targets[0].Failures != 1 {
		t.Fatalf("after done: %+v", v.Targets[0])
	}
	// Removal after the drain is one call.
	if w := e.do(req{method: "DELETE", path: "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080", token: adminToken}); w.Code != 200 {
		t.Fatal(w.Code, w.Body)
	}
	// Back to active clears the state.
	w = e.do(req{method: "PATCH", path: "/api/v1/upstreams/backend/targets/10.0.0.2%3A8080", token: operateToken, body: `{"state":"active"}`})
	if v := decodeJSON[upstreamview.Upstream](t, w); w.Code != 200 || len(v.Targets) != 1 || v.Targets[0].State != registry.StateActive {
		t.Errorf("%d %+v", w.Code, v)
	}
}

func TestDrainEmptyUpstream(t *testing.T) {
	e := newEnv(t)
	if _, err := e.reg.CreateUpstream("hollow", nil); err != nil {
		t.Fatal(err)
	}
	w := e.do(req{method: "POST", path: "/api/v1/upstreams/hollow/drain", token: operateToken})
	if v := decodeJSON[upstreamview.Upstream](t, w); w.Code != 200 || len(v.Targets) != 0 {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

func TestIfMatch(t *testing.T) {
	mutations := []struct{ method, path, body string }{
		{"DELETE", "/api/v1/upstreams/extra", ""},
		{"PUT", "/api/v1/upstreams/extra/targets", `{"targets":[]}`},
		{"POST", "/api/v1/upstreams/extra/targets", `{"address":"10.0.2.2:9000"}`},
		{"PATCH", "/api/v1/upstreams/extra/targets/10.0.2.1%3A9000", `{"weight":3}`},
		{"DELETE", "/api/v1/upstreams/extra/targets/10.0.2.1%3A9000", ""},
		{"POST", "/api/v1/upstreams/extra/drain", ""},
		{"POST", "/api/v1/upstreams/extra/targets/10.0.2.1%3A9000/drain", ""},
	}
	for _, m := range mutations {
		t.Run(m.method+" "+m.path, func(t *testing.T) {
			cases := []struct {
				ifMatch string
				status  int
			}{
				{`"999999"`, 412},
				{`W/"%d"`, 412},
				{`"abc"`, 412},
				{`"0%d"`, 412},
				{`12`, 400},
				{`"5`, 400},
				{`"1" "2"`, 400},
				{``, 0},
				{`*`, 0},
				{`"999", "%d"`, 0},
				{`"%d"`, 0},
			}
			for _, c := range cases {
				e := newEnv(t)
				u, _ := e.reg.Get("extra")
				im := c.ifMatch
				if strings.Contains(im, "%d") {
					im = fmt.Sprintf(im, u.Version)
				}
				hdr := map[string]string{}
				if im != "" || c.ifMatch == "" {
					hdr["If-Match"] = im
				}
				w := e.do(req{method: m.method, path: m.path, token: adminToken, body: m.body, header: hdr})
				want := c.status
				if want == 0 {
					want = 200
					if m.method == "DELETE" && !strings.Contains(m.path, "targets") {
						want = 204
					} else if m.method == "POST" && strings.HasSuffix(m.path, "/targets") {
						want = 201
					}
				}
				if w.Code != want {
					t.Errorf("If-Match %q: status %d, want %d: %s", im, w.Code, want, w.Body)
				}
				after, _ := e.reg.Get("extra")
				if c.status != 0 && fmt.Sprint(after) != fmt.Sprint(u) {
					t.Errorf("If-Match %q: the upstream changed", im)
				}
				if c.status == 412 {
					checkError(t, w, 412, "If-Match does not match", "")
					if w.Header().Get("ETag") != etag(u.Version) {
						t.Errorf("412 ETag %q", w.Header().Get("ETag"))
					}
				}
				if c.status == 400 {
					checkError(t, w, 400, "If-Match must be", "If-Match")
				}
			}
		})
	}
}

func TestChangeRetry(t *testing.T) {
	e := newEnv(t)
	c := &call{w: httptest.NewRecorder(), r: httptest.NewRequest("PATCH", "/x", nil)}
	c.r.SetPathValue("id", "extra")
	calls := 0
	u, err := e.srv.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		calls++
		if calls < 3 {
			return nil, fmt.Errorf("raced: %w", registry.ErrConflict)
		}
		return &cur, nil
	})
	if err != nil || calls != 3 || u.ID != "extra" {
		t.Errorf("calls %d, err %v", calls, err)
	}
	calls = 0
	_, err = e.srv.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		calls++
		return nil, fmt.Errorf("raced: %w", registry.ErrConflict)
	})
	if ae := toAPIError(err); ae.status != 412 || calls != conflictRetries+1 {
		t.Errorf("calls %d, err %v", calls, err)
	}
	// With an If-Match that matched, a conflict is not retried.
	cur, _ := e.reg.Get("extra")
	c.r.Header.Set("If-Match", etag(cur.Version))
	calls = 0
	_, err = e.srv.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		calls++
		return nil, fmt.Errorf("raced: %w", registry.ErrConflict)
	})
	if ae := toAPIError(err); ae.status != 412 || calls != 1 {
		t.Errorf("calls %d, err %v", calls, err)
	}
}
