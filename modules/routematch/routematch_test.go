package routematch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

// provisioned decodes a JSON matcher configuration and provisions and
// validates it the way Caddy does.
func provisioned(t *testing.T, config string) *MatchRoute {
	t.Helper()
	m := new(MatchRoute)
	if err := json.Unmarshal([]byte(config), m); err != nil {
		t.Fatalf("decoding %s: %v", config, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("provisioning %s: %v", config, err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("validating %s: %v", config, err)
	}
	return m
}

type matchCase struct {
	method  string
	target  string
	host    string
	headers map[string][]string
	want    bool
}

func (c matchCase) request() *http.Request {
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	r := httptest.NewRequest(method, c.target, nil)
	if c.host != "" {
		r.Host = c.host
	}
	for name, vals := range c.headers {
		for _, v := range vals {
			r.Header.Add(name, v)
		}
	}
	return r
}

// testReg is the tests' registry, given to the modules with
// registry.WithRegistry.
var testReg = registry.New()

func TestMatchRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		cases  []matchCase
	}{
		{
			name:   "empty matcher matches everything",
			config: `{}`,
			cases: []matchCase{
				{target: "/", want: true},
				{method: "DELETE", target: "/anything?x=1", host: "whatever.example", want: true},
			},
		},
		{
			name:   "exact path",
			config: `{"path":["/x"]}`,
			cases: []matchCase{
				{target: "/x", want: true},
				{target: "/x/", want: false},
				{target: "/xy", want: false},
				{target: "/X", want: false},
				{target: "/a/../x", want: true},
				{target: "//x", want: true},
				{target: "/%78", want: true},
				{target: "/y", want: false},
			},
		},
		{
			name:   "path prefix is segment aware",
			config: `{"path_prefix":["/api"]}`,
			cases: []matchCase{
				{target: "/api", want: true},
				{target: "/api/", want: true},
				{target: "/api/users/1", want: true},
				{target: "/apiary", want: false},
				{target: "/ap", want: false},
				{target: "/", want: false},
				{target: "/public/../api/secret", want: true},
				{target: "/api/../admin", want: false},
				{target: "/api%2Fx", want: true},
			},
		},
		{
			name:   "path prefix with trailing slash",
			config: `{"path_prefix":["/static/"]}`,
			cases: []matchCase{
				{target: "/static/", want: true},
				{target: "/static/app.js", want: true},
				{target: "/static", want: false},
				{target: "/staticx", want: false},
			},
		},
		{
			name:   "root prefix matches all paths",
			config: `{"path_prefix":["/"]}`,
			cases: []matchCase{
				{target: "/", want: true},
				{target: "/anything/at/all", want: true},
			},
		},
		{
			name:   "path and path_prefix are alternatives",
			config: `{"path":["/exact"],"path_prefix":["/api","/v2"]}`,
			cases: []matchCase{
				{target: "/exact", want: true},
				{target: "/exact/sub", want: false},
				{target: "/api/x", want: true},
				{target: "/v2", want: true},
				{target: "/other", want: false},
			},
		},
		{
			name:   "every path regex must match",
			config: `{"path_regex":["\\.png$","^/img/"]}`,
			cases: []matchCase{
				{target: "/img/a.png", want: true},
				{target: "/img/a.jpg", want: false},
				{target: "/other/a.png", want: false},
			},
		},
		{
			name:   "path regex is unanchored and combines with the path group",
			config: `{"path_prefix":["/api"],"path_regex":["v[0-9]+"]}`,
			cases: []matchCase{
				{target: "/api/v2/users", want: true},
				{target: "/api/users", want: false},
				{target: "/other/v2", want: false},
			},
		},
		{
			name:   "hosts",
			config: `{"host":["a.com","*.b.com","Mixed.Example.","::1","[2001:db8::1]"]}`,
			cases: []matchCase{
				{host: "a.com", target: "/", want: true},
				{host: "A.COM:8080", target: "/", want: true},
				{host: "a.com.", target: "/", want: true},
				{host: "x.a.com", target: "/", want: false},
				{host: "x.b.com", target: "/", want: true},
				{host: "x.y.b.com:443", target: "/", want: true},
				{host: "b.com", target: "/", want: false},
				{host: "xb.com", target: "/", want: false},
				{host: "mixed.example", target: "/", want: true},
				{host: "[::1]:8080", target: "/", want: true},
				{host: "[::1]", target: "/", want: true},
				{host: "[2001:db8::1]:443", target: "/", want: true},
				{host: "[2001:db8::2]:443", target: "/", want: false},
				{host: "c.com", target: "/", want: false},
			},
		},
		{
			name:   "host regular expressions are anchored",
			config: `{"host":["api[0-9]+\\.example\\.com","foo.*"]}`,
			cases: []matchCase{
				{host: "api1.example.com", target: "/", want: true},
				{host: "API22.example.com:8443", target: "/", want: true},
				{host: "api.example.com", target: "/", want: false},
				{host: "xapi1.example.com", target: "/", want: false},
				{host: "api1.example.com.evil.net", target: "/", want: false},
				{host: "foo.bar", target: "/", want: true},
				{host: "xfoo", target: "/", want: false},
			},
		},
		{
			name:   "invalid host regular expression is an exact host",
			config: `{"host":["weird[host"]}`,
			cases: []matchCase{
				{host: "weird[host", target: "/", want: true},
				{host: "weirdhost", target: "/", want: false},
			},
		},
		{
			name:   "headers",
			config: `{"header":[{"name":"X-A","value":"v"},{"name":"x-b"}]}`,
			cases: []matchCase{
				{target: "/", headers: map[string][]string{"X-A": {"v"}, "X-B": {""}}, want: true},
				{target: "/", headers: map[string][]string{"X-A": {"w", "v"}, "X-B": {"1"}}, want: true},
				{target: "/", headers: map[string][]string{"X-A": {"V"}, "X-B": {"1"}}, want: false},
				{target: "/", headers: map[string][]string{"X-A": {"v, w"}, "X-B": {"1"}}, want: false},
				{target: "/", headers: map[string][]string{"X-A": {"v"}}, want: false},
				{target: "/", headers: map[string][]string{"X-B": {"1"}}, want: false},
			},
		},
		{
			name:   "empty header value must be present and empty",
			config: `{"header":[{"name":"X-Empty","value":""}]}`,
			cases: []matchCase{
				{target: "/", headers: map[string][]string{"X-Empty": {""}}, want: true},
				{target: "/", headers: map[string][]string{"X-Empty": {"x"}}, want: false},
				{target: "/", want: false},
			},
		},
		{
			name:   "host and transfer-encoding header fields",
			config: `{"header":[{"name":"Host","value":"h.example"}]}`,
			cases: []matchCase{
				{host: "h.example", target: "/", want: true},
				{host: "other.example", target: "/", want: false},
			},
		},
		{
			name:   "methods",
			config: `{"method":["get","Post"]}`,
			cases: []matchCase{
				{method: "GET", target: "/", want: true},
				{method: "POST", target: "/", want: true},
				{method: "DELETE", target: "/", want: false},
			},
		},
		{
			name:   "query parameters",
			config: `{"query":[{"name":"q","value":"1"},{"name":"flag"}]}`,
			cases: []matchCase{
				{target: "/?q=1&flag", want: true},
				{target: "/?q=2&q=1&flag=", want: true},
				{target: "/?q=%31&flag=yes", want: true},
				{target: "/?q=2&flag", want: false},
				{target: "/?q=1", want: false},
				{target: "/?flag", want: false},
				{target: "/?Q=1&flag", want: false},
				{target: "/?q=1&flag&bad=%zz", want: false},
			},
		},
		{
			name: "all groups combined",
			config: `{"path":["/x"],"path_prefix":["/api"],"path_regex":["^/"],"host":["a.com"],
				"header":[{"name":"X-A","value":"v"}],"method":["GET"],"query":[{"name":"q"}]}`,
			cases: []matchCase{
				{target: "/api/1?q", host: "a.com", headers: map[string][]string{"X-A": {"v"}}, want: true},
				{target: "/x?q", host: "a.com", headers: map[string][]string{"X-A": {"v"}}, want: true},
				{target: "/y?q", host: "a.com", headers: map[string][]string{"X-A": {"v"}}, want: false},
				{target: "/x?q", host: "b.com", headers: map[string][]string{"X-A": {"v"}}, want: false},
				{target: "/x?q", host: "a.com", want: false},
				{method: "POST", target: "/x?q", host: "a.com", headers: map[string][]string{"X-A": {"v"}}, want: false},
				{target: "/x", host: "a.com", headers: map[string][]string{"X-A": {"v"}}, want: false},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := provisioned(t, tc.config)
			for _, c := range tc.cases {
				r := c.request()
				got, err := m.MatchWithError(r)
				if err != nil {
					t.Errorf("%s %s (host %q): unexpected error: %v", r.Method, c.target, r.Host, err)
				}
				if got != c.want {
					t.Errorf("%s %s (host %q, headers %v): got match=%v, want %v",
						r.Method, c.target, r.Host, c.headers, got, c.want)
				}
				if m.Match(r) != got {
					t.Errorf("%s %s: Match and MatchWithError disagree", r.Method, c.target)
				}
			}
		})
	}
}

