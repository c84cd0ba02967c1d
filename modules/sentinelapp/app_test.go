package sentinelapp

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/sentinel-proxy/sentinel/modules/adaptive"
	_ "github.com/sentinel-proxy/sentinel/modules/builtin"
	_ "github.com/sentinel-proxy/sentinel/modules/framing"
	_ "github.com/sentinel-proxy/sentinel/modules/handoff"
	_ "github.com/sentinel-proxy/sentinel/modules/routeguard"
	_ "github.com/sentinel-proxy/sentinel/modules/routematch"
	_ "github.com/sentinel-proxy/sentinel/modules/upstreamsource"
	"github.com/sentinel-proxy/sentinel/registry"
)

// adminPort is this package's in-process Caddy admin port.
const adminPort = 2997

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestAppValidate(t *testing.T) {
	for _, a := range []App{
		{Upstreams: []UpstreamConfig{{ID: ""}}},
		{Upstreams: []UpstreamConfig{{ID: "a"}, {ID: "a"}}},
		{Upstreams: []UpstreamConfig{{ID: "a", Targets: []registry.TargetSpec{{Address: "nope"}}}}},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	a := &App{}
	if _, _, _, err := a.adaptDigest(); err == nil {
		t.Error("reload without a config file accepted")
	}
	a.ConfigFile, a.ConfigAdapter = "/nonexistent.kdl", "kdl"
	if _, _, _, err := a.adaptDigest(); err == nil {
		t.Error("missing file accepted")
	}
	f := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(f, []byte(`{}`), 0o644)
	a.ConfigFile, a.ConfigAdapter = f, "nope"
	if _, _, _, err := a.adaptDigest(); err == nil {
		t.Error("unknown adapter accepted")
	}
	if (&HookError{Lines: []string{"a", "b"}}).Error() == "" || (&HookError{Lines: []string{"a"}}).Error() != "a" {
		t.Error("HookError")
	}
}
