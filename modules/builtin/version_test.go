package builtin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel/modules/builtin"
)

// TestStatusVersion: the status page reports Sentinel's version from the
// VERSION file (as `sentinel version` does), not Caddy's, and Caddy's in
// its own field.
func TestStatusVersion(t *testing.T) {
	file, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	b := &builtin.Builtin{Kind: builtin.KindStatus}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := b.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	if err := b.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), next); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(file)); got["version"] != want || sentinel.Version() != want {
		t.Errorf("version %v, sentinel.Version() %q, want %q", got["version"], sentinel.Version(), want)
	}
	if _, ok := got["caddy_version"].(string); !ok {
		t.Errorf("no caddy_version in %v", got)
	}
}
