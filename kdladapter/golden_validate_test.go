package kdladapter_test

import (
	"bytes"
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
// on a production machine (certificates, logs, storage).
var machinePath = regexp.MustCompile(`"/(etc|var/log|var/lib)/sentinel/[^"]*"`)

// TestGoldenOutputsProvision provisions every golden output with
// caddy.Validate (every module decoded and provisioned, nothing started):
// an adapter output that Caddy would refuse fails here, not at the first
// user's load.
func TestGoldenOutputsProvision(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// The file ends with the warnings as comments.
			if i := bytes.Index(data, []byte("\n// warnings:")); i >= 0 {
				data = data[:i]
			}
			// Certificates and keys become real ones, other machine paths
			// temporary ones: provisioning reads the first and may
			// create the others.
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