func TestMatchRouteOptionsAsterisk(t *testing.T) {
	m := provisioned(t, `{"path_prefix":["/"]}`)
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.URL.Path = "*"
	if m.Match(r) {
		t.Error("OPTIONS * must not match a path prefix of /")
	}
	r.URL.Path = ""
	if !m.Match(r) {
		t.Error("an empty path is the root path and must match a prefix of /")
	}
}

// TestMatchRouteConnect checks that a CONNECT to an authority (a tunnel
// request, without a path) matches only a route that lists the method
// CONNECT, and then no path condition, while an HTTP/2 extended CONNECT
// (which has a path) and an empty absolute-form path match as before.
func TestMatchRouteConnect(t *testing.T) {
	connect := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Method, r.Host, r.URL.Path, r.RequestURI = http.MethodConnect, "h.test:443", "", "h.test:443"
		return r
	}
	for _, tc := range []struct {
		config string
		want   bool
	}{
		{`{"path_prefix":["/"]}`, false},
		{`{"host":["h.test"]}`, false},
		{`{"header":[{"name":"X-A","value":"1"}]}`, false},
		{`{"path_regex":[".*"]}`, false},
		{`{"method":["GET","POST"]}`, false},
		{`{"method":["connect"]}`, true},
		{`{"method":["CONNECT"],"host":["h.test"]}`, true},
		{`{"method":["CONNECT"],"path_prefix":["/"]}`, false},
	} {
		r := connect()
		r.Header.Set("X-A", "1")
		if got := provisioned(t, tc.config).Match(r); got != tc.want {
			t.Errorf("%s: CONNECT h.test:443 matched %v, want %v", tc.config, got, tc.want)
		}
	}
	// extended CONNECT (RFC 8441, WebSockets over HTTP/2) has a path
	r := connect()
	r.URL.Path = "/ws"
	if !provisioned(t, `{"path_prefix":["/ws"]}`).Match(r) {
		t.Error("an extended CONNECT with a path did not match its path prefix")
	}
	// absolute-form GET http://h.test has an empty path: the root
	r = httptest.NewRequest(http.MethodGet, "http://h.test", nil)
	r.URL.Path = ""
	if !provisioned(t, `{"path_prefix":["/"],"host":["h.test"]}`).Match(r) {
		t.Error("GET http://h.test did not match the prefix /")
	}
	if RequestPath(connect()) != "" {
		t.Error("the path of a CONNECT to an authority is not empty")
	}
}

