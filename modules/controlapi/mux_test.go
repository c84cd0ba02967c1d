package controlapi

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestUncleanPaths: paths the ServeMux would redirect (empty, . and ..
// segments) are answered 404, as unknown paths, after authentication.
func TestUncleanPaths(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/api/v1/upstreams/../routes", "/api/v1/./routes", "//api/v1/routes", "/api/v1/routes/", "/api/v1/upstreams/backend/targets/..", "/api/v1//upstreams"} {
		w := e.do(req{method: "GET", path: p, token: readToken})
		checkError(t, w, http.StatusNotFound, "no such endpoint: ", "")
		if w.Header().Get("Location") != "" {
			t.Errorf("%s: redirected to %s", p, w.Header().Get("Location"))
		}
		if w := e.do(req{method: "GET", path: p}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s unauthenticated: %d", p, w.Code)
		}
	}
	if got := strings.TrimSpace(e.do(req{method: "GET", path: "/api/v1/x", token: readToken}).Body.String()); got != `{"error":"no such endpoint: /api/v1/x"}` {
		t.Errorf("404 body %s", got)
	}
}

// TestPathParameters: parameters are unescaped per segment; an escaped
// slash or dot stays in its segment.
func TestPathParameters(t *testing.T) {
	e := newEnv(t)
	checkError(t, e.do(req{method: "GET", path: "/api/v1/upstreams/a%2Fb", token: readToken}), 404, `upstream "a/b" not found`, "")
	checkError(t, e.do(req{method: "GET", path: "/api/v1/upstreams/%2E%2E", token: readToken}), 404, `upstream ".." not found`, "")
	checkError(t, e.do(req{method: "GET", path: "/api/v1/agents/w%20a%2Ff/status", token: readToken}), 404, `agent "w a/f" not found`, "")
}

// TestOtherMethods: methods no endpoint takes are answered 405 with the
// allowed ones.
func TestOtherMethods(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{"OPTIONS", "HEAD", "TRACE", "CONNECT", "BREW"} {
		w := e.do(req{method: m, path: "/api/v1/upstreams/backend", token: readToken})
		if w.Code != 405 || w.Header().Get("Allow") != "DELETE, GET" {
			t.Errorf("%s: %d Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	if w := e.do(req{method: "OPTIONS", path: "/api/v1/nothing", token: readToken}); w.Code != 404 {
		t.Errorf("OPTIONS on no endpoint: %d", w.Code)
	}
}

func TestServerMethods(t *testing.T) {
	if got := newEnv(t).srv.methods(); !reflect.DeepEqual(got, []string{"DELETE", "GET", "PATCH", "POST", "PUT"}) {
		t.Errorf("%v", got)
	}
	for in, want := range map[string]string{"": "/", "a/b": "/a/b", "/a//b/": "/a/b/", "/a/./b/../c": "/a/c", "/": "/"} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
