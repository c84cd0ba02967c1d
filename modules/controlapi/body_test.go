package controlapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// newTestRequest returns a request with a JSON body (when given) and the
// admin token.
func newTestRequest(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer "+adminToken)
	return r
}

// serve serves r.
func serve(e *testEnv, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

// bodyRoute is an endpoint that takes a JSON body, with the name of a
// field it accepts.
type bodyRoute struct {
	method, path, field string
	optional            bool
}

// bodyRoutes returns the endpoints that take a JSON body.
func bodyRoutes() []bodyRoute {
	return []bodyRoute{
		{"POST", "/api/v1/upstreams", "id", false},
		{"PUT", "/api/v1/upstreams/backend/targets", "targets", false},
		{"POST", "/api/v1/upstreams/backend/targets", "address", false},
		{"PATCH", "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080", "weight", false},
		{"POST", "/api/v1/upstreams/backend/drain", "timeout_secs", true},
		{"POST", "/api/v1/upstreams/backend/targets/10.0.0.1%3A8080/drain", "timeout_secs", true},
		{"PUT", "/api/v1/routes/api/enabled", "enabled", false},
	}
}

func TestMalformedBodies(t *testing.T) {
	bodies := []struct {
		name, body, msg, field string
	}{
		{"syntax", `{"a":`, "invalid JSON", ""},
		{"syntax mid", `{"a" 1}`, "invalid JSON at byte", ""},
		{"not an object", `[1,2]`, "must be a JSON object", ""},
		{"string", `"x"`, "must be a JSON object", ""},
		{"null", `null`, "must be a JSON object", ""},
		{"trailing data", `{} {}`, "unexpected data after the JSON value", ""},
		{"trailing garbage", `{}x`, "unexpected data after the JSON value", ""},
		{"unknown field", `{"bogus":1}`, `unknown field "bogus"`, "bogus"},
		{"case-folded field", `{"ID":"x","Enabled":true,"Weight":1,"Address":"a:1","Targets":[],"Timeout_secs":1}`, "unknown field", ""},
	}
	for _, rt := range bodyRoutes() {
		for _, b := range bodies {
			t.Run(rt.method+" "+rt.path+" "+b.name, func(t *testing.T) {
				e := newEnv(t)
				w := serve(e, newTestRequest(rt.method, rt.path, b.body))
				if b.name == "case-folded field" {
					if w.Code != 400 || !strings.Contains(w.Body.String(), "unknown field") {
						t.Errorf("%d %s", w.Code, w.Body)
					}
					return
				}
				checkError(t, w, 400, b.msg, b.field)
			})
		}
		t.Run(rt.method+" "+rt.path+" duplicate", func(t *testing.T) {
			e := newEnv(t)
			body := validBody(rt.method, patternOf(e, rt.method, rt.path))
			dup := strings.Replace(body, "{", `{"`+rt.field+`":`+fieldValue(rt.field)+`,`, 1)
			checkError(t, serve(e, newTestRequest(rt.method, rt.path, dup)), 400, "given twice", rt.field)
		})
		t.Run(rt.method+" "+rt.path+" empty", func(t *testing.T) {
			e := newEnv(t)
			w := serve(e, newTestRequest(rt.method, rt.path, ""))
			if rt.optional {
				if w.Code != 200 {
					t.Errorf("%d %s", w.Code, w.Body)
				}
				return
			}
			checkError(t, w, 400, "the request body is empty", "")
		})
		t.Run(rt.method+" "+rt.path+" too large", func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Hooks) { c.MaxBodyBytes = 64 })
			big := `{"` + rt.field + `":"` + strings.Repeat("a", 100) + `"}`
			checkError(t, serve(e, newTestRequest(rt.method, rt.path, big)), 413, "larger than 64 bytes", "")
			// Without Content-Length (chunked).
			r := newTestRequest(rt.method, rt.path, big)
			r.ContentLength = -1
			r.Body = readerOnly{strings.NewReader(big)}
			checkError(t, serve(e, r), 413, "larger than 64 bytes", "")
		})
		t.Run(rt.method+" "+rt.path+" content type", func(t *testing.T) {
			e := newEnv(t)
			r := newTestRequest(rt.method, rt.path, `{}`)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			checkError(t, serve(e, r), 415, "application/json", "")
			r = newTestRequest(rt.method, rt.path, validBody(rt.method, patternOf(e, rt.method, rt.path)))
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			if w := serve(e, r); w.Code >= 300 {
				t.Errorf("%d %s", w.Code, w.Body)
			}
		})
	}
}

