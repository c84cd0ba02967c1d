package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel/internal/logring"
	"github.com/sentinel-proxy/sentinel/metrics"
)

func TestUIServedWithoutToken(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/style.css", "/ui/favicon.svg"} {
		w := e.do(req{method: "GET", path: p})
		if w.Code != 200 || w.Header().Get("Content-Security-Policy") == "" || w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: %d %v", p, w.Code, w.Header())
		}
	}
	if w := e.do(req{method: "GET", path: "/ui"}); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %v", w.Code, w.Header())
	}
	// The UI's prefix opens nothing else: the API still needs a token,
	// and /uix is not the UI.
	checkError(t, e.do(req{method: "GET", path: "/uix"}), 401, "", "")
	checkError(t, e.do(req{method: "GET", path: "/api/v1/upstreams"}), 401, "", "")
}

func TestWhoAmI(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Hooks) {
		c.Tokens = append(c.Tokens, Token{Name: "team", Token: "team-a-0123456789abcdef0123456789", Scopes: []string{ScopeOperate}, Namespace: "team-a"})
	})
	for token, want := range map[string]whoami{
		adminToken:                          {Name: "root", Scope: "admin"},
		readToken:                           {Name: "viewer", Scope: "read"},
		"team-a-0123456789abcdef0123456789": {Name: "team", Scope: "operate", Namespace: "team-a"},
	} {
		w := e.do(req{method: "GET", path: "/api/v1/whoami", token: token})
		var got whoami
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 || got != want {
			t.Errorf("whoami %s: %d %s, want %+v", want.Name, w.Code, w.Body, want)
		}
	}
}

func TestConfigSourceAndValidateText(t *testing.T) {
	var seen string
	e := newEnv(t, func(_ *Config, h *Hooks) {
		h.Source = func() (string, []byte, error) { return "/etc/sentinel.kdl", []byte("system { }\n"), nil }
		h.ValidateSource = func(_ context.Context, b []byte) ([]string, error) {
			seen = string(b)
			if strings.Contains(seen, "adress") {
				return []string{`/etc/sentinel.kdl:2:3: unknown setting "adress"`}, nil
			}
			if strings.Contains(seen, "broken") {
				return nil, errors.New("cannot validate")
			}
			return nil, nil
		}
	})
	w := e.do(req{method: "GET", path: "/api/v1/config/source", token: adminToken})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"file":"/etc/sentinel.kdl"`) || !strings.Contains(w.Body.String(), `"sha256":"`) {
		t.Errorf("source: %d %s", w.Code, w.Body)
	}
	checkError(t, e.do(req{method: "GET", path: "/api/v1/config/source", token: operateToken}), 403, "needs the admin scope", "")

	w = e.do(req{method: "POST", path: "/api/v1/config/validate", token: adminToken, body: `{"content":"system {\n  adress 1\n}"}`})
	if w.Code != 422 || !strings.Contains(w.Body.String(), `sentinel.kdl:2:3: unknown setting`) || seen != "system {\n  adress 1\n}" {
		t.Errorf("invalid text: %d %s (validated %q)", w.Code, w.Body, seen)
	}
	w = e.do(req{method: "POST", path: "/api/v1/config/validate", token: adminToken, body: `{"content":"broken"}`})
	if w.Code != 422 || !strings.Contains(w.Body.String(), "cannot validate") {
		t.Errorf("unvalidatable text: %d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "POST", path: "/api/v1/config/validate", token: adminToken, body: `{"content":"system { }"}`})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"valid":true`) {
		t.Errorf("valid text: %d %s", w.Code, w.Body)
	}
	checkError(t, e.do(req{method: "POST", path: "/api/v1/config/validate", token: adminToken, body: `{}`}), 400, "content", "content")

	// Without hooks: 501; a source that cannot be read: 422.
	bare := newEnv(t)
	checkError(t, bare.do(req{method: "GET", path: "/api/v1/config/source", token: adminToken}), 501, "not available", "")
	checkError(t, bare.do(req{method: "POST", path: "/api/v1/config/validate", token: adminToken, body: `{"content":"x"}`}), 501, "not available", "")
	failing := newEnv(t, func(_ *Config, h *Hooks) {
		h.Source = func() (string, []byte, error) { return "", nil, errors.New("permission denied") }
	})
	checkError(t, failing.do(req{method: "GET", path: "/api/v1/config/source", token: adminToken}), 422, "permission denied", "")
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	logring.Access.Add([]byte(`{"path":"/seen-by-the-ui"}` + "\n"))
	checkError(t, e.do(req{method: "GET", path: "/api/v1/logs/access", token: readToken}), 403, "needs the operate scope", "")
	w := e.do(req{method: "GET", path: "/api/v1/logs/access", token: operateToken})
	var got logLines
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 || len(got.Lines) == 0 ||
		got.Lines[len(got.Lines)-1].Text != `{"path":"/seen-by-the-ui"}` {
		t.Fatalf("access log: %d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "GET", path: "/api/v1/logs/access?after=" + strconv.FormatUint(got.Last, 10), token: operateToken})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"lines":[]`) {
		t.Errorf("nothing new: %d %s", w.Code, w.Body)
	}
	checkError(t, e.do(req{method: "GET", path: "/api/v1/logs/access?after=-1", token: operateToken}), 400, "sequence number", "after")

	// A mutation's audit entry is in the audit log; reading it needs admin.
	e.do(req{method: "PUT", path: "/api/v1/routes/api/enabled", token: operateToken, body: `{"enabled":false}`})
	checkError(t, e.do(req{method: "GET", path: "/api/v1/logs/audit", token: operateToken}), 403, "needs the admin scope", "")
	w = e.do(req{method: "GET", path: "/api/v1/logs/audit", token: adminToken})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `/api/v1/routes/api/enabled`) || strings.Contains(w.Body.String(), operateToken) {
		t.Errorf("audit log: %d %s", w.Code, w.Body)
	}
}

