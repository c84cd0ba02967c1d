package testutil

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// machinePath matches the absolute paths of configs that live on a
// production machine (certificates, logs, state, storage).
var machinePath = regexp.MustCompile(`"/(etc|var/log|var/lib)/sentinel/[^"]*"`)

// Provision decodes a Caddy JSON config and provisions it with
// caddy.Validate (every module decoded and provisioned, nothing
// started), as a load would before starting it. The machine paths in it
// (/etc/sentinel/…, /var/lib/sentinel/…, /var/log/sentinel/…) become
// files of the test: certificates and keys real ones (provisioning reads
// them), other paths in a temporary folder. It returns Caddy's error.
func Provision(tb testing.TB, data []byte) error {
	tb.Helper()
	dir := tb.TempDir()
	cert, key := WriteCert(tb, dir, "localhost")
	data = machinePath.ReplaceAllFunc(data, func(m []byte) []byte {
		p := strings.Trim(string(m), `"`)
		switch {
		case strings.HasSuffix(p, ".key"):
			p = key
		case strings.HasSuffix(p, ".pem") || strings.HasSuffix(p, ".crt"):
			p = cert
		default:
			p = filepath.Join(dir, filepath.Base(p))
		}
		out, _ := json.Marshal(p)
		return out
	})
	var cfg caddy.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		tb.Fatalf("not a Caddy JSON config: %v", err)
	}
	return caddy.Validate(&cfg)
}
