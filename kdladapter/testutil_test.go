package kdladapter

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
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

// mustAdapt adapts src and fails the test on error.
func mustAdapt(t testing.TB, src string) ([]byte, []caddyconfig.Warning) {
	t.Helper()
	out, warns, err := adaptString(t, src)
	if err != nil {
		t.Fatalf("adapt failed: %v\n--- config ---\n%s", err, src)
	}
	return out, warns
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