// readerOnly hides everything of a reader but Read.
type readerOnly struct{ r *strings.Reader }

// Read reads.
func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// Close does nothing.
func (r readerOnly) Close() error { return nil }

// patternOf returns the pattern of the route serving method path.
func patternOf(e *testEnv, method, path string) string {
	ep, _ := e.srv.lookup(httptest.NewRequest(method, path, nil))
	if ep == nil {
		return ""
	}
	return ep.pattern
}

// fieldValue returns a valid value of a field.
func fieldValue(field string) string {
	switch field {
	case "id":
		return `"dup"`
	case "targets":
		return `[]`
	case "address":
		return `"10.0.0.8:80"`
	case "enabled":
		return `true`
	}
	return `1`
}

func TestNestedUnknownField(t *testing.T) {
	e := newEnv(t)
	w := serve(e, newTestRequest("PUT", "/api/v1/upstreams/backend/targets", `{"targets":[{"address":"10.0.0.1:80"},{"address":"10.0.0.2:80","state":"draining"}]}`))
	checkError(t, w, 400, `unknown field "targets[1].state"`, "targets[1].state")
	w = serve(e, newTestRequest("POST", "/api/v1/upstreams", `{"id":"x","targets":[{"address":"10.0.0.1:80","address":"10.0.0.2:80"}]}`))
	checkError(t, w, 400, "given twice", "targets[0].address")
}

func TestRouteErrors(t *testing.T) {
	e := newEnv(t)
	checkError(t, e.do(req{method: "PUT", path: "/api/v1/routes/nope/enabled", token: operateToken, body: `{"enabled":false}`}), 404, `route "nope" not found`, "")
	checkError(t, e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{}`}), 400, "enabled is required", "enabled")
	checkError(t, e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{"enabled":"no"}`}), 400, "true or false", "enabled")
	checkError(t, e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{"enabled":false}`, header: map[string]string{"If-Match": `"3"`}}), 400, "routes have no version", "If-Match")
	checkError(t, e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{"enabled":false}`, header: map[string]string{"If-Match": `"3`}}), 400, "If-Match must be", "If-Match")
	if !e.reg.RouteFlag("api").Enabled() {
		t.Fatal("route disabled by a refused call")
	}
	w := e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{"enabled":false}`, header: map[string]string{"If-Match": "*"}})
	if w.Code != 200 || e.reg.RouteFlag("api").Enabled() {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{"enabled":true}`})
	if w.Code != 200 || !e.reg.RouteFlag("api").Enabled() {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := strings.TrimSpace(e.do(req{method: "GET", path: "/api/v1/routes", token: readToken}).Body.String()); got != `[{"id":"api","enabled":true},{"id":"web","enabled":true}]` {
		t.Errorf("routes %s", got)
	}
}

func TestTooManyTargets(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Hooks) { c.MaxBodyBytes = 8 << 20 })
	var b strings.Builder
	b.WriteString(`{"targets":[`)
	for i := 0; i <= maxTargets; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"address":"h%d:80"}`, i)
	}
	b.WriteString(`]}`)
	checkError(t, serve(e, newTestRequest("PUT", "/api/v1/upstreams/backend/targets", b.String())), 400, "at most 10000", "targets")
}
