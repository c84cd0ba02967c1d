package cors

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func provisioned(t *testing.T, config string) *CORS {
	t.Helper()
	c := new(CORS)
	if err := json.Unmarshal([]byte(config), c); err != nil {
		t.Fatalf("decoding %s: %v", config, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := c.Provision(ctx); err != nil {
		t.Fatalf("provisioning %s: %v", config, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validating %s: %v", config, err)
	}
	return c
}

// recordingNext is a next handler that records whether it ran. It sets
// CORS headers of its own, like an upstream that handles CORS itself.
type recordingNext struct {
	called bool
	err    error
}

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, _ *http.Request) error {
	n.called = true
	if n.err != nil {
		return n.err
	}
	w.Header().Add("Access-Control-Allow-Origin", "*")
	w.Header().Add("Access-Control-Allow-Credentials", "true")
	w.Header().Set("X-Upstream", "1")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("upstream"))
	return nil
}

const (
	acao = "Access-Control-Allow-Origin"
	acac = "Access-Control-Allow-Credentials"
	acam = "Access-Control-Allow-Methods"
	acah = "Access-Control-Allow-Headers"
	aceh = "Access-Control-Expose-Headers"
	acma = "Access-Control-Max-Age"

	preflightVary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
)

func TestServeHTTP(t *testing.T) {
	const exact = `{"allowed_origins":["https://app.example.com","https://*.example.org"]}`
	for _, tc := range []struct {
		name       string
		config     string
		method     string
		headers    map[string]string
		nextErr    error
		wantNext   bool
		wantStatus int               // response status, or the HandlerError status
		wantHeader map[string]string // "" means absent
	}{
		{
			name:       "no origin passes through untouched",
			config:     exact,
			method:     http.MethodGet,
			wantNext:   true,
			wantStatus: http.StatusOK,
			wantHeader: map[string]string{acao: "*", acac: "true", "Vary": ""},
		},
		{
			name:       "no origin preflight-looking request passes through",
			config:     exact,
			method:     http.MethodOptions,
			headers:    map[string]string{"Access-Control-Request-Method": "PUT"},
			wantNext:   true,
			wantStatus: http.StatusOK,
		},
		{
			name:   "preflight from allowed origin",
			config: exact,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                         "https://app.example.com",
				"Access-Control-Request-Method":  "PUT",
				"Access-Control-Request-Headers": "X-Custom, content-type",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{
				acao:   "https://app.example.com",
				acac:   "",
				acam:   "GET, POST, PUT, PATCH, DELETE, OPTIONS",
				acah:   "x-custom, content-type",
				acma:   "86400",
				"Vary": preflightVary,
			},
		},
		{
			name:   "preflight from wildcard origin without requested headers",
			config: exact,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://a.b.example.org",
				"Access-Control-Request-Method": "DELETE",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acao: "https://a.b.example.org", acah: "", "Vary": preflightVary},
		},
		{
			name:   "preflight from disallowed origin",
			config: exact,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://evil.example.net",
				"Access-Control-Request-Method": "GET",
			},
			wantStatus: http.StatusForbidden,
			wantHeader: map[string]string{acao: "", acam: "", "Vary": preflightVary},
		},
		{
			name:   "preflight from the bare wildcard domain is disallowed",
			config: exact,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://example.org",
				"Access-Control-Request-Method": "GET",
			},
			wantStatus: http.StatusForbidden,
		},
		{
			name:   "preflight asking for a disallowed method",
			config: `{"allowed_origins":["https://app.example.com"],"allowed_methods":["get","put"]}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://app.example.com",
				"Access-Control-Request-Method": "DELETE",
			},
			wantStatus: http.StatusForbidden,
			wantHeader: map[string]string{acao: ""},
		},
		{
			name:   "preflight asking for a safelisted method is allowed",
			config: `{"allowed_origins":["https://app.example.com"],"allowed_methods":["put"]}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://app.example.com",
				"Access-Control-Request-Method": "HEAD",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acam: "PUT"},
		},
		{
			name:   "preflight asking for a disallowed header",
			config: `{"allowed_origins":["*"],"allowed_headers":["X-Custom","Content-Type"]}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                         "https://app.example.com",
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": "x-custom,authorization",
			},
			wantStatus: http.StatusForbidden,
		},
		{
			name:   "preflight with configured headers and any origin",
			config: `{"allowed_origins":["*"],"allowed_headers":["X-Custom","Content-Type"],"max_age":"10m"}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                         "https://app.example.com",
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": "content-type",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acao: "*", acah: "X-Custom, Content-Type", acma: "600"},
		},
		{
			name:   "preflight with * headers reflects the request",
			config: `{"allowed_origins":["*"],"allowed_headers":["*"],"max_age":"-1s"}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                         "https://app.example.com",
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": "authorization",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acah: "authorization", acma: ""},
		},
		{
			name:   "preflight with credentials never answers *",
			config: `{"allowed_origins":["https://*.example.com"],"allow_credentials":true}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://app.example.com",
				"Access-Control-Request-Method": "PATCH",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acao: "https://app.example.com", acac: "true"},
		},
		{
			name:   "* does not allow the null origin",
			config: `{"allowed_origins":["*"]}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "null",
				"Access-Control-Request-Method": "GET",
			},
			wantStatus: http.StatusForbidden,
		},
		{
			name:   "explicit null origin",
			config: `{"allowed_origins":["null"]}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "null",
				"Access-Control-Request-Method": "GET",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acao: "null"},
		},
		{
			name:   "preflight with max_age 0 disables caching",
			config: `{"allowed_origins":["*"],"max_age":"0s"}`,
			method: http.MethodOptions,
			headers: map[string]string{
				"Origin":                        "https://app.example.com",
				"Access-Control-Request-Method": "GET",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{acma: "0"},
		},
		{
			name:       "actual request from allowed origin",
			config:     `{"allowed_origins":["https://app.example.com"],"allow_credentials":true,"exposed_headers":["X-Total","X-Page"]}`,
			method:     http.MethodGet,
			headers:    map[string]string{"Origin": "https://APP.example.com"},
			wantNext:   true,
			wantStatus: http.StatusOK,
			wantHeader: map[string]string{
				acao: "https://APP.example.com", acac: "true", aceh: "X-Total, X-Page",
				"Vary": "Origin", acam: "", "X-Upstream": "1",
			},
		},
		{
			name:       "actual request without credentials drops the upstream's credentials header",
			config:     `{"allowed_origins":["*"]}`,
			method:     http.MethodPost,
			headers:    map[string]string{"Origin": "https://app.example.com"},
			wantNext:   true,
			wantStatus: http.StatusOK,
			wantHeader: map[string]string{acao: "*", acac: "", aceh: "", "Vary": "Origin"},
		},
		{
			name:       "OPTIONS without Access-Control-Request-Method is an actual request",
			config:     exact,
			method:     http.MethodOptions,
			headers:    map[string]string{"Origin": "https://app.example.com"},
			wantNext:   true,
			wantStatus: http.StatusOK,
			wantHeader: map[string]string{acao: "https://app.example.com"},
		},
		{
			name:       "actual request from disallowed origin",
			config:     exact,
			method:     http.MethodGet,
			headers:    map[string]string{"Origin": "https://evil.example.net"},
			wantNext:   true,
			wantStatus: http.StatusOK,
			// the upstream's own headers are left alone; none are added
			wantHeader: map[string]string{acao: "*", aceh: "", "Vary": "Origin"},
		},
		{
			name:       "failing next handler still gets CORS headers",
			config:     exact,
			method:     http.MethodGet,
			headers:    map[string]string{"Origin": "https://app.example.com"},
			nextErr:    caddyhttp.Error(http.StatusBadGateway, errors.New("upstream down")),
			wantNext:   true,
			wantStatus: http.StatusBadGateway,
			wantHeader: map[string]string{acao: "https://app.example.com", "Vary": "Origin"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := provisioned(t, tc.config)
			req := httptest.NewRequest(tc.method, "/resource", nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			next := &recordingNext{err: tc.nextErr}
			err := c.ServeHTTP(rec, req, next)

			status := rec.Code
			if err != nil {
				var herr caddyhttp.HandlerError
				if !errors.As(err, &herr) {
					t.Fatalf("unexpected error %v", err)
				}
				status = herr.StatusCode
			}
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d (err %v)", status, tc.wantStatus, err)
			}
			if next.called != tc.wantNext {
				t.Errorf("next called = %v, want %v", next.called, tc.wantNext)
			}
			for field, want := range tc.wantHeader {
				got := strings.Join(rec.Header().Values(field), "|")
				if got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
		})
	}
}