func TestMatchRouteTransferEncodingHeader(t *testing.T) {
	m := provisioned(t, `{"header":[{"name":"Transfer-Encoding","value":"chunked"}]}`)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if m.Match(r) {
		t.Error("matched a request without Transfer-Encoding")
	}
	r.TransferEncoding = []string{"chunked"}
	if !m.Match(r) {
		t.Error("did not match a chunked request")
	}
}

func TestMatchRouteConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		config  string
		wantErr string
	}{
		{`{"path_regex":["ok","("]}`, `path_regex 1 ("(")`},
		{`{"path":["x"]}`, `path "x": must begin with '/'`},
		{`{"path_prefix":["api"]}`, `path_prefix "api": must begin with '/'`},
		{`{"host":[" "]}`, `host 0: empty host`},
		{`{"header":[{"value":"v"}]}`, `header 0: missing name`},
		{`{"method":["GET",""]}`, `method 1: empty method`},
		{`{"query":[{"name":"a"},{"value":"v"}]}`, `query 1: missing name`},
	} {
		t.Run(tc.config, func(t *testing.T) {
			m := new(MatchRoute)
			if err := json.Unmarshal([]byte(tc.config), m); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := m.Provision(ctx)
			if err == nil {
				err = m.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateWithoutProvision(t *testing.T) {
	m := &MatchRoute{PathRegex: []string{"[a-"}}
	err := m.Validate()
	if err == nil || !strings.Contains(err.Error(), `path_regex 0 ("[a-")`) {
		t.Fatalf("got %v, want an error naming the invalid path_regex", err)
	}
	m = &MatchRoute{PathRegex: []string{"^/ok$"}}
	if err := m.Validate(); err != nil {
		t.Fatalf("valid regexp: %v", err)
	}
}

func TestHasPathPrefix(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		want         bool
	}{
		{"/x", "/x", true},
		{"/x/", "/x", true},
		{"/x/y", "/x", true},
		{"/xy", "/x", false},
		{"/", "/x", false},
		{"/x", "/x/", false},
		{"/x/", "/x/", true},
		{"/anything", "/", true},
		{"/a/b/c", "/a/b", true},
		{"/a/bc", "/a/b", false},
	} {
		if got := hasPathPrefix(tc.path, tc.prefix); got != tc.want {
			t.Errorf("hasPathPrefix(%q, %q) = %v, want %v", tc.path, tc.prefix, got, tc.want)
		}
	}
}

func TestCompileHostPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		kind    hostKind
		wantErr bool
	}{
		{"example.com", hostExact, false},
		{"*.example.com", hostWildcard, false},
		{"*.Example.COM.", hostWildcard, false},
		{"[::1]", hostExact, false},
		{"[a-z]+\\.com", hostRegexp, false},
		{"*.*.example.com", hostExact, true}, // `(?:*` does not compile: exact fallback
		{"a*b", hostRegexp, false},
		{"[unclosed", hostExact, true},
	} {
		p, err := compileHostPattern(tc.pattern)
		if p.kind != tc.kind || (err != nil) != tc.wantErr {
			t.Errorf("%q: got kind %v err %v; want kind %v, error %v", tc.pattern, p.kind, err, tc.kind, tc.wantErr)
		}
	}
	p, _ := compileHostPattern("*.Example.COM.")
	if !p.match("a.example.com") || p.match("example.com") {
		t.Errorf("normalized wildcard does not behave: %+v", p)
	}
}

func TestRequestHost(t *testing.T) {
	for host, want := range map[string]string{
		"Example.COM":      "example.com",
		"example.com.":     "example.com",
		"example.com:8080": "example.com",
		"[::1]:8080":       "::1",
		"[::1]":            "::1",
		"127.0.0.1:80":     "127.0.0.1",
		"":                 "",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		if got := requestHost(r); got != want {
			t.Errorf("requestHost(%q) = %q, want %q", host, got, want)
		}
	}
}

// TestSkipWhenDisabled: a disabled route's matcher stops matching, so the
// request falls through to the next route.
func TestSkipWhenDisabled(t *testing.T) {
	testReg.Reconcile(nil, []string{"skip-route"})
	m := &MatchRoute{PathPrefix: []string{"/"}, SkipWhenDisabled: "skip-route"}
	if err := m.Provision(registry.WithRegistry(caddy.Context{Context: context.Background()}, testReg)); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/x", nil)
	if ok, _ := m.MatchWithError(r); !ok {
		t.Fatal("enabled route does not match")
	}
	if err := testReg.SetRouteEnabled("skip-route", false); err != nil {
		t.Fatal(err)
	}
	defer testReg.SetRouteEnabled("skip-route", true)
	if ok, _ := m.MatchWithError(r); ok {
		t.Fatal("disabled route still matches")
	}
}
