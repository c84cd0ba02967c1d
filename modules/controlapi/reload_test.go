package controlapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/registry"
)

func TestReloadFailure(t *testing.T) {
	e := newEnv(t, func(_ *Config, h *Hooks) {
		h.Reload = func(context.Context) (ReloadResult, error) {
			return ReloadResult{}, errors.Join(errors.New("sentinel.kdl:3:5: unknown node \"lisener\""), errors.New("sentinel.kdl:9:1: upstream \"x\" has no target"))
		}
	})
	w := e.do(req{method: "POST", path: "/api/v1/config/reload", token: adminToken})
	if w.Code != 422 {
		t.Fatal(w.Code, w.Body)
	}
	b := decodeJSON[struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}](t, w)
	if len(b.Errors) != 2 || b.Errors[1] != `sentinel.kdl:9:1: upstream "x" has no target` || !strings.Contains(b.Error, "lisener") {
		t.Errorf("%+v", b)
	}
	m := e.logs.All()[0].ContextMap()
	if m["status"] != int64(422) || m["config"] != "reload" || m["errors"] == nil {
		t.Errorf("audit %v", m)
	}
}

func TestReloadOneAtATime(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	e := newEnv(t, func(_ *Config, h *Hooks) {
		h.Reload = func(context.Context) (ReloadResult, error) {
			close(started)
			<-release
			return ReloadResult{}, nil
		}
	})
	var wg sync.WaitGroup
	wg.Add(1)
	code := 0
	go func() {
		defer wg.Done()
		code = e.do(req{method: "POST", path: "/api/v1/config/reload", token: adminToken}).Code
	}()
	<-started
	checkError(t, e.do(req{method: "POST", path: "/api/v1/config/reload", token: adminToken}), 409, "already running", "")
	close(release)
	wg.Wait()
	if code != 200 {
		t.Errorf("first reload: %d", code)
	}
}

func TestValidateFailure(t *testing.T) {
	e := newEnv(t, func(_ *Config, h *Hooks) {
		h.Validate = func(context.Context) ([]string, error) {
			return []string{"sentinel.kdl:1:1: bad"}, nil
		}
	})
	w := e.do(req{method: "GET", path: "/api/v1/config/validate", token: adminToken})
	if w.Code != 422 || strings.TrimSpace(w.Body.String()) != `{"errors":["sentinel.kdl:1:1: bad"],"valid":false}` {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	e = newEnv(t, func(_ *Config, h *Hooks) {
		h.Validate = func(context.Context) ([]string, error) {
			return nil, fmt.Errorf("open sentinel.kdl: %w", errors.New("permission denied"))
		}
	})
	w = e.do(req{method: "GET", path: "/api/v1/config/validate", token: adminToken})
	if w.Code != 422 || !strings.Contains(w.Body.String(), `"errors":["open sentinel.kdl: permission denied"]`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	if len(e.logs.All()) != 0 {
		t.Error("validation was audited")
	}
}

func TestHooksMissing(t *testing.T) {
	e := newEnv(t)
	checkError(t, e.do(req{method: "POST", path: "/api/v1/config/reload", token: adminToken}), 501, "not available", "")
	checkError(t, e.do(req{method: "GET", path: "/api/v1/config/validate", token: adminToken}), 501, "not available", "")
	if w := e.do(req{method: "GET", path: "/api/v1/agents", token: readToken}); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	w := e.do(req{method: "GET", path: "/api/v1/agents/waf/status", token: readToken})
	if w.Code != 404 || strings.TrimSpace(w.Body.String()) != `{"error":"agent \"waf\" not found"}` {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	e = newEnv(t, func(_ *Config, h *Hooks) { h.Agents = func() []agents.Status { return nil } })
	if w := e.do(req{method: "GET", path: "/api/v1/agents", token: readToken}); strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("%s", w.Body)
	}
}

func TestErrorLines(t *testing.T) {
	tests := []struct {
		err  error
		want []string
	}{
		{errors.New("one"), []string{"one"}},
		{errors.New("a\n\n b \n"), []string{"a", "b"}},
		{errors.New(""), []string{"unknown error"}},
		{errors.Join(errors.New("x"), errors.Join(errors.New("y"), errors.New("z"))), []string{"x", "y", "z"}},
	}
	for _, tt := range tests {
		if got := errorLines(tt.err); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%q: %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestToAPIError(t *testing.T) {
	if ae := toAPIError(errors.New("secret internals")); ae.status != 500 || ae.message != "internal error" {
		t.Errorf("%+v", ae)
	}
}

func TestRegistryErrorStatus(t *testing.T) {
	tests := []struct {
		err    error
		status int
	}{
		{registry.ErrNotFound, 404},
		{registry.ErrExists, 409},
		{registry.ErrConflict, 412},
		{registry.ErrConfigDefined, 409},
		{registry.ErrInvalid, 400},
	}
	for _, tt := range tests {
		ae := toAPIError(fmt.Errorf("upstream %q: %w", "x", tt.err))
		if ae.status != tt.status || !strings.Contains(ae.Error(), tt.err.Error()) {
			t.Errorf("%v: %d %q", tt.err, ae.status, ae.Error())
		}
	}
}