func TestMetricsSummary(t *testing.T) {
	reg := prometheus.NewRegistry()
	routes, err := metrics.NewRoutes(reg)
	if err != nil {
		t.Fatal(err)
	}
	routes.Observe("web", 200, 20*time.Millisecond)
	routes.Observe("web", 503, 2*time.Second)
	routes.Observe("api", 404, time.Millisecond)
	e := newEnv(t, func(_ *Config, h *Hooks) { h.Metrics = func() prometheus.Gatherer { return reg } })
	w := e.do(req{method: "GET", path: "/api/v1/metrics/summary", token: readToken})
	var got metricsSummary
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 || len(got.Routes) != 2 {
		t.Fatalf("summary: %d %s", w.Code, w.Body)
	}
	api, web := got.Routes[0], got.Routes[1]
	if api.Route != "api" || api.Requests != 1 || api.Errors != 0 || web.Route != "web" || web.Requests != 2 || web.Errors != 1 {
		t.Errorf("counts: %+v %+v", api, web)
	}
	last := web.Buckets[len(web.Buckets)-1]
	if last.LE != nil || last.Count != 2 || *web.Buckets[0].LE != prometheus.DefBuckets[0] {
		t.Errorf("buckets: %s", w.Body)
	}
	checkError(t, newEnv(t).do(req{method: "GET", path: "/api/v1/metrics/summary", token: readToken}), 501, "not available", "")
	none := newEnv(t, func(_ *Config, h *Hooks) { h.Metrics = func() prometheus.Gatherer { return nil } })
	if w := none.do(req{method: "GET", path: "/api/v1/metrics/summary", token: readToken}); w.Code != 200 || !strings.Contains(w.Body.String(), `"routes":[]`) {
		t.Errorf("no registry: %d %s", w.Code, w.Body)
	}
}
