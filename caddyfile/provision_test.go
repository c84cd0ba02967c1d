package caddyfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// machinePath matches the absolute paths of the golden configs that live
// on a production machine (certificates, state).
var machinePath = regexp.MustCompile(`"/(etc|var/log|var/lib)/sentinel/[^"]*"`)

// TestGoldenCaddyfilesProvision provisions every golden output with
// caddy.Validate (every module decoded and provisioned, nothing
// started), as the KDL adapter's golden outputs are: a Caddyfile form
// whose JSON a module refuses fails here.
func TestGoldenCaddyfilesProvision(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no golden outputs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Certificates and keys become real ones (provisioning reads
			// them), other machine paths temporary ones.
			dir := t.TempDir()
			cert, key := testutil.WriteCert(t, dir, "localhost")
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
				t.Fatal(err)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("%s does not provision: %v", f, err)
			}
		})
	}
}
