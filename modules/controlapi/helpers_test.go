package controlapi

import (
	"context"
	"encoding/json"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/registry"
)

// The tokens of the test server.
const (
	adminToken   = "adm-7f3c9a1e5b2d4f60a8c1e3b5d7f9a2c4"
	operateToken = "ops-1b3d5f7a9c2e4a6c8e0b2d4f6a8c0e2a"
	readToken    = "rd-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3"
)

// testEnv is a server over a populated registry, with an observed audit
// log.
type testEnv struct {
	t     *testing.T
	reg   *registry.Registry
	srv   *Server
	logs  *observer.ObservedLogs
	hooks Hooks
}

// newEnv returns a test server. The registry has the config upstreams
// "backend" (10.0.0.1:8080 weight 2, 10.0.0.2:8080) and "solo"
// (10.0.1.1:80), the API upstream "extra" (10.0.2.1:9000), and the
// routes "api" and "web".
func newEnv(t *testing.T, opts ...func(*Config, *Hooks)) *testEnv {
	t.Helper()
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{
		{ID: "backend", Targets: []registry.TargetSpec{{Address: "10.0.0.1:8080", Weight: 2}, {Address: "10.0.0.2:8080"}}},
		{ID: "solo", Targets: []registry.TargetSpec{{Address: "10.0.1.1:80"}}},
	}, []string{"api", "web"})
	if _, err := reg.CreateUpstream("extra", []registry.Target{{Address: "10.0.2.1:9000", Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Tokens: []Token{
		{Name: "root", Token: adminToken},
		{Name: "oncall", Token: operateToken, Scopes: []string{ScopeOperate}},
		{Name: "viewer", Token: readToken, Scopes: []string{ScopeRead}},
	}}
	hooks := Hooks{Resolve: testResolve}
	for _, o := range opts {
		o(&cfg, &hooks)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	srv, err := New(cfg, reg, zap.New(core), hooks)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, reg: reg, srv: srv, logs: logs, hooks: hooks}
}

// okHooks sets hooks that succeed.
func okHooks(h *Hooks) {
	h.Reload = func(context.Context) (ReloadResult, error) { return ReloadResult{ConfigFile: "sentinel.kdl"}, nil }
	h.Validate = func(context.Context) ([]string, error) { return nil, nil }
	h.Agents = func() []agents.Status { return []agents.Status{{ID: "a1", Health: "ready"}} }
	h.Source = func() (string, []byte, error) { return "sentinel.kdl", []byte("system { }\n"), nil }
	h.ValidateSource = func(context.Context, []byte) ([]string, error) { return nil, nil }
	h.Metrics = func() prometheus.Gatherer { return prometheus.NewRegistry() }
}

// req is a test request.
type req struct {
	method, path, token, body string
	header                    map[string]string
}

// do serves a request and returns the recorded response.
func (e *testEnv) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, hr)
	return w
}

// decodeJSON decodes a response body.
func decodeJSON[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", w.Code, w.Body.String(), err)
	}
	return v
}

// checkError checks an error response: status, JSON content type, and
// the message and field.
func checkError(t *testing.T, w *httptest.ResponseRecorder, status int, msgPart, field string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	b := decodeJSON[errorBody](t, w)
	if !strings.Contains(b.Error, msgPart) {
		t.Errorf("error %q does not contain %q", b.Error, msgPart)
	}
	if b.Field != field {
		t.Errorf("field %q, want %q (error %q)", b.Field, field, b.Error)
	}
}

// concrete returns a request path for a route pattern.
func concrete(pattern string) string {
	r := strings.NewReplacer("{address}", "10.0.2.1%3A9000", "{id}", "extra")
	p := r.Replace(pattern)
	if strings.HasPrefix(pattern, "/api/v1/routes/") {
		p = strings.Replace(p, "extra", "api", 1)
	}
	if strings.HasPrefix(pattern, "/api/v1/agents/") {
		p = strings.Replace(p, "extra", "a1", 1)
	}
	return p
}

// validBody returns a valid body for a route.
func validBody(method, pattern string) string {
	switch method + " " + pattern {
	case "POST /api/v1/upstreams":
		return `{"id":"fresh","targets":[{"address":"10.9.0.1:80"}]}`
	case "PUT /api/v1/upstreams/{id}/targets":
		return `{"targets":[{"address":"10.0.0.1:8080","weight":3}]}`
	case "POST /api/v1/upstreams/{id}/targets":
		return `{"address":"10.0.0.9:8080","weight":2}`
	case "PATCH /api/v1/upstreams/{id}/targets/{address}":
		return `{"weight":5}`
	case "POST /api/v1/upstreams/{id}/drain", "POST /api/v1/upstreams/{id}/targets/{address}/drain":
		return `{"timeout_secs":0}`
	case "PUT /api/v1/routes/{id}/enabled":
		return `{"enabled":false}`
	case "POST /api/v1/config/validate":
		return `{"content":"system { }"}`
	case "PUT /api/v1/config/source":
		return `{"content":"system { }\n"}`
	}
	return ""
}

// entryJSON returns an audit entry as the JSON encoder writes it.
func entryJSON(t *testing.T, e observer.LoggedEntry) string {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	buf, err := enc.EncodeEntry(e.Entry, e.Context)
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// testResolve is the tests' DNS: there is no DNS server here, so names
// resolve from a fixed table.
func testResolve(_ context.Context, host string) ([]netip.Addr, error) {
	switch host {
	case "svc.internal":
		return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
	case "inward.example":
		return []netip.Addr{netip.MustParseAddr("10.1.2.4"), netip.MustParseAddr("127.0.0.1")}, nil
	case "metadata.example":
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