func TestOriginMatching(t *testing.T) {
	m, err := compileOrigins([]string{"https://App.Example.com/", "https://*.example.org", "http://*.local.test:8080"})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://app.example.com":        true,
		"HTTPS://APP.EXAMPLE.COM":        true,
		"http://app.example.com":         false,
		"https://app.example.com:8443":   false,
		"https://x.app.example.com":      false,
		"https://a.example.org":          true,
		"https://a.b.example.org":        true,
		"https://example.org":            false,
		"https://.example.org":           false,
		"https://a..example.org":         false,
		"https://evil.com/.example.org":  false,
		"https://evil.com?.example.org":  false,
		"https://a.example.org:8443":     false,
		"https://a.example.org.evil.com": false,
		"http://a.example.org":           false,
		"http://a.local.test:8080":       true,
		"http://a.local.test":            false,
		"null":                           false,
		"":                               false,
	} {
		if got, viaAny := m.match(origin); got != want || viaAny {
			t.Errorf("match(%q) = %v (viaAny %v), want %v", origin, got, viaAny, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		config  string
		wantErr string
	}{
		{`{}`, "allowed_origins: at least one origin"},
		{`{"allowed_origins":["example.com"]}`, `allowed_origins 0 ("example.com"): not an origin`},
		{`{"allowed_origins":["https://example.com/path"]}`, `not an origin`},
		{`{"allowed_origins":["https://ex ample.com"]}`, `not an origin`},
		{`{"allowed_origins":["*.example.com"]}`, `a wildcard origin must look like`},
		{`{"allowed_origins":["https://a.*.example.com"]}`, `one leading '*.' label`},
		{`{"allowed_origins":["https://*.*.example.com"]}`, `one leading '*.' label`},
		{`{"allowed_origins":["https://*.ex ample.com"]}`, `not an origin`},
		{`{"allowed_origins":["*"],"allowed_methods":["GET"," "]}`, `allowed_methods 1: empty method`},
		// any origin with credentials: every site could read its
		// visitors' authenticated responses
		{`{"allowed_origins":["*"],"allow_credentials":true}`, `'*' cannot be combined with allow_credentials`},
		{`{"allowed_origins":["https://a.example"," * "],"allow_credentials":true}`, `'*' cannot be combined with allow_credentials`},
		{`{"allowed_origins":["*"],"allowed_headers":[""]}`, `allowed_headers 0: empty header name`},
		{`{"allowed_origins":["*"],"exposed_headers":["X-A",""]}`, `exposed_headers 1: empty header name`},
	} {
		t.Run(tc.config, func(t *testing.T) {
			c := new(CORS)
			if err := json.Unmarshal([]byte(tc.config), c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if err == nil {
				ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
				defer cancel()
				err = c.Provision(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestAddVary(t *testing.T) {
	for _, tc := range []struct {
		existing []string
		want     string
	}{
		{nil, "Origin"},
		{[]string{"Accept-Encoding"}, "Accept-Encoding|Origin"},
		{[]string{"accept-encoding, origin"}, "accept-encoding, origin"},
		{[]string{"*"}, "*"},
	} {
		h := http.Header{}
		for _, v := range tc.existing {
			h.Add("Vary", v)
		}
		addVary(h, "Origin")
		if got := strings.Join(h.Values("Vary"), "|"); got != tc.want {
			t.Errorf("addVary(%q) = %q, want %q", tc.existing, got, tc.want)
		}
	}
}
