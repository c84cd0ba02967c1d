package kdladapter

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/routeguard"
)

// sharedDir is the shared folder beside the repository.
const sharedDir = "../../shared"

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

// envOf returns an environment with the given variables.
func envOf(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// adaptString adapts an in-memory config named test.kdl.
func adaptString(t testing.TB, src string) ([]byte, []caddyconfig.Warning, error) {
	t.Helper()
	return Adapt("test.kdl", []byte(src), noEnv, OSFiles{})
}

// mustAdapt adapts src and fails the test on error. Its output has the
// routes' handlers inline in their guards (inlineFolded), where the
// tests of a mapping look for them; mustAdaptAsIs keeps the output as
// the adapter writes it.
func mustAdapt(t testing.TB, src string) ([]byte, []caddyconfig.Warning) {
	t.Helper()
	out, warns := mustAdaptAsIs(t, src)
	return inlineFolded(t, out), warns
}

// mustAdaptAsIs adapts src and fails the test on error.
func mustAdaptAsIs(t testing.TB, src string) ([]byte, []caddyconfig.Warning) {
	t.Helper()
	out, warns, err := adaptString(t, src)
	if err != nil {
		t.Fatalf("adapt failed: %v\n--- config ---\n%s", err, src)
	}
	return out, warns
}

// inlineFolded rewrites an adapted config as if the routes' guards held
// their handlers (the guard's handle) instead of the sentinel_routes app
// (routes.go, appendGuard): each guard with handle_in_app gets its
// route's handlers from the app as its handle, and the app goes. Keys
// stay sorted, numbers and strings as written.
func inlineFolded(t testing.TB, out []byte) []byte {
	t.Helper()
	var cfg map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decoding the output: %v", err)
	}
	apps, _ := cfg["apps"].(map[string]any)
	app, _ := apps[routeguard.AppName].(map[string]any)
	if app == nil {
		return out
	}
	folded, _ := app[routeHandlersKey].(map[string]any)
	delete(apps, routeguard.AppName)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "sentinel_route" && x[guardInAppKey] == true {
				delete(x, guardInAppKey)
				x[guardHandleKey] = folded[x[guardRouteKey].(string)]
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(cfg)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cfg); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// corpusDir returns the sentinel-configs folder, skipping the test when
// the shared folder is absent.
func corpusDir(t testing.TB) string {
	t.Helper()
	return testutil.Shared(t, "testdata/sentinel-configs")
}

// warningsText joins warnings for assertions, as Caddy prints them
// ("file:line (directive): message").
func warningsText(ws []caddyconfig.Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// warningsLines joins warnings as "file:line: message" (the golden
// files' form).
func warningsLines(ws []caddyconfig.Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.File)
		b.WriteByte(':')
		b.WriteString(itoa64(int64(w.Line)))
		b.WriteString(": ")
		b.WriteString(w.Message)
		b.WriteByte('\n')
	}
	return b.String()
}

// minimal is the smallest valid config; tests append to it.
const minimal = `
system { }
listeners {
    listener "http" {
        address "127.0.0.1:18080"
    }
}
`
