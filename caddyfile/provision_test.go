package caddyfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

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
			if err := testutil.Provision(t, data); err != nil {
				t.Errorf("%s does not provision: %v", f, err)
			}
		})
	}
}
